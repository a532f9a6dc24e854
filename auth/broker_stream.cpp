#include "auth/broker_stream.hpp"

#include "auth/broker.hpp"
#include "auth/broker_rewrite.hpp"
#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "net/http_reader.hpp"
#include "net/http_writer.hpp"
#include "net/plain_http_endpoints.hpp"
#include "net/tls.hpp"
#include "net/tls_records.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <optional>
#include <vector>

namespace tether::auth {

namespace http = net::http;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

/// One read at a time from either side, into the stream's one buffer.
constexpr std::size_t read_chunk = std::size_t{16} * 1024;
/// Kept-alive upstream connections: a child's concurrent requests reuse them.
constexpr std::size_t max_idle_upstream = 64;
constexpr std::chrono::milliseconds header_timeout = 30s;  // first byte to whole request
constexpr std::chrono::milliseconds idle_timeout = 20s;    // between a child's requests
constexpr std::chrono::milliseconds write_timeout = 10s;   // one reply to the child
constexpr std::size_t max_header_bytes = std::size_t{16} * 1024;

struct upstream_conn {
    explicit upstream_conn(const asio::any_io_executor& ex) : sock(ex) {}

    asio::ip::tcp::socket sock;
    /// What `tls` was made with, kept as long (the context may be replaced).
    std::shared_ptr<asio::ssl::context> tls_context;
    /// Null for plain HTTP. Records are read by the socket's own reads and
    /// written straight to it: no composed SSL operation per request.
    std::unique_ptr<net::tls_records> tls;
    std::string wire;   ///< records on their way out
    std::string plain;  ///< what the last read decrypted
    bool reused = false;

    asio::ip::tcp::socket& lowest() { return sock; }
};

/// What one child stream holds while it lives.
struct stream_state {
    explicit stream_state(asio::local::stream_protocol::socket s)
        : child(std::move(s)), buf(std::make_unique_for_overwrite<char[]>(read_chunk))
    {
        // write_child tries a direct write first: it must fail, not block.
        // An accepted stream is non-blocking already (net/own_socket.hpp).
        error_code ignored;
        if (!child.non_blocking()) child.non_blocking(true, ignored);
    }

    asio::local::stream_protocol::socket child;
    upstream_conn* up = nullptr;  ///< the upstream connection in use, for the watchdog
    asio::ip::tcp::resolver* resolving = nullptr;
    clock::time_point deadline = clock::time_point::max();
    bool timed_out = false;
    std::unique_ptr<char[]> buf;
    std::string out;  ///< the next bytes for the child or the upstream
    std::list<stream_state*>::iterator self;

    /// One deadline for whatever the stream waits for next.
    void arm(std::chrono::milliseconds d)
    {
        timed_out = false;
        deadline = clock::now() + d;
    }

    /// Called at every tick while the deadline is past, not once: an
    /// operation that completed just before the cancel would otherwise let
    /// the next one run with no deadline at all.
    void expire()
    {
        timed_out = true;
        error_code ignored;
        child.cancel(ignored);
        if (up) up->lowest().cancel(ignored);
        if (resolving) resolving->cancel();
    }

    /// An operation's failure, named `timeout` when the watchdog caused it.
    [[nodiscard]] error_code failure(error_code ec) const
    {
        if (timed_out && ec == asio::error::operation_aborted) return net::errc::timeout;
        return ec;
    }

