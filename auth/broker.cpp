#include "auth/broker.hpp"

#include "auth/broker_rewrite.hpp"
#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <list>
#include <sstream>
#include <system_error>
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

struct received {
    std::string bytes;
    bool truncated = false;
    bool descriptors = false;
    bool eof = false;
    bool again = false;
    std::optional<ucred> sender;
};

/// One datagram, without blocking. Descriptors it carried are closed here.
received receive_datagram(int fd)
{
    received out;
    char buf[2];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 32) + CMSG_SPACE(sizeof(ucred))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    ssize_t n = 0;
    do {
        n = ::recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        out.again = errno == EAGAIN || errno == EWOULDBLOCK;
        out.eof = !out.again;
        return out;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            out.descriptors = true;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int passed = -1;
                std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (passed >= 0) ::close(passed);
            }
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            ucred u{};
            std::memcpy(&u, CMSG_DATA(c), sizeof u);
            out.sender = u;
        }
    }
    out.truncated = (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    // SEQPACKET reads 0 for an empty datagram and for the peer's close; with
    // SO_PASSCRED only a real datagram carries credentials.
    if (n == 0 && !out.sender && !out.descriptors) {
        pollfd p{fd, POLLRDHUP, 0};
        out.eof = ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
        if (!out.eof) out.again = true;  // nothing there after all
        return out;
    }
    out.bytes.assign(buf, static_cast<std::size_t>(std::min<ssize_t>(n, 2)));
    return out;
}

void reply_byte(int fd, char b)
{
    (void)::send(fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool send_with_fd(int fd, char b, int passed)
{
    iovec iov{&b, 1};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &passed, sizeof(int));
    ssize_t n = 0;
    do {
        n = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n == 1;
}

}  // namespace

std::pair<int, int> make_control_pair()
{
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair(SOCK_SEQPACKET)");
    const int on = 1;
    if (::setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
        const int e = errno;
        ::close(sv[0]);
        ::close(sv[1]);
        throw std::system_error(e, std::generic_category(), "setsockopt(SO_PASSCRED)");
    }
    return {sv[0], sv[1]};
}

bool in_process_tree(pid_t pid, pid_t root)
{
    for (int depth = 0; pid > 1 && depth < 64; ++depth) {
        if (pid == root) return true;
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) return false;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const auto close = line.rfind(')');
        if (close == std::string::npos) return false;
        std::istringstream rest(line.substr(close + 1));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        pid = ppid;
    }
    return pid == root;
}

struct broker::impl {
    broker_options opts;
    credential_source& creds;
    const log::logger& log;
    broker_stats& stats;

    struct proxy {
        asio::cancellation_signal cancel;
        bool done = false;
    };

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
                error_code ec = net::errc::stream_ended;
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

    std::list<impl::proxy> proxies;  // this strand only; std::list: signals must not move
    timer drained{ex};
    for (;;) {
        if (cs.cancelled() != asio::cancellation_type::none) break;
        auto [ec] = co_await control.async_wait(seqpacket::socket::wait_read, nothrow);
        if (ec) break;
        // Every datagram waiting is answered before the next wait: one
        // epoll round trip per burst, not per request.
        bool closed = false;
        for (;;) {
            const int fd = control.native_handle();
            const auto d = receive_datagram(fd);
            if (d.eof) {
                closed = true;  // the child closed fd 3 (or exited)
                break;
            }
            if (d.again) break;
            const bool outsider =
                s.opts.child > 0 && (!d.sender || !in_process_tree(d.sender->pid, s.opts.child));
            if (outsider ||
                classify_control(d.bytes, d.truncated, d.descriptors) == control_request::refuse) {
                ++stats_.refused_datagrams;
                s.log.warn("broker.datagram_refused", {{"bytes", d.bytes.size()},
                                                       {"descriptors", d.descriptors},
                                                       {"truncated", d.truncated},
                                                       {"outside_child_tree", outsider}});
                reply_byte(fd, control_refuse);
                continue;
            }
            int sv[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
                s.log.warn("broker.socketpair_failed", {{"errno", errno}});
                reply_byte(fd, control_refuse);
                continue;
            }
            // Ours is wrapped (and so known good) before the peer end leaves.
            asio::local::stream_protocol::socket ours(ex);
            error_code aec;
            ours.assign(asio::local::stream_protocol(), sv[0], aec);
            if (aec) {
                ::close(sv[0]);
                ::close(sv[1]);
                reply_byte(fd, control_refuse);
                continue;
            }
            const bool sent = send_with_fd(fd, control_accept, sv[1]);
            ::close(sv[1]);
            if (!sent) continue;  // ours closes with the socket object
            ++stats_.streams;
            auto& p = proxies.emplace_back();
            asio::co_spawn(ex, net::serve_local_stream(std::move(ours), handler, sopts, s.log),
                           asio::bind_cancellation_slot(
                               p.cancel.slot(), [&p, &drained, &s](const std::exception_ptr& e) {
                                   p.done = true;
                                   drained.cancel();
                                   if (e) {
                                       try {
                                           std::rethrow_exception(e);
                                       } catch (const std::exception& x) {
                                           s.log.debug("broker.stream_ended", {{"error", x.what()}});
                                       }
                                   }
                               }));
        }
        proxies.remove_if([](const impl::proxy& x) { return x.done; });
        if (closed) break;
    }
    // The child is gone or we are stopping: in-flight upstream requests end now.
    for (auto& p : proxies)
        if (!p.done) p.cancel.emit(asio::cancellation_type::terminal);
    while (std::any_of(proxies.begin(), proxies.end(), [](const impl::proxy& p) { return !p.done; })) {
        drained.expires_after(10s);
        auto [wec] = co_await drained.async_wait();
        (void)wec;
    }
}

}  // namespace tether::auth
