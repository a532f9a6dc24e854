#include "net/http_server.hpp"

#include "base/exceptions.hpp"
#include "base/task_group.hpp"
#include "net/errc.hpp"
#include "net/host_port.hpp"
#include "net/http_reader.hpp"
#include "net/http_writer.hpp"
#include "net/proxy_header_read.hpp"
#include "net/tls.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <span>

namespace tether::net {

namespace beast = boost::beast;

namespace {

/// What a refused request is told, in the server's protocol when it named one.
reply refusal(const server_options& opts, unsigned status, std::string_view reason)
{
    if (opts.refusal) return opts.refusal(status, reason);
    reply r;
    r.head.status = status;
    r.head.headers.set("Content-Type", "text/plain; charset=utf-8");
    r.head.body = std::string(reason) + "\n";
    return r;
}

}  // namespace

std::string encode_chunk(std::string_view bytes)
{
    std::string out;
    out.reserve(bytes.size() + 20);  // the size line and CR LF around the bytes
    http::append_chunk(out, bytes);
    return out;
}

reply json_reply(std::string body)
{
    reply r;
    r.head.headers.set("Content-Type", "application/json");
    r.head.body = std::move(body);
    return r;
}

namespace {

template <class Stream>
auto& lowest(Stream& s)
{
    return beast::get_lowest_layer(s);
}

template <class Stream>
constexpr bool is_tls = false;
template <class Next>
constexpr bool is_tls<beast::ssl_stream<Next>> = true;

template <class Stream>
class chunk_writer final : public body_writer {
public:
    chunk_writer(Stream& s, std::chrono::milliseconds timeout) : stream_(s), timeout_(timeout)
    {
        // A write that would block must fail at once, not wait: the direct
        // path below runs on the strand every other stream shares.
        if constexpr (!is_tls<Stream>) {
            error_code ignored;
            lowest(stream_).socket().non_blocking(true, ignored);
        }
    }
    awaitable<error_code> write(std::string_view bytes) override
    {
        if (bytes.empty()) co_return error_code{};
        const http::chunk_size_line size(bytes.size());
        const std::array<asio::const_buffer, 3> chunk{asio::buffer(size.view()), asio::buffer(bytes),
                                                      asio::buffer("\r\n", 2)};
        lowest(stream_).expires_after(timeout_);
        auto [ec, n] = co_await asio::async_write(stream_, chunk, nothrow);
        if (ec == beast::error::timeout) ec = errc::timeout;
        co_return ec;
    }
    awaitable<error_code> write_encoded(std::span<const asio::const_buffer> chunks) override
    {
        if (chunks.empty()) co_return error_code{};
        std::string joined;
        asio::const_buffer one;
        if constexpr (is_tls<Stream>) {
            // One TLS record per buffer otherwise: copy a batch into one.
            if (chunks.size() > 1) {
                joined.reserve(asio::buffer_size(chunks));
                for (const auto& b : chunks) joined.append(static_cast<const char*>(b.data()), b.size());
                one = asio::buffer(joined);
                chunks = {&one, 1};
            }
        }
        lowest(stream_).expires_after(timeout_);
        auto [ec, n] = co_await asio::async_write(stream_, chunks, nothrow);
        if (ec == beast::error::timeout) ec = errc::timeout;
        co_return ec;
    }
    std::size_t try_write_encoded(std::span<const asio::const_buffer> chunks, error_code& ec) override
    {
        ec = {};
        if constexpr (is_tls<Stream>) {
            return 0;
        } else {
            const auto n = lowest(stream_).socket().write_some(chunks, ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
            return n;
        }
    }
    [[nodiscard]] bool writes_directly() const noexcept override { return !is_tls<Stream>; }
    [[nodiscard]] std::chrono::milliseconds write_timeout() const noexcept override { return timeout_; }
    void when_writable(void (*fn)(void*), void* arg) override
    {
        if constexpr (!is_tls<Stream>) {
            if (!writable_) writable_ = std::make_shared<writable_wait>();
            writable_->then = {fn, arg};
            if (!fn || writable_->armed) return;
            writable_->armed = true;
            lowest(stream_).socket().async_wait(asio::socket_base::wait_write,
                                                [w = writable_](const error_code& ec) {
                                                    w->armed = false;
                                                    if (ec || !w->then.fn) return;
                                                    const auto then = std::exchange(w->then, {});
                                                    then.fn(then.arg);
                                                });
        }
    }
    void abort() override { lowest(stream_).cancel(); }
    void on_peer_gone(void (*fn)(void*), void* arg) override
    {
        if (watch_) watch_->then = {fn, arg};
    }

    /// Waits for the peer to close or speak (an event stream's subscriber
    /// never speaks again). Waits for readability only, so it never takes
    /// bytes from a TLS layer above. A callback, not a coroutine raced
    /// against the body: that costs a frame and a parallel group per stream.
    void watch_peer()
    {
        watch_ = std::make_shared<peer_watch>();
        arm_watch();
    }
    void arm_watch()
    {
        lowest(stream_).socket().async_wait(
            asio::socket_base::wait_read, [w = watch_, this](const error_code& ec) {
                if (ec == asio::error::operation_aborted || w->done) return;
                // Edge-triggered readiness can be stale (the request's own
                // bytes, read before the reactor saw them): look before
                // calling the peer gone.
                if (!ec) {
                    char b = 0;
                    const auto n =
                        ::recv(lowest(stream_).socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
                    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                        arm_watch();
                        return;
                    }
                }
                w->gone = true;
                // No more writes: they fail at once now.
                error_code ignored;
                lowest(stream_).socket().shutdown(asio::socket_base::shutdown_both, ignored);
                abort();
                if (w->then.fn) w->then.fn(w->then.arg);
            });
    }
    /// After the body returned: whether the peer went first.
    bool unwatch()
    {
        watch_->done = true;
        watch_->then = {};
        return watch_->gone;
    }

private:
    struct callback {
        void (*fn)(void*) = nullptr;
        void* arg = nullptr;
    };
    // Both outlive the writer while their wait is pending.
    struct writable_wait {
        callback then;
        bool armed = false;
    };
    struct peer_watch {
        callback then;
        bool gone = false;
        bool done = false;  // the body returned: the writer may be gone
    };
    Stream& stream_;
    std::chrono::milliseconds timeout_;
    std::shared_ptr<writable_wait> writable_;
    std::shared_ptr<peer_watch> watch_;
};

/// A status that never has a body (RFC 9110 6.4.1): no length is sent.
bool bodiless(unsigned status) noexcept
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/// The status line and fields of `head`, framed by the server. A
/// handler's own Content-Length counts only for HEAD (the length of the GET
/// answer it stands for); its Transfer-Encoding and Connection never: one
/// body framed two ways would read as two messages. Nothing when a field
/// cannot be written safely (CR, LF or NUL in it): the head is not sent.
std::optional<std::string> head_of(http::response& head, unsigned version, bool keep_alive, http::framing how,
                                   std::size_t length, bool head_only)
{
    if (head_only && how == http::framing::length && head.body.empty()) {
        if (const auto given = head.headers.get("Content-Length")) {
            std::size_t n = 0;
            const auto r = std::from_chars(given->data(), given->data() + given->size(), n);
            if (r.ec == std::errc() && r.ptr == given->data() + given->size()) length = n;
        }
    }
    http::drop_framing_fields(head.headers);
    if (bodiless(head.status)) how = http::framing::none;
    std::string out;
    out.reserve(256);
    if (!http::append_response_head(out, head.status, head.headers, version, keep_alive, how, length))
        return std::nullopt;
    return out;
}

/// A handler's reply that cannot be written is its bug, not the peer's:
/// said once a second at most, and answered 500 instead.
void log_unwritable(const http::response& head, const log::logger& log)
{
    static log::throttle unwritable;
    if (std::uint64_t left_out = 0; unwritable.allow(left_out))
        log.error("http.reply_unwritable",
                  {{"status", head.status},
                   {"reason", "a field with CR, LF or NUL, a name that is not a token, or no 3-digit status"},
                   {"suppressed", left_out}});
}

template <class Stream>
awaitable<error_code> write_head_and_body(Stream& stream, const std::string& head, std::string_view body,
                                          const server_options& opts)
{
    // A span, not a std::array of two: Asio's write loop hands a two-array
    // on with its first buffer emptied once that is written, and Beast's
    // ssl_stream (flat_stream) then writes the empty prefix, 0 bytes, which
    // ends the loop early without an error: a TLS body over 16 KiB was never
    // sent. Any other sequence drops the empty buffers first.
    const asio::const_buffer parts[] = {asio::buffer(head), asio::buffer(body)};
    const std::span<const asio::const_buffer> message(parts, body.empty() ? 1 : 2);
    lowest(stream).expires_after(opts.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream, message, nothrow);
    co_return ec;
}

template <class Stream>
awaitable<error_code> write_whole_reply(Stream& stream, reply& rep, bool keep_alive, unsigned version,
                                        const server_options& opts, bool head_only, const log::logger& log)
{
    keep_alive = keep_alive && !rep.stream;
    auto head =
        head_of(rep.head, version, keep_alive, http::framing::length, rep.head.body.size(), head_only);
    if (!head) {
        log_unwritable(rep.head, log);
        auto failed = refusal(opts, 500, "internal error");
        head =
            head_of(failed.head, version, false, http::framing::length, failed.head.body.size(), head_only);
        if (!head) co_return errc::unwritable_message;
        rep = std::move(failed);
        keep_alive = false;
    }
    const std::string_view body = head_only || bodiless(rep.head.status) ? std::string_view() : rep.head.body;
    if (auto ec = co_await write_head_and_body(stream, *head, body, opts)) co_return ec;
    co_return keep_alive ? error_code() : error_code(asio::error::eof);
}

/// The status line and header of a streamed response: their own frame, so
/// the head's text is freed while the body streams for hours.
template <class Stream>
awaitable<error_code> write_stream_head(Stream& stream, reply& rep, bool reuse, unsigned version,
                                        const server_options& opts, const log::logger& log)
{
    if (auto head = head_of(rep.head, version, reuse, http::framing::chunked, 0, false))
        co_return co_await write_head_and_body(stream, *head, std::string_view(), opts);
    // write_whole_reply answers 500 instead and ends the connection (an
    // error or eof): the body is never started.
    co_return co_await write_whole_reply(stream, rep, false, version, opts, false, log);
}

template <class Stream>
awaitable<error_code> write_last_chunk(Stream& stream, const server_options& opts)
{
    lowest(stream).expires_after(opts.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream, asio::buffer(http::last_chunk), nothrow);
    co_return ec;
}

/// Stays suspended while its body streams: locals kept to the writer.
template <class Stream>
awaitable<error_code> write_streamed_reply(Stream& stream, reply& rep, bool reuse, unsigned version,
                                           const server_options& opts, const log::logger& log)
{
    if (auto ec = co_await write_stream_head(stream, rep, reuse, version, opts, log)) co_return ec;
    rep.head = {};
    chunk_writer<Stream> w(stream, opts.write_timeout);
    if (!reuse) w.watch_peer();
    if (auto ec = co_await rep.stream(w)) {
        if (!reuse && w.unwatch()) co_return asio::error::eof;
        co_return ec;
    }
    if (!reuse && w.unwatch()) co_return asio::error::eof;
    if (auto ec = co_await write_last_chunk(stream, opts)) co_return ec;
    co_return reuse ? error_code() : error_code(asio::error::eof);
}

reply refusal_reply(const http::read_failure& f, const server_options& opts)
{
    return refusal(opts, f.http_status(), f.describe({opts.max_header_bytes, opts.max_body_bytes}));
}

/// One read of at most this many bytes at a time: with the reader's own
/// bound on what it holds, no field can reach the size Beast throws at.
constexpr std::size_t read_chunk = 8 * 1024;

// serve_requests below stays suspended for the whole life of an event stream,
// and GCC keeps every local of a coroutine (and the awaiters of its
// co_await expressions) in its frame. What only one request needs (the read
// buffer and read awaiter, the handler call and its failure, the refusal
// answer, the log fields) lives in these short-lived coroutines instead, so
// the frame that thousands of streams keep is small.

/// Reads until `reader` has a whole request or failed. False: the
/// connection closed, reset, timed out or was cancelled.
template <class Stream>
awaitable<bool> read_request(Stream& stream, http::request_reader& reader, http::read_status& st,
                             const server_options& opts)
{
    const auto buf = std::make_unique_for_overwrite<char[]>(read_chunk);
    while (st == http::read_status::need_more) {
        auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf.get(), read_chunk), nothrow);
        if (ec) co_return false;
        const bool was_started = reader.started();
        st = reader.feed({buf.get(), n});
        if (!was_started && reader.started()) lowest(stream).expires_after(opts.header_timeout);
    }
    co_return true;
}

template <class Stream>
awaitable<void> refuse_request(Stream& stream, const http::read_failure& failure, const peer_info& peer,
                               const server_options& opts, const log::logger& log)
{
    static log::throttle refusals;
    if (std::uint64_t left_out = 0; refusals.allow(left_out))
        log.warn("http.request_refused", {{"peer", peer.address},
                                          {"status", failure.http_status()},
                                          {"reason", failure.reason},
                                          {"suppressed", left_out}});
    if (opts.on_refused) opts.on_refused(failure.http_status());
    auto r = refusal_reply(failure, opts);
    co_await write_whole_reply(stream, r, false, 11, opts, false, log);
}

struct request_shape {
    bool keep_alive = true;
    unsigned version = 11;
    bool head_only = false;
};

/// The handler's reply; a throwing handler answers 500 (cancellation
/// propagates).
awaitable<reply> call_handler(const handler& h, http::received_request in, const peer_info& peer,
                              const server_options& opts, const log::logger& log, request_shape& shape)
{
    shape = {in.keep_alive, in.version, in.message.method == "HEAD"};
    std::exception_ptr failure;
    try {
        auto rep = co_await h(std::move(in.message), peer);
        co_return rep;
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) throw;
        failure = std::current_exception();
    } catch (...) {
        failure = std::current_exception();
    }
    log.error("http.handler_failed", {{"error", describe(failure)}});
    co_return refusal(opts, 500, "internal error");
}

