#include "auth/broker.hpp"

#include "auth/broker_rewrite.hpp"
#include "base/exceptions.hpp"
#include "base/task_group.hpp"
#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <optional>
#include <vector>

namespace tether::auth {

namespace http = net::http;
using namespace std::chrono_literals;

namespace {

net::reply broker_error(unsigned status, const std::string& why)
{
    net::reply r;
    r.head.status = status;
    r.head.headers.set("Content-Type", "application/json");
    r.head.headers.set("X-Tether-Broker", "refused");
    r.head.body = boost::json::serialize(boost::json::object{{"error", why}});
    return r;
}

}  // namespace

struct broker::impl {
    broker_options opts;
    credential_source& creds;
    const log::logger& log;
    broker_stats& stats;

    /// Answers the child from the upstream. A response whose body has
    /// arrived whole by the first read (most API answers) goes back in one
    /// piece with its length; any other is streamed to the child chunk by
    /// chunk as it arrives, so a large or endless body is neither buffered
    /// nor delayed.
    awaitable<net::reply> forward(net::http_client& http, http::request req)
    {
        ++stats.requests;
        auto cred = co_await creds.get();
        if (!cred) {
            ++stats.upstream_failures;
            log.warn("broker.credential_unavailable", {{"error", cred.error().message()}});
            co_return broker_error(502, "the broker has no credential right now");
        }
        secret used = *cred;
        for (int attempt = 0;; ++attempt) {
            auto rw = rewrite_request(req, opts.sentinel, used.reveal(), opts.upstream);
            if (!rw) {
                ++stats.refused_requests;
                log.warn("broker.refused", {{"method", req.method}, {"reason", rw.error().reason}});
                co_return broker_error(rw.error().status, rw.error().reason);
            }
            const auto path = rw->request.target.substr(0, rw->request.target.find('?'));
            const auto started = std::chrono::steady_clock::now();
            auto opened = co_await http.open(opts.upstream, std::move(rw->request), opts.upstream_timeout);
            result<std::string> first = std::string();
            if (opened)
                first = co_await (*opened)->read_some(opts.upstream_timeout);
            else
                first = opened.error();
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - started);
            if (!first) {
                ++stats.upstream_failures;
                const bool timed_out = first.error() == net::errc::timeout;
                log.warn("broker.upstream_failed", {{"method", req.method},
                                                    {"path", path},
                                                    {"error", first.error().message()},
                                                    {"ms", ms.count()}});
                co_return broker_error(timed_out ? 504 : 502, timed_out
                                                                  ? "the upstream did not answer in time"
                                                                  : "the upstream is unreachable");
            }
            auto& answer = **opened;
            if (answer.head().status == 401 && attempt == 0 && (rw->injected_header || rw->injected_query)) {
                auto fresh = co_await creds.refresh(used);
                if (fresh && !(*fresh == used)) {
                    used = *fresh;
                    continue;  // the request is buffered: safe to send again
                }
            }
            if (log.enabled(log::level::debug))  // per request: build no fields nobody reads
                log.debug("broker.forwarded", {{"method", req.method},
                                               {"path", path},
                                               {"status", answer.head().status},
                                               {"ms", ms.count()}});
            net::reply rep;
            rep.head = answer.head();
            const bool whole = answer.done();
            if (whole) rep.head.body = std::move(*first);
            if (!scrub_response(rep.head, opts.sentinel, used.reveal(), opts.upstream)) {
                ++stats.upstream_failures;
                log.warn("broker.unsafe_response", {{"method", req.method}, {"path", path}});
                co_return broker_error(502, "the upstream response could not be made safe to pass on");
            }
            if (whole) {
                // HEAD: the length the upstream announced, not our empty body's.
                if (const auto length = answer.head().headers.get("Content-Length");
                    length && http::iequals(req.method, "HEAD"))
                    rep.head.headers.set("Content-Length", *length);
                co_return rep;  // its connection went back to the pool with the stream
            }
            ++stats.streamed_responses;
            rep.reuse_after_stream = true;
            rep.stream = [this, from = std::shared_ptr<net::body_stream>(std::move(*opened)),
                          scrubber = body_scrubber(opts.sentinel, used.reveal()),
                          pending =
                              std::move(*first)](net::body_writer& to) mutable -> awaitable<error_code> {
                auto ec = co_await relay(*from, scrubber, std::move(pending), to);
                co_return ec;
            };
            co_return rep;
        }
    }

