// The runtime config document (docs/protocol.md section 4) as a typed, validated
// value. Sans-IO: JSON in, a config or the first bad path out.
#pragma once

#include "net/protojson.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::settings {

/// An IPv4 or IPv6 address range. A bare address is a range of one.
struct ip_range {
    std::array<std::uint8_t, 16> bytes{};  ///< network address; IPv4 uses the first 4
    bool v6 = false;
    unsigned prefix = 0;  ///< bits

    /// "10.0.0.0/8", "2001:db8::/32", "192.0.2.7". The network must not
    /// have host bits set ("10.0.0.1/8" is refused, it is usually a typo).
    static net::protojson::result<ip_range> parse(std::string_view text, std::string_view path);
    [[nodiscard]] std::string to_string() const;
    [[nodiscard]] bool contains(const ip_range& address) const noexcept;
    friend bool operator==(const ip_range&, const ip_range&) = default;
};

struct rate_limit {
    std::string route;
    std::int64_t max_requests = 0;
    std::int64_t window_seconds = 0;
    friend bool operator==(const rate_limit&, const rate_limit&) = default;
};

/// A range every heartbeat interval is clamped to, whatever its source
/// (the config, the gateway's reply, a flag).
struct interval_bounds {
    std::chrono::milliseconds min;
    std::chrono::milliseconds max;
    [[nodiscard]] constexpr std::chrono::milliseconds clamp(std::chrono::milliseconds d) const noexcept
    {
        return d < min ? min : d > max ? max : d;
    }
    /// The same for a count of seconds from a document: compared as
    /// seconds, so no value overflows on the way.
    [[nodiscard]] constexpr std::chrono::seconds clamp_seconds(std::int64_t s) const noexcept
    {
        const auto lo = std::chrono::duration_cast<std::chrono::seconds>(min).count();
        const auto hi = std::chrono::duration_cast<std::chrono::seconds>(max).count();
        return std::chrono::seconds(s < lo ? lo : s > hi ? hi : s);
    }
};
inline constexpr interval_bounds heartbeat_interval_bounds{std::chrono::seconds(5), std::chrono::hours(1)};

/// One applied version of the config. Immutable once built: readers share
/// it through a shared_ptr<const runtime_config>.
struct runtime_config {
    std::int64_t updated_at = 0;                             ///< configUpdatedAt; 0 = nothing received yet
    std::optional<std::chrono::seconds> heartbeat_interval;  ///< clamped to heartbeat_interval_bounds
    std::vector<ip_range> blocked_ips;
    std::vector<std::string> allowed_egress_hosts;  ///< lower case; "*.example.com" matches subdomains
    std::vector<rate_limit> rate_limits;
    std::map<std::string, bool, std::less<>> flags;
    /// The document as received, unknown keys included, so a newer gateway's
    /// keys survive a round trip through this node's state directory.
    boost::json::object document;

    /// Host names compare case-insensitively; a wildcard entry matches
    /// subdomains only, not the bare domain.
    [[nodiscard]] bool egress_host_allowed(std::string_view host) const;
    [[nodiscard]] bool flag(std::string_view name, bool fallback = false) const;
    /// The keys of `document`, for logs (values may be sensitive).
    [[nodiscard]] std::vector<std::string> keys() const;
};

/// Validates `document` whole: the first bad value fails the decode with its
/// path ("rateLimits[2].windowSeconds: must be > 0"). Null counts as absent.
/// Nesting levels a document may have (the document object itself is level
/// 1), counted as Boost.JSON counts max_depth. Every reader of a document
/// (the gateway's PublishConfig, the node's GetRuntimeConfig and its config
/// file) parses with one more level for its wrapper, so what is accepted
/// once can always be read back.
inline constexpr std::size_t max_document_depth = net::protojson::max_body_depth - 1;

net::protojson::result<runtime_config> decode_config(const boost::json::value& document,
                                                     std::int64_t updated_at);

/// Just the document's heartbeatIntervalSeconds, decoded as decode_config
/// does (clamped to heartbeat_interval_bounds; absent or null: nullopt),
/// for readers of an already validated document that need nothing else
/// (the gateway, on every heartbeat).
net::protojson::result<std::optional<std::chrono::seconds>> decode_heartbeat_interval(
    const boost::json::object& document);

/// The state-directory file holding the last applied config:
/// {"configUpdatedAt": "<int64>", "config": {...}}.
std::string encode_config_file(const runtime_config& cfg);
net::protojson::result<runtime_config> decode_config_file(std::string_view text);

/// RFC 1123 host name (letters, digits, hyphens; labels 1-63; 253 total),
/// optionally "*." in front.
bool valid_host_pattern(std::string_view host) noexcept;

}  // namespace tether::settings