/// A stream that ends the connection never reads another request: its
/// reader's buffers go now rather than when the stream ends, hours later.
void drop_reader(http::request_reader& reader)
{
    const http::request_reader gone = std::move(reader);
}

template <class Stream>
awaitable<void> serve_requests(Stream& stream, const handler& h, const peer_info& peer,
                               const server_options& opts, const log::logger& log)
{
    http::request_reader reader({opts.max_header_bytes, opts.max_body_bytes});
    bool first = true;
    for (;;) {
        // Idle wait for the first byte of the next request, then the header
        // timeout from that byte to the complete request.
        auto st = reader.feed({});
        if (st == http::read_status::need_more) {
            lowest(stream).expires_after(first || reader.started() ? opts.header_timeout : opts.idle_timeout);
            if (!co_await read_request(stream, reader, st, opts)) co_return;
        }
        first = false;
        if (st == http::read_status::failed) {
            co_await refuse_request(stream, reader.failure(), peer, opts, log);
            co_return;
        }
        request_shape shape;
        auto rep = co_await call_handler(h, reader.take(), peer, opts, log, shape);
        error_code ec;
        if (rep.stream && !shape.head_only) {  // a HEAD gets the header only
            const bool reuse = shape.keep_alive && rep.reuse_after_stream;
            if (!reuse) drop_reader(reader);  // the connection ends with this body
            ec = co_await write_streamed_reply(stream, rep, reuse, shape.version, opts, log);
        } else {
            ec = co_await write_whole_reply(stream, rep, shape.keep_alive, shape.version, opts,
                                            shape.head_only, log);
        }
        if (ec || !shape.keep_alive) co_return;
    }
}

}  // namespace

