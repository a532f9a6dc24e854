// Error codes of the net layer, with their own category so callers can
// compare (`ec == net::errc::event_too_large`) and logs show a name.
#pragma once

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace tether::net {

enum class errc {
    event_too_large = 1,  ///< an SSE event (or line) exceeded the configured maximum
    body_too_large,       ///< a response or request body exceeded its limit
    header_too_large,
    url_refused,          ///< the URL policy refused the URL (details in the diagnostic)
    bad_status,           ///< an HTTP status the caller cannot use
    not_event_stream,     ///< 200 but not text/event-stream
    stream_ended,         ///< 204: the server says "do not reconnect"
    redirect_refused,     ///< too many, missing Location, or https -> http
    timeout,              ///< a deadline we set ran out
    unreachable,          ///< no candidate realtime URL answered
    bad_response,         ///< the server's answer is not a well-framed HTTP/1.1 response
    no_credentials,       ///< the credentials for a request could not be obtained (logged by whoever asked)
    tls_expired,          ///< the server's certificate is expired or not yet valid
    tls_wrong_host,       ///< the server's certificate names other hosts
    tls_unknown_ca,       ///< the server's certificate chains to no trusted CA
    tls_untrusted,        ///< the server's certificate failed verification otherwise
    credentials_refused,  ///< the credentials for a request were refused for good: do not retry
    unsafe_response,      ///< an upstream answer that must not reach the child (it echoed the secret)
    unwritable_message,   ///< a request or reply would hold CR, LF or NUL where it cannot (not sent)
    not_loopback,         ///< a plain-http host name resolved to no loopback address (not connected)
};

const boost::system::error_category& net_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), net_category()};
}

}  // namespace tether::net

template <>
struct boost::system::is_error_code_enum<tether::net::errc> : std::true_type {
};
