// URL parsing plus the transport policy of the wire contract, sans-IO.
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace tether::net {

/// A URL that passed the policy: http(s) only, no userinfo, and plain http
/// only to a loopback host.
struct url {
    std::string scheme;  ///< "http" or "https"
    std::string host;    ///< without IPv6 brackets
    std::uint16_t port = 0;
    std::string path;   ///< percent-encoded, "" or starting with '/'
    std::string query;  ///< percent-encoded, without '?'

    [[nodiscard]] bool tls() const noexcept { return scheme == "https"; }
    /// "https://host:port" (IPv6 in brackets); the key for connection reuse.
    [[nodiscard]] std::string origin() const;
    /// The request target: path (or "/") plus "?query".
    [[nodiscard]] std::string target() const;
    /// Host header value: host, plus ":port" when not the scheme's default.
    [[nodiscard]] std::string host_header() const;
    /// The full URL with query values redacted: safe for logs and errors.
    [[nodiscard]] std::string redacted() const;
    /// This URL's path joined with `suffix` ("/v1/events"), query dropped.
    [[nodiscard]] url with_path(std::string_view suffix) const;
};

/// Parses and applies the policy. The error names the URL (query values
/// redacted) and the rule it broke.
boost::system::result<url, std::string> parse_url(std::string_view text);

/// `text` with every query value (and any userinfo) replaced by
/// "[redacted]": for messages about URLs we refused to parse.
std::string redact_url(std::string_view text);

/// Resolves a redirect `Location` against `base`. Relative references are
/// allowed; the result still goes through the policy.
boost::system::result<url, std::string> resolve_location(const url& base, std::string_view location);

}  // namespace tether::net
