// A coroutine HTTP/1.1 client: keep-alive per origin, one deadline per
// request, body limit, TLS with verification, streamed bodies for SSE.
#pragma once

#include "base/asio.hpp"
#include "net/http.hpp"
#include "net/url.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace tether::net {

class replaceable_tls;

struct client_options {
    std::size_t max_body_bytes = 4 * 1024 * 1024;
    /// Status line and fields of a response (trailers counted in).
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_idle_per_origin = 4;
    std::string user_agent = "tether";
};

/// A kept-alive connection the server closed while idle fails the next
/// request at once, before any response byte (or in its write): that
/// request is safe to send again on a fresh connection.
bool stale_connection(error_code ec);

/// Reads a long response body as it arrives. Owns its connection.
class body_stream {
public:
    virtual ~body_stream() = default;
    [[nodiscard]] virtual const http::response& head() const noexcept = 0;
    /// The next bytes of the body; an empty string at its end. Fails with
    /// errc::timeout when no byte arrives for `idle` (any byte resets it).
    virtual awaitable<result<std::string>> read_some(std::chrono::milliseconds idle) = 0;
    /// The body has been read to its end (and the connection can be reused).
    [[nodiscard]] virtual bool done() const noexcept = 0;
};

/// Not thread-safe: use from one strand (each task owns its client).
/// Cancellation: the caller's cancellation slot reaches every operation;
/// a cancelled request completes with asio::error::operation_aborted.
class http_client {
public:
    /// `tls` may be null when only loopback http is used; an https URL then
    /// fails with errc::url_refused.
    http_client(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> tls, client_options opts = {});
    /// Each new connection takes the context current then (a trust store
    /// reloaded while running); kept-alive ones go on with theirs.
    http_client(asio::any_io_executor ex, std::shared_ptr<replaceable_tls> tls, client_options opts = {});
    http_client(asio::any_io_executor ex, std::nullptr_t, client_options opts = {});
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// The deadline covers resolve, connect, TLS handshake, write, and the
    /// whole response. `Host` and `User-Agent` are set here.
    awaitable<result<http::response>> request(url u, http::request req, std::chrono::milliseconds timeout);

    /// Sends the request and returns once the response header arrived
    /// (within `header_timeout`); the body is read from the returned stream,
    /// with no size limit. Used for event streams and for responses passed on
    /// as they arrive. The connection comes from the keep-alive pool like
    /// request()'s and goes back to it when the stream is dropped after its
    /// body was read to the end; otherwise it is closed. A stream may outlive
    /// its client (it then just closes its connection).
    awaitable<result<std::unique_ptr<body_stream>>> open(url u, http::request req,
                                                         std::chrono::milliseconds header_timeout);

    /// Drops idle kept-alive connections.
    void close_idle() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace tether::net