    /// The request for the upstream carried the credential.
    void wipe_out() noexcept
    {
        if (!out.empty()) OPENSSL_cleanse(out.data(), out.size());
        out.clear();
    }
};

/// Writes `bytes` now as far as the socket (non-blocking) takes them: most
/// messages fit, and need no operation whose completion would take two
/// trips through the scheduler and the strand. `before_wait` runs before
/// an operation for the rest, to arm its deadline.
template <class Socket, class BeforeWait>
awaitable<error_code> write_now(Socket& s, std::string_view bytes, BeforeWait before_wait)
{
    error_code ec;
    const std::size_t sent = s.write_some(asio::buffer(bytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
    if (!ec && sent < bytes.size()) {
        before_wait();
        auto [wec, n] = co_await asio::async_write(s, asio::buffer(bytes.substr(sent)), nothrow);
        ec = wec;
    }
    co_return ec;
}

/// For upstream writes: send() armed the stream's deadline for the whole
/// exchange already.
constexpr auto deadline_armed = [] {
};

/// A rewritten request held the credential in its target or a field.
void wipe(http::request& r) noexcept
{
    OPENSSL_cleanse(r.target.data(), r.target.size());
    for (auto& f : r.headers) OPENSSL_cleanse(f.value.data(), f.value.size());
    r = {};
}

/// The upstream connection the watchdog may cancel, for as long as it is
/// alive: st.up is cleared before the connection is closed or pooled.
struct up_guard {
    up_guard(stream_state& s, upstream_conn* c) : st(s) { st.up = c; }
    ~up_guard()
    {
        if (!keep) st.up = nullptr;
    }
    up_guard(const up_guard&) = delete;
    up_guard& operator=(const up_guard&) = delete;
    stream_state& st;
    bool keep = false;
};

}  // namespace

struct stream_proxy::impl {
    impl(asio::any_io_executor e, const broker_options& o, credential_source& c, const log::logger& l,
         broker_stats& s)
        : ex(std::move(e)), opts(o), creds(c), log(l), stats(s)
    {
    }

    asio::any_io_executor ex;
    const broker_options& opts;
    credential_source& creds;
    const log::logger& log;
    broker_stats& stats;
    std::list<stream_state*> live;
    std::vector<std::unique_ptr<upstream_conn>> idle;
    log::throttle refusals;
    bool stopping = false;                           ///< the broker is stopping: no stream may wait any more
    std::optional<response_scrubber> head_scrubber;  ///< for the credential last used

    const response_scrubber& scrubber_for(const secret& used)
    {
        if (!head_scrubber || !head_scrubber->made_for(used))
            head_scrubber.emplace(opts.sentinel, used.reveal(), opts.upstream);
        return *head_scrubber;
    }

    [[nodiscard]] http::read_limits upstream_limits() const { return {max_header_bytes, std::nullopt}; }
    [[nodiscard]] http::read_limits request_limits() const
    {
        return {max_header_bytes, opts.max_request_body};
    }

    std::unique_ptr<upstream_conn> take_idle()
    {
        if (idle.empty()) return nullptr;
        auto c = std::move(idle.back());
        idle.pop_back();
        c->reused = true;
        return c;
    }

    void give_back(std::unique_ptr<upstream_conn> c, const http::response_reader& reader)
    {
        if (reader.done() && reader.keep_alive() && idle.size() < max_idle_upstream)
            idle.push_back(std::move(c));
    }

    awaitable<result<std::unique_ptr<upstream_conn>>> connect(stream_state& st)
    {
        // Every co_return names a local: GCC 12 mis-destroys temporaries
        // converted into the coroutine's return type (base/asio.hpp).
        const auto& u = opts.upstream;
        if (u.tls() && !opts.tls) {
            const error_code refused = net::errc::url_refused;
            co_return refused;
        }
        asio::ip::tcp::resolver resolver(ex);
        st.resolving = &resolver;
        auto [rec, resolved] = co_await resolver.async_resolve(u.host, std::to_string(u.port), nothrow);
        st.resolving = nullptr;
        if (rec) {
            const auto failed = st.failure(rec);
            co_return failed;
        }
        const auto endpoints = net::permitted_endpoints(u, resolved);
        if (endpoints.empty()) {
            const auto failed = st.failure(net::errc::not_loopback);
            co_return failed;
        }

        auto c = std::make_unique<upstream_conn>(ex);
        up_guard in_use{st, c.get()};
        auto [cec, ep] = co_await asio::async_connect(c->sock, endpoints, nothrow);
        if (cec) {
            const auto failed = st.failure(cec);
            co_return failed;
        }
        error_code ignored;
        c->sock.set_option(asio::ip::tcp::no_delay(true), ignored);
        // Written to directly (write_now): a write must fail, not block.
        c->sock.non_blocking(true, ignored);
        if (!u.tls()) {
            in_use.keep = true;
            co_return c;
        }

        c->tls_context = opts.tls->current();
        c->tls = std::make_unique<net::tls_records>(c->tls_context->native_handle());
        SSL* ssl = c->tls->native_handle();
        if (auto ec = net::prepare_client_session(ssl, u.host)) co_return ec;
        // The context's verify callback, if any, stays.
        SSL_set_verify(ssl, SSL_VERIFY_PEER, SSL_get_verify_callback(ssl));
        for (;;) {
            bool complete = false;
            const error_code hec = c->tls->handshake(c->wire, complete);
            if (!c->wire.empty()) {
                const error_code wec = co_await write_now(c->sock, c->wire, deadline_armed);
                c->wire.clear();
                if (wec && !hec) {
                    const auto failed = st.failure(wec);
                    co_return failed;
                }
            }
            if (hec) {
                const error_code why = net::verify_failure(SSL_get_verify_result(ssl));
                const error_code failed = why ? why : hec;
                co_return failed;
            }
            if (complete) break;
            auto [hrec, n] =
                co_await c->sock.async_read_some(asio::buffer(st.buf.get(), read_chunk), nothrow);
            if (hrec) {
                const error_code failed =
                    hrec == asio::error::eof ? error_code(net::errc::bad_response) : st.failure(hrec);
                co_return failed;
            }
            if (!c->tls->push({st.buf.get(), n})) {
                const error_code failed = net::errc::bad_response;
                co_return failed;
            }
        }
        in_use.keep = true;
        co_return c;
    }

    /// Reads from the upstream into `reader` until `enough` holds. A close
    /// completes a body delimited by it; any other close or error is returned.
    template <class F>
    awaitable<error_code> read_upstream(stream_state& st, upstream_conn& c, http::response_reader& reader,
                                        F enough)
    {
        while (!enough()) {
            auto [ec, n] = co_await c.sock.async_read_some(asio::buffer(st.buf.get(), read_chunk), nothrow);
            bool closed = ec == asio::error::eof;
            if (ec && !closed) co_return st.failure(ec);
            http::read_status rs = http::read_status::need_more;
            if (!ec) {
                std::string_view got{st.buf.get(), n};
                if (c.tls) {
                    c.plain.clear();
                    if (const error_code tec = c.tls->receive(got, c.plain, closed)) co_return tec;
                    got = c.plain;
                    // An alert or a key update to answer: rare, but owed.
                    c.wire.clear();
                    c.tls->take_output(c.wire);
                    if (!c.wire.empty())
                        if (const error_code wec = co_await write_now(c.sock, c.wire, deadline_armed))
                            co_return st.failure(wec);
                }
                if (!got.empty()) rs = reader.feed(got);
            }
            // A close (with close_notify or without) completes a body
            // delimited by it; before any answer it means a stale connection.
            if (closed && rs == http::read_status::need_more) {
                if (!reader.got_some()) co_return asio::error::eof;
                rs = reader.feed_eof();
            }
            if (rs == http::read_status::failed) co_return reader.failure().client_error();
            if (closed) break;
        }
        co_return error_code{};
    }

    /// Sends st.out and reads the response header (and the body, when it
    /// is there by then) on a kept-alive connection when there is one, else
    /// on a fresh one; a stale kept-alive connection gets one retry.
    awaitable<result<std::unique_ptr<upstream_conn>>> send(stream_state& st, http::response_reader& reader,
                                                           bool head)
    {
        st.arm(opts.upstream_timeout);  // connect, write and the header, together
        for (int attempt = 0;; ++attempt) {
            auto conn = attempt == 0 ? take_idle() : nullptr;
            if (!conn) {
                auto fresh = co_await connect(st);
                if (!fresh) {
                    const error_code failed = fresh.error();
                    co_return failed;
                }
                conn = std::move(*fresh);
            }
            up_guard in_use{st, conn.get()};
            std::string_view bytes = st.out;
            if (conn->tls) {
                conn->wire.clear();
                if (const error_code tec = conn->tls->write(st.out, conn->wire)) co_return tec;
                bytes = conn->wire;
            }
            const error_code wec = co_await write_now(conn->sock, bytes, deadline_armed);
            if (wec) {
                if (conn->reused && net::stale_connection(wec)) continue;
                const auto failed = st.failure(wec);
                co_return failed;
            }
            if (attempt > 0) reader = http::response_reader(upstream_limits(), head);
            const auto rec = co_await read_upstream(st, *conn, reader, [&reader] {
                return reader.header_done() && (reader.done() || reader.has_body());
            });
            if (rec) {
                if (conn->reused && !reader.got_some() && net::stale_connection(rec)) continue;
                const error_code failed = rec == asio::error::eof ? error_code(net::errc::bad_response) : rec;
                co_return failed;
            }
            in_use.keep = true;
            co_return conn;
        }
    }

    awaitable<bool> write_child(stream_state& st)
    {
        const error_code ec = co_await write_now(st.child, st.out, [&st] { st.arm(write_timeout); });
        st.out.clear();
        co_return !ec;
    }

    /// A reply of the broker's own: JSON naming why, X-Tether-Broker: refused.
    awaitable<bool> answer_error(stream_state& st, const http::received_request& in, unsigned status,
                                 std::string_view why)
    {
        http::fields f;
        f.add("Content-Type", "application/json");
        f.add("X-Tether-Broker", "refused");
        const std::string body = boost::json::serialize(boost::json::object{{"error", why}});
        st.out.clear();
        (void)http::append_response_head(st.out, status, f, in.version, in.keep_alive, http::framing::length,
                                         body.size());
        if (in.message.method != "HEAD") st.out += body;
        const bool ok = co_await write_child(st);
        co_return ok;
    }

    /// A request the reader refused: answered, then the connection ends.
    awaitable<void> refuse(stream_state& st, const http::read_failure& failure)
    {
        if (std::uint64_t left_out = 0; refusals.allow(left_out))
            log.warn(
                "broker.refused",
                {{"status", failure.http_status()}, {"reason", failure.reason}, {"suppressed", left_out}});
        ++stats.refused_requests;
        const std::string body = failure.describe(request_limits()) + "\n";
        http::fields f;
        f.add("Content-Type", "text/plain; charset=utf-8");
        st.out.clear();
        (void)http::append_response_head(st.out, failure.http_status(), f, 11, false, http::framing::length,
                                         body.size());
        st.out += body;
        co_await write_child(st);
    }

    /// Passes a body that was not whole by the first read on as it arrives,
    /// scrubbed, chunked (close-delimited to an HTTP/1.0 child). False: the
    /// child's body was cut short and its connection must end.
    awaitable<bool> relay(stream_state& st, upstream_conn& c, http::response_reader& reader,
                          const secret& used, bool chunked)
    {
        body_scrubber scrubber(opts.sentinel, used.reveal());
        for (;;) {
            auto safe = scrubber.feed(reader.take_body());
            if (!safe) {
                ++stats.upstream_failures;
                log.warn("broker.unsafe_response", {{"streamed", true}});
                co_return false;
            }
            if (reader.done()) *safe += scrubber.finish();
            if (chunked) {
                http::append_chunk(st.out, *safe);
                if (reader.done()) st.out += http::last_chunk;
            } else {
                st.out += *safe;
            }
            if (!st.out.empty() && !co_await write_child(st)) co_return false;
            if (reader.done()) co_return true;
            st.arm(opts.upstream_timeout);
            const auto ec = co_await read_upstream(st, c, reader,
                                                   [&reader] { return reader.done() || reader.has_body(); });
            if (ec) {
                ++stats.upstream_failures;
                log.warn("broker.upstream_failed",
                         {{"streamed", true},
                          {"error",
                           (ec == asio::error::eof ? error_code(net::errc::bad_response) : ec).message()}});
                co_return false;
            }
        }
    }

    /// One request of the child, answered. False: the connection ends.
    awaitable<bool> exchange(stream_state& st, const http::received_request& in,
                             const asio::cancellation_state& cs)
    {
        ++stats.requests;
        const bool head = in.message.method == "HEAD";
        // A fixed credential is used where it is: no copy, no call.
        const secret* fixed = creds.fixed();
        secret fetched;
        if (!fixed) {
            auto cred = co_await creds.get();
            if (!cred) {
                ++stats.upstream_failures;
                log.warn("broker.credential_unavailable", {{"error", cred.error().message()}});
                const bool ok = co_await answer_error(st, in, 502, "the broker has no credential right now");
                co_return ok;
            }
            fetched = std::move(*cred);
        }
        for (int attempt = 0;; ++attempt) {
            const secret& used = fixed ? *fixed : fetched;
            auto rw = rewrite_request(in.message, opts.sentinel, used.reveal(), opts.upstream);
            if (!rw) {
                ++stats.refused_requests;
                log.warn("broker.refused", {{"method", in.message.method}, {"reason", rw.error().reason}});
                const bool ok = co_await answer_error(st, in, rw.error().status, rw.error().reason);
                co_return ok;
            }
            if (!rw->request.headers.get("User-Agent")) rw->request.headers.add("User-Agent", "tether");
            st.out.clear();
            if (!http::append_request(st.out, rw->request)) {
                st.wipe_out();
                ++stats.refused_requests;
                log.warn("broker.refused", {{"method", in.message.method}, {"reason", "unwritable field"}});
                const bool ok =
                    co_await answer_error(st, in, 400, "the request cannot be forwarded as it is");
                co_return ok;
            }
            const auto path = rw->request.target.substr(0, rw->request.target.find('?'));
            wipe(rw->request);  // the credential, no longer needed
            const auto started = clock::now();
            http::response_reader reader(upstream_limits(), head);
            auto conn = co_await send(st, reader, head);
            st.wipe_out();
            // Whatever way this request ends, the watchdog forgets the
            // connection before it is closed; before it is reset or pooled
            // below, st.up is cleared by hand.
            up_guard in_use{st, conn ? conn->get() : nullptr};
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
            if (!conn) {
                if (cs.cancelled() != asio::cancellation_type::none) co_return false;
                ++stats.upstream_failures;
                const bool timed_out = conn.error() == net::errc::timeout;
                log.warn("broker.upstream_failed", {{"method", in.message.method},
                                                    {"path", path},
                                                    {"error", conn.error().message()},
                                                    {"ms", ms.count()}});
                const bool ok = co_await answer_error(
                    st, in, timed_out ? 504 : 502,
                    timed_out ? "the upstream did not answer in time" : "the upstream is unreachable");
                co_return ok;
            }
            const auto status = reader.head().status;
            if (status < 200) {
                // An interim answer we did not ask for (Expect is never
                // forwarded): what follows it on this connection would be
                // read as the next request's answer, so the connection goes.
                st.up = nullptr;
                conn->reset();
                ++stats.upstream_failures;
                log.warn("broker.upstream_failed",
                         {{"method", in.message.method}, {"path", path}, {"status", status}});
                const bool ok = co_await answer_error(st, in, 502, "the upstream sent an interim response");
                co_return ok;
            }
            // A fixed credential has nothing fresher to offer.
            if (status == 401 && attempt == 0 && !fixed && (rw->injected_header || rw->injected_query)) {
                auto fresh = co_await creds.refresh(used);
                if (fresh && !(*fresh == used)) {
                    st.up = nullptr;
                    conn->reset();  // its answer was not read to the end
                    fetched = std::move(*fresh);
                    continue;  // the request is buffered: safe to send again
                }
            }
            if (log.enabled(log::level::debug))  // per request: build no fields nobody reads
                log.debug(
                    "broker.forwarded",
                    {{"method", in.message.method}, {"path", path}, {"status", status}, {"ms", ms.count()}});
            // HEAD: the length the upstream announced (the reader checked
            // its digits), not our empty body's; scrubbing drops the field.
            std::optional<std::size_t> announced;
            if (head)
                if (const auto cl = reader.head().headers.get("Content-Length"))
                    announced = std::strtoull(std::string(*cl).c_str(), nullptr, 10);
            http::response rep = reader.take_head();
            const bool whole = reader.done();
            if (whole) rep.body = reader.take_body();
            if (!scrubber_for(used)(rep)) {
                ++stats.upstream_failures;
                log.warn("broker.unsafe_response", {{"method", in.message.method}, {"path", path}});
                const bool ok = co_await answer_error(
                    st, in, 502, "the upstream response could not be made safe to pass on");
                co_return ok;
            }
            const bool no_body = status < 200 || status == 204 || status == 304;
            st.out.clear();
            if (whole || no_body || head) {
                const auto how = no_body ? http::framing::none : http::framing::length;
                if (!http::append_response_head(st.out, status, rep.headers, in.version, in.keep_alive, how,
                                                announced.value_or(rep.body.size()))) {
                    ++stats.upstream_failures;
                    const bool ok =
                        co_await answer_error(st, in, 502, "the upstream response has an unwritable field");
                    co_return ok;
                }
                if (!head && !no_body) st.out += rep.body;
                st.up = nullptr;
                if (whole) give_back(std::move(*conn), reader);
                const bool ok = co_await write_child(st);
                co_return ok;
            }
            ++stats.streamed_responses;
            const bool chunked = in.version >= 11;
            const bool keep = in.keep_alive && chunked;
            if (!http::append_response_head(st.out, status, rep.headers, in.version, keep,
                                            chunked ? http::framing::chunked : http::framing::close, 0)) {
                ++stats.upstream_failures;
                const bool ok =
                    co_await answer_error(st, in, 502, "the upstream response has an unwritable field");
                co_return ok;
            }
            const bool complete = co_await relay(st, **conn, reader, used, chunked);
            st.up = nullptr;
            if (complete) give_back(std::move(*conn), reader);
            co_return complete&& keep;
        }
    }

    awaitable<void> serve(asio::local::stream_protocol::socket sock)
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        const auto cs = co_await asio::this_coro::cancellation_state;
        stream_state st(std::move(sock));
        st.self = live.insert(live.end(), &st);
        struct unlist {
            impl& p;
            stream_state& s;
            ~unlist() { p.live.erase(s.self); }
        } const registered{*this, st};
        // Spawned as the broker began to stop: its own cancellation may have
        // come before it could take it.
        if (stopping || cs.cancelled() != asio::cancellation_type::none) co_return;

        http::request_reader reader(request_limits());
        bool first = true;
        for (;;) {
            auto rs = reader.feed({});
            if (rs == http::read_status::need_more) {
                st.arm(first || reader.started() ? header_timeout : idle_timeout);
                while (rs == http::read_status::need_more) {
                    auto [ec, n] =
                        co_await st.child.async_read_some(asio::buffer(st.buf.get(), read_chunk), nothrow);
                    if (ec) co_return;  // closed, reset, timed out or cancelled
                    const bool was_started = reader.started();
                    rs = reader.feed({st.buf.get(), n});
                    if (!was_started && reader.started()) st.arm(header_timeout);
                }
            }
            first = false;
            if (rs == http::read_status::failed) {
                co_await refuse(st, reader.failure());
                break;
            }
            const auto in = reader.take();
            if (!co_await exchange(st, in, cs) || !in.keep_alive) break;
            if (cs.cancelled() != asio::cancellation_type::none) break;
        }
        // No shutdown first: the child holds the only other end, and the
        // close alone gives it the end of the stream, one call cheaper.
    }

    /// Also the broker's drain: once cancelled, it cancels every stream's
    /// operation at every short tick until no stream is left. A stream's
    /// own cancellation can miss: emitted while its last completion was
    /// queued, it reaches no operation, and the next one would then wait
    /// for its peer or its deadline, past the supervisor's drain.
    awaitable<void> watch_deadlines()
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        const auto cs = co_await asio::this_coro::cancellation_state;
        const auto here = co_await asio::this_coro::executor;
        // A quarter of the shortest deadline: a timeout fires at most that late.
        const auto shortest = std::min({opts.upstream_timeout, write_timeout, idle_timeout});
        const auto period = std::clamp<std::chrono::milliseconds>(shortest / 4, 10ms, 250ms);
        timer tick(here);
        for (;;) {
            // Checked here, not only as the wait's error: a cancellation
            // emitted between two waits reaches neither.
            if (cs.cancelled() != asio::cancellation_type::none) stopping = true;
            if (stopping) {
                for (auto* s : live) s->expire();
                if (live.empty()) co_return;
            }
            tick.expires_after(stopping ? 10ms : period);
            co_await tick.async_wait();
            const auto now = clock::now();
            for (auto* s : live)
                if (s->deadline <= now) s->expire();
        }
    }
};

stream_proxy::stream_proxy(asio::any_io_executor ex, const broker_options& opts, credential_source& creds,
                           const log::logger& log, broker_stats& stats)
    : impl_(std::make_unique<impl>(std::move(ex), opts, creds, log, stats))
{
}

stream_proxy::~stream_proxy() = default;

awaitable<void> stream_proxy::serve(asio::local::stream_protocol::socket child)
{
    return impl_->serve(std::move(child));
}

std::size_t stream_proxy::open_streams() const noexcept
{
    return impl_->live.size();
}

awaitable<void> stream_proxy::watch_deadlines()
{
    return impl_->watch_deadlines();
}

}  // namespace tether::auth