awaitable<void> serve_local_stream(asio::local::stream_protocol::socket socket, handler h,
                                   server_options opts, const log::logger& log)
{
    beast::basic_stream<asio::local::stream_protocol, asio::any_io_executor> stream(std::move(socket));
    const peer_info peer{"local", 0};
    co_await serve_requests(stream, h, peer, opts, log);
    error_code ignored;
    stream.socket().shutdown(asio::local::stream_protocol::socket::shutdown_send, ignored);
}

struct http_server::impl {
    impl(const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep, handler hd,
         const log::logger& lg, server_options o, std::shared_ptr<replaceable_tls> t)
        : acceptor(ex), h(std::move(hd)), log(lg), opts(o), tls(std::move(t))
    {
        acceptor.open(ep.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen();
    }

    /// Not a coroutine: a plain connection's frame, which an event stream
    /// keeps for hours, holds nothing of TLS.
    awaitable<void> session(asio::ip::tcp::socket socket, peer_info peer)
    {
        if (tls) return tls_session(std::move(socket), std::move(peer));
        return plain_session(std::move(socket), std::move(peer));
    }

    awaitable<void> plain_session(asio::ip::tcp::socket socket, peer_info peer)
    {
        beast::tcp_stream stream(std::move(socket));
        co_await serve_requests(stream, h, peer, opts, log);
        error_code ignored;
        stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    }

    awaitable<void> tls_session(asio::ip::tcp::socket socket, peer_info peer)
    {
        // Held for the connection: a replacement must not free what it uses.
        const auto ctx = tls->current();
        beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *ctx);
        lowest(stream).expires_after(opts.header_timeout);
        auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, nothrow);
        if (ec) {
            log.debug("http.tls_handshake_failed", {{"peer", peer.address}, {"error", ec.message()}});
            co_return;
        }
        co_await serve_requests(stream, h, peer, opts, log);
        // Bounded: peers often never answer close_notify.
        lowest(stream).expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(nothrow);
    }

    /// Behind a balancer: the client's address is known only once its
    /// header is read, on the connection's strand.
    awaitable<void> proxied_session(asio::ip::tcp::socket socket, peer_info balancer)
    {
        auto header = co_await read_proxy_header(socket, opts.header_timeout);
        if (header.what == proxy_header::status::invalid) {
            if (std::uint64_t left_out = 0; proxy_refusals.allow(left_out))
                log.warn("http.proxy_header_refused",
                         {{"peer", balancer.address}, {"reason", header.reason}, {"suppressed", left_out}});
            if (opts.on_refused) opts.on_refused(400);
            co_return;
        }
        if (header.address.empty()) {
            co_await session(std::move(socket), std::move(balancer));
            co_return;
        }
        peer_info client{header.address, header.port};
        auto group = take_slot(client.address);
        if (!group) co_return;
        struct slot {
            impl& s;
            std::string group;
            ~slot() { s.give_slot(group); }
        } held{*this, std::move(*group)};
        co_await session(std::move(socket), std::move(client));
    }

    /// One more connection from `address`: the key it is counted under
    /// (its group, an IPv6 /64), for give_slot; nullopt (counted and
    /// logged) when that group has its limit.
    std::optional<std::string> take_slot(const std::string& address)
    {
        auto group = address_group(address);
        {
            const std::lock_guard lock(per_ip_mutex);
            auto& open = per_ip[group];
            if (opts.max_connections_per_ip == 0 || open < opts.max_connections_per_ip) {
                ++open;
                return group;
            }
        }
        if (std::uint64_t left_out = 0; per_ip_refusals.allow(left_out))
            log.warn("http.connection_refused", {{"peer", address},
                                                 {"reason", "too many connections from this address"},
                                                 {"limit", opts.max_connections_per_ip},
                                                 {"suppressed", left_out}});
        if (opts.on_refused) opts.on_refused(0);
        return std::nullopt;
    }

    void give_slot(const std::string& group)
    {
        const std::lock_guard lock(per_ip_mutex);
        if (auto n = per_ip.find(group); n != per_ip.end() && --n->second == 0) per_ip.erase(n);
    }

    asio::ip::tcp::acceptor acceptor;
    handler h;
    const log::logger& log;
    server_options opts;
    std::shared_ptr<replaceable_tls> tls;
    // Open connections by address: taken by the accept loop, or behind a
    // balancer by a connection's strand, and given back by either.
    std::mutex per_ip_mutex;
    std::map<std::string, std::size_t> per_ip;
    log::throttle accept_failures;
    log::throttle per_ip_refusals;
    log::throttle proxy_refusals;
};

