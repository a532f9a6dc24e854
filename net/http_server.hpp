// A small coroutine HTTP/1.1 server: accept loop, one task per connection,
// header/body limits, header-read and idle timeouts, streamed (chunked)
// responses for event streams, graceful close on cancellation.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/http.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace tether::net {

struct reply;
class replaceable_tls;

struct server_options {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 64 * 1024;
    /// From the first byte of a request to its complete header and body.
    std::chrono::milliseconds header_timeout{10'000};
    /// A kept-alive connection with no new request for this long is closed:
    /// short, because an idle connection holds a descriptor.
    std::chrono::milliseconds idle_timeout{20'000};
    /// One write (a response, one streamed chunk) must complete within this.
    std::chrono::milliseconds write_timeout{10'000};
    /// SO_SNDBUF for accepted sockets; 0 leaves the kernel's autotuning.
    /// Bounds the kernel memory one slow stream can pin.
    int send_buffer_bytes = 0;
    /// Connections share this many strands, round robin (0: a strand each).
    /// A server whose handlers never block can run every connection of one
    /// event-loop thread on one strand: then work meant for many connections
    /// (an event published to every stream) is one job per strand, not one
    /// per connection.
    std::size_t connection_strands = 0;
    /// Open connections from one address; one more is closed at once.
    /// 0: no limit (a Unix socket's one peer).
    std::size_t max_connections_per_ip = 0;
    /// Told of each request refused before the handler (its status) and of
    /// each connection closed over the per-address limit (0), for metrics.
    std::function<void(unsigned status)> on_refused;
    /// The answer to a request refused before the handler (400, 429, 431)
    /// or whose handler threw (500). Unset: plain text. The server knows
    /// HTTP only; a server of an RPC protocol renders its own error bodies.
    std::function<reply(unsigned status, std::string_view reason)> refusal;
    /// Connections from the addresses this accepts (a load balancer's) may
    /// begin with a PROXY protocol header, version 1 or 2: the client it
    /// names is then the peer (the handler's peer_info, the per-address
    /// limit, logs); the balancer's own connections (none, or LOCAL: its
    /// health checks) are exempt from that limit. Unset: no header is read.
    std::function<bool(const asio::ip::address&)> proxy_from;
};

struct peer_info {
    std::string address;
    std::uint16_t port = 0;
};

/// `bytes` as one chunk of a chunked body ("<hex size>\r\n<bytes>\r\n"):
/// for a payload encoded once and written to many streams.
std::string encode_chunk(std::string_view bytes);  // bytes: not empty (that is the last chunk)

/// Writes a streamed response body chunk by chunk. On the connection's
/// strand only.
class body_writer {
public:
    virtual ~body_writer() = default;
    /// Fails with errc::timeout when the peer does not take the bytes within
    /// the write timeout (a slow consumer), or with the socket's error.
    virtual awaitable<error_code> write(std::string_view bytes) = 0;
    /// Bytes already chunk-encoded (encode_chunk), as one gathered write;
    /// the same failures as `write`.
    virtual awaitable<error_code> write_encoded(std::span<const asio::const_buffer> chunks) = 0;
    /// Writes what the socket takes at once, without waiting, and returns how
    /// many bytes it took (0 with no error when it would block). For a
    /// publisher that writes to an idle stream straight away and sends the
    /// rest from `when_writable`. Never while a write is in progress. A TLS
    /// stream takes nothing this way (writes_directly() is false): its
    /// records belong to the TLS engine.
    virtual std::size_t try_write_encoded(std::span<const asio::const_buffer> chunks, error_code& ec) = 0;
    /// Whether try_write_encoded can take bytes at all (not over TLS).
    [[nodiscard]] virtual bool writes_directly() const noexcept = 0;
    /// Calls `fn(arg)` (on the strand) once the socket can take more after
    /// try_write_encoded took less than it was given; nullptr: no call.
    /// One registration at a time; it ends with the body.
    virtual void when_writable(void (*fn)(void*), void* arg) = 0;
    /// What one write may take before the peer counts as not reading.
    [[nodiscard]] virtual std::chrono::milliseconds write_timeout() const noexcept = 0;
    /// Ends a write in progress with operation_aborted (and the stream with
    /// it): a stream evicted while its peer is not reading.
    virtual void abort() = 0;
    /// Called (on the strand) when the peer of a stream that ends only with
    /// its subscriber closes or sends anything, so a body that waits long
    /// between writes frees its slot at once. A body that registers none
    /// learns it from its next write, which fails. Deregisters itself when
    /// the body returns; one callback at a time.
    virtual void on_peer_gone(void (*fn)(void*), void* arg) = 0;
};

struct reply {
    http::response head;
    /// When set, the body is streamed (chunked) by this function after the
    /// header; `head.body` is ignored. Returning an error cuts the body short:
    /// the connection closes without the last chunk, so the peer can tell
    /// the body is incomplete.
    std::function<awaitable<error_code>(body_writer&)> stream;
    /// After a complete streamed body, serve the connection's next request
    /// (when the request allowed keep-alive). Event streams, which end only
    /// when their subscriber goes, leave it false and close.
    bool reuse_after_stream = false;
};

/// Runs on the connection's strand. Throwing answers 500 (and is logged);
/// cancellation of the server cancels it.
using handler = std::function<awaitable<reply>(http::request, peer_info)>;

/// 200 with an application/json body.
reply json_reply(std::string body);

/// Serves requests on one connected Unix stream socket (the credential
/// broker's per-request channel) with the same parsing, limits and keep-alive
/// rules as the TCP server, until the peer closes, a limit or cancellation.
awaitable<void> serve_local_stream(asio::local::stream_protocol::socket socket, handler h,
                                   server_options opts, const log::logger& log);

/// Thread safety: construct, then co_await run() once, on one strand.
class http_server {
public:
    /// Binds and listens now, so a bad address or a port in use is a start-up
    /// error (throws boost::system::system_error). TLS when `tls` is set.
    http_server(const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep, handler h,
                const log::logger& log, server_options opts = {},
                std::shared_ptr<asio::ssl::context> tls = nullptr);
    /// TLS with a context that may be replaced while serving (see replaceable_tls).
    http_server(const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep, handler h,
                const log::logger& log, server_options opts, std::shared_ptr<replaceable_tls> tls);
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const;

    /// Accepts until cancelled; then closes the listener, cancels every
    /// connection and returns once they have all finished.
    awaitable<void> run();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace tether::net