    /// Passes a streamed upstream body on, scrubbed, until its end. Any
    /// failure cuts the child's body short (no last chunk).
    awaitable<error_code> relay(net::body_stream& from, body_scrubber& scrubber, std::string piece,
                                net::body_writer& to)
    {
        for (;;) {
            auto safe = scrubber.feed(piece);
            if (!safe) {
                ++stats.upstream_failures;
                log.warn("broker.unsafe_response", {{"streamed", true}});
                error_code ec = net::errc::unsafe_response;
                co_return ec;
            }
            if (auto ec = co_await to.write(*safe)) co_return ec;
            if (from.done()) break;
            auto next = co_await from.read_some(opts.upstream_timeout);
            if (!next) {
                ++stats.upstream_failures;
                log.warn("broker.upstream_failed", {{"streamed", true}, {"error", next.error().message()}});
                error_code ec = next.error();
                co_return ec;
            }
            if (next->empty() && !from.done()) {  // the upstream closed before the end of the body
                error_code ec = asio::error::eof;
                co_return ec;
            }
            piece = std::move(*next);
        }
        auto ec = co_await to.write(scrubber.finish());
        co_return ec;
    }
};

broker::broker(broker_options opts, credential_source& creds, const log::logger& log)
    : impl_(std::make_unique<impl>(impl{std::move(opts), creds, log, stats_}))
{
}

broker::~broker() = default;

awaitable<void> broker::run(int control_fd)
{
    auto& s = *impl_;
    const auto ex = co_await asio::this_coro::executor;
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto cs = co_await asio::this_coro::cancellation_state;
    using seqpacket = asio::generic::seq_packet_protocol;
    seqpacket::socket control(ex, seqpacket(AF_UNIX, SOCK_SEQPACKET), control_fd);

    net::client_options copts;
    copts.max_idle_per_origin = 64;  // concurrent requests of one child reuse their connections
    net::http_client http(ex, s.opts.tls, copts);
    net::server_options sopts;
    sopts.max_body_bytes = s.opts.max_request_body;
    sopts.header_timeout = 30s;
    const net::handler handler = [&s, &http](http::request req, net::peer_info) -> awaitable<net::reply> {
        auto r = co_await s.forward(http, std::move(req));
        co_return r;
    };

    task_group streams(ex);
    std::optional<asio::local::stream_protocol::socket> adopted;
    const auto adopt = [&](int ours) {
        asio::local::stream_protocol::socket sock(ex);
        error_code ec;
        sock.assign(asio::local::stream_protocol(), ours, ec);
        if (!ec) adopted.emplace(std::move(sock));
        return !ec;
    };
    bool closed = false;
    while (!closed && cs.cancelled() == asio::cancellation_type::none) {
        auto [ec] = co_await control.async_wait(seqpacket::socket::wait_read, nothrow);
        if (ec) break;
        // Every datagram waiting is answered before the next wait: one
        // epoll round trip per burst, not per request.
        for (;;) {
            adopted.reset();
            const auto step = next_control_step(control.native_handle(), s.opts.child, adopt);
            using kind = control_step::kind;
            if (step.what == kind::again) break;
            if (step.what == kind::closed) {
                closed = true;  // the child closed fd 3 (or exited)
                break;
            }
            if (step.what == kind::refused) {
                ++stats_.refused_datagrams;
                s.log.warn("broker.datagram_refused", {{"bytes", step.bytes},
                                                       {"descriptors", step.descriptors},
                                                       {"truncated", step.truncated},
                                                       {"outside_child_tree", step.outside_child_tree}});
                continue;
            }
            if (step.what == kind::failed) {
                if (step.error != 0) s.log.warn("broker.socketpair_failed", {{"errno", step.error}});
                continue;
            }
            ++stats_.streams;
            streams.spawn(ex, net::serve_local_stream(std::move(*adopted), handler, sopts, s.log),
                          [&s](const std::exception_ptr& e) {
                              if (e) s.log.debug("broker.stream_ended", {{"error", describe(e)}});
                          });
        }
    }
    // The child is gone or we are stopping: in-flight upstream requests end now.
    streams.stop();
    co_await streams.join();
}

}  // namespace tether::auth
