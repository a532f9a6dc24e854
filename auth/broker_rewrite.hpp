// The credential broker's request and response rules (docs/protocol.md section
// 6), sans-IO: a child's HTTP request in, the upstream request or a refusal
// out; an upstream response in, a response safe to show the child out.
#pragma once

#include "base/secret.hpp"
#include "net/http.hpp"
#include "net/url.hpp"

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tether::auth {

/// What children put in their URLs (TETHER_API_BASE).
inline constexpr std::string_view broker_api_host = "tether-broker.invalid";
inline constexpr std::string_view broker_api_base = "http://tether-broker.invalid";

inline constexpr char control_accept = '\x01';
inline constexpr char control_refuse = '\xFF';
/// The first byte of a request for several streams: `0x02 N`.
inline constexpr char control_batch = '\x02';
/// The most streams one `0x02 N` request may ask for (and one answer carry).
inline constexpr std::size_t max_control_batch = 16;

/// How many streams one control datagram from the child asks for: 1 for
/// `0x01` alone, N for the two bytes `0x02 N` with 1 <= N <= 16, and 0 (it
/// is refused) for anything else: another byte, empty, longer, a count out
/// of range, truncated, descriptors attached.
std::size_t streams_requested(std::string_view bytes, bool truncated, bool carried_descriptors) noexcept;

struct rewrite_refusal {
    rewrite_refusal() = default;  // not an aggregate: see protojson::field_error
    rewrite_refusal(unsigned s, std::string r) : status(s), reason(std::move(r)) {}
    unsigned status = 400;
    std::string reason;  ///< safe to show the child and to log: never holds a credential
};

struct rewritten_request {
    net::http::request request;  ///< target joined to the upstream's path, headers cleaned, Host for upstream
    bool injected_query = false;
    bool injected_header = false;
};

/// Applies the sentinel rules: `app_key=<sentinel>` becomes the real
/// credential, `Authorization: Bearer <sentinel>` too; any other value goes
/// through untouched. Refused (never half-injected): several `app_key`
/// parameters, an encoded name (`app%5Fkey`, `APP_KEY`) or sentinel, several
/// Authorization headers, a Transfer-Encoding other than exactly `chunked`,
/// Transfer-Encoding with Content-Length, an absolute-form target naming
/// another host, a target that is not origin-form.
boost::system::result<rewritten_request, rewrite_refusal> rewrite_request(const net::http::request& child,
                                                                          std::string_view sentinel,
                                                                          std::string_view credential,
                                                                          const net::url& upstream);

/// Makes an upstream response safe for the child: hop-by-hop fields dropped,
/// redirects into the upstream pointed back at the broker base, and every
/// occurrence of the credential (raw or percent-encoded) in header values or
/// the body replaced by the sentinel. False when that cannot be done (a
/// replacement itself completed a new occurrence): the response must not be
/// shown to the child then.
[[nodiscard]] bool scrub_response(net::http::response& res, std::string_view sentinel,
                                  std::string_view credential, const net::url& upstream);

/// scrub_response's rule with what it derives from its arguments (the
/// encoded credential, the upstream's origins) made once: the broker keeps
/// one for as long as its credential does not change.
class response_scrubber {
public:
    response_scrubber(std::string_view sentinel, std::string_view credential, const net::url& upstream);

    /// As scrub_response. A field is copied only when it changes.
    [[nodiscard]] bool operator()(net::http::response& res) const;
    /// Made for this credential (compared in constant time).
    [[nodiscard]] bool made_for(const secret& credential) const noexcept { return credential == credential_; }

private:
    std::string sentinel_;
    secret credential_;
    secret encoded_;
    std::string origin_;
    std::string short_origin_;
    std::string base_path_;
};

/// The body rule of scrub_response for a body that arrives in pieces. A
/// piece's tail that could be the start of the credential (raw or encoded)
/// is held back until the next piece or finish(), so a credential split
/// between two pieces is still replaced; anything else passes at once.
/// What it hands out never holds the credential, raw or percent-encoded,
/// not even across the boundary of two pieces: that is checked, not assumed.
class body_scrubber {
public:
    body_scrubber(std::string_view sentinel, std::string_view credential);

    /// The bytes safe to pass on now (maybe none); nullopt when the body
    /// cannot be made safe, after which nothing more may be passed on.
    [[nodiscard]] std::optional<std::string> feed(std::string_view piece);
    /// The bytes held back, at the end of the body.
    [[nodiscard]] std::string finish();

private:
    std::string sentinel_;
    secret credential_;
    secret encoded_;
    std::size_t hold_ = 0;
    std::string held_;
    std::string emitted_tail_;  // the last hold_ bytes handed out, for the boundary check
};

/// RFC 3986 percent-decoding; invalid escapes are kept as they are.
std::string percent_decode(std::string_view s);

}  // namespace tether::auth