http_server::http_server(const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep, handler h,
                         const log::logger& log, server_options opts, std::shared_ptr<asio::ssl::context> tls)
    : http_server(ex, ep, std::move(h), log, opts, fixed_tls(std::move(tls)))
{
}

http_server::http_server(const asio::any_io_executor& ex, const asio::ip::tcp::endpoint& ep, handler h,
                         const log::logger& log, server_options opts, std::shared_ptr<replaceable_tls> tls)
    : impl_(std::make_unique<impl>(ex, ep, std::move(h), log, opts, std::move(tls)))
{
}

http_server::~http_server() = default;

asio::ip::tcp::endpoint http_server::local_endpoint() const
{
    return impl_->acceptor.local_endpoint();
}

awaitable<void> http_server::run()
{
    auto& s = *impl_;
    const auto home = co_await asio::this_coro::executor;
    co_await asio::this_coro::reset_cancellation_state(asio::enable_terminal_cancellation());
    co_await asio::this_coro::throw_if_cancelled(false);  // the drain below must still co_await

    // Connections get strands of the underlying io_context, not of the
    // server's own strand, so they can run in parallel on several threads.
    auto& ctx = static_cast<asio::io_context&>(asio::query(home, asio::execution::context));
    task_group connections(home);
    std::vector<asio::strand<asio::io_context::executor_type>> shared;
    for (std::size_t i = 0; i < s.opts.connection_strands; ++i) shared.push_back(asio::make_strand(ctx));
    std::size_t next_shared = 0;
    for (;;) {
        auto conn_strand = shared.empty() ? asio::make_strand(ctx) : shared[next_shared++ % shared.size()];
        auto [ec, socket] = co_await s.acceptor.async_accept(conn_strand, nothrow);
        if (ec == asio::error::operation_aborted) break;
        if (ec) {
            // EMFILE and friends: pause instead of spinning on the error,
            // and say so once a second, not at every retry.
            if (std::uint64_t left_out = 0; s.accept_failures.allow(left_out))
                s.log.warn("http.accept_failed", {{"error", ec.message()}, {"suppressed", left_out}});
            timer pause{home, std::chrono::milliseconds(100)};
            if (auto [wec] = co_await pause.async_wait(); wec) break;
            continue;
        }
        error_code pec;
        const auto remote = socket.remote_endpoint(pec);
        if (pec) continue;
        std::string address = remote.address().to_string();
        // Behind a balancer the slot is the client's, taken once its header is read.
        const bool proxied = s.opts.proxy_from && s.opts.proxy_from(remote.address());
        std::optional<std::string> group;
        if (!proxied) {
            group = s.take_slot(address);
            if (!group) {
                socket.close(pec);
                continue;
            }
        }
        socket.set_option(asio::ip::tcp::no_delay(true), pec);
        if (s.opts.send_buffer_bytes > 0)
            socket.set_option(asio::socket_base::send_buffer_size(s.opts.send_buffer_bytes), pec);
        peer_info peer{address, remote.port()};
        asio::ip::tcp::socket sock(std::move(socket));
        connections.spawn(conn_strand,
                          proxied ? s.proxied_session(std::move(sock), std::move(peer))
                                  : s.session(std::move(sock), std::move(peer)),
                          [&s, group = std::move(group)](const std::exception_ptr& e) {
                              if (group) s.give_slot(*group);
                              if (e) s.log.debug("http.session_ended", {{"error", describe(e)}});
                          });
    }

    error_code ignored;
    s.acceptor.close(ignored);
    connections.stop();
    co_await connections.join();
}

}  // namespace tether::net
