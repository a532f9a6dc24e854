#include "auth/broker.hpp"

#include "auth/broker_control.hpp"
#include "auth/broker_rewrite.hpp"
#include "auth/broker_stream.hpp"
#include "base/exceptions.hpp"
#include "base/task_group.hpp"
#include "net/own_socket.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>

#include <unistd.h>

#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

namespace tether::auth {

struct broker::impl {
    impl(broker_options o, credential_source& c, const log::logger& l) : opts(std::move(o)), creds(c), log(l)
    {
    }

    broker_options opts;
    credential_source& creds;
    const log::logger& log;
    log::throttle refusals;
    log::throttle accept_failures;

    /// Our end of a new stream as a socket; nullopt leaves `fd` open.
    /// Both kinds are made here and never shared (the child gets the other
    /// end), so Asio may close them without asking epoll first.
    static std::optional<asio::local::stream_protocol::socket> adopt(const asio::any_io_executor& ex, int fd,
                                                                     net::descriptor_mode mode)
    {
        return net::adopt_own_socket(ex, asio::local::stream_protocol(), fd, mode);
    }

    /// Stream pairs made ahead of the next request, so that answering it
    /// takes a send and no socketpair (6.5-15 us with its close on this
    /// project's VM: bench_syscalls), a cost of the fd 3 handshake that a
    /// connect() to nginx does not have. As many are kept as the last
    /// request asked for (one, or N for `0x02 N`), made while the child
    /// uses the streams it has. Ours are adopted (not served) until handed
    /// over, so their deadlines start with the child's.
    struct spare_pool {
        struct spare {
            asio::local::stream_protocol::socket ours;
            int theirs;
        };
        std::vector<spare> ready;
        std::size_t wanted = 1;

        spare_pool() { ready.reserve(max_control_batch); }
        spare_pool(const spare_pool&) = delete;
        spare_pool& operator=(const spare_pool&) = delete;
        ~spare_pool()
        {
            for (const auto& s : ready) ::close(s.theirs);
        }

        /// One more pair. False with errno set (0: Asio refused ours).
        bool make_one(const asio::any_io_executor& ex)
        {
            const auto [a, b] = make_stream_pair();
            if (a < 0) return false;
            auto ours = adopt(ex, a, net::descriptor_mode::blocking);  // the child's end must block
            if (!ours) {
                ::close(a);
                ::close(b);
                errno = 0;
                return false;
            }
            // Ours reads and writes without blocking (the stream's direct
            // writes need it): set now rather than when the child waits.
            error_code ignored;
            ours->non_blocking(true, ignored);
            ready.push_back({std::move(*ours), b});
            return true;
        }

        [[nodiscard]] bool full() const noexcept { return ready.size() >= wanted; }
    };

    /// Whether to wait after serving this request rather than look for the
    /// next one; asked before it is served. Every wait re-arms the
    /// descriptor (Asio's epoll_ctl MOD), which reports anything that came
    /// meanwhile, so a lone request's look that could only find EAGAIN is a
    /// system call wasted (1-1.7 us on this project's VM). With streams
    /// open, requests come in bursts: those are drained first and share one
    /// wait.
    static bool lone_request(const stream_proxy& proxy) { return proxy.open_streams() == 0; }

    /// One stream served, however it came: fd 3 or the listening socket.
    /// An fd 3 stream makes one spare pair for `refill` when it ends, if
    /// the pool wants one: a batch's pairs are made one per stream used,
    /// as one-at-a-time requests make them, rather than all at once in
    /// the way of the requests on its streams.
    void serve(asio::local::stream_protocol::socket sock, stream_proxy& proxy, task_group& streams,
               broker_stats& stats, spare_pool* refill = nullptr)
    {
        ++stats.streams;
        const auto ex = sock.get_executor();
        streams.spawn(ex, proxy.serve(std::move(sock)), [this, refill, ex](const std::exception_ptr& e) {
            if (e) log.debug("broker.stream_ended", {{"error", describe(e)}});
            if (refill && !refill->full()) (void)refill->make_one(ex);
        });
    }

    /// Streams for connections to the listening socket: every one waiting
    /// is taken per wake-up (unless it came alone), each peer checked like
    /// a datagram's sender.
    awaitable<void> accept_streams(stream_proxy& proxy, task_group& streams, broker_stats& stats)
    {
        co_await asio::this_coro::throw_if_cancelled(false);
        const auto cs = co_await asio::this_coro::cancellation_state;
        const auto ex = co_await asio::this_coro::executor;
        asio::local::stream_protocol::acceptor listener(ex, asio::local::stream_protocol(), opts.listen_fd);
        // Take what is waiting before each wait: a connection made before
        // the listener joined the reactor gives no edge to wait for.
        for (bool waited = false;; waited = true) {
            // Checked before each wait too: a cancellation emitted while a
            // wake-up was queued reaches no wait.
            if (cs.cancelled() != asio::cancellation_type::none) co_return;
            if (waited) {
                auto [ec] = co_await listener.async_wait(asio::socket_base::wait_read, nothrow);
                if (ec) co_return;  // cancelled: the broker is stopping
            }
            for (;;) {
                const auto step = next_accept(listener.native_handle(), opts.child);
                using kind = accept_step::kind;
                if (step.what == kind::again) break;
                if (step.what == kind::refused) {
                    ++stats.refused_connections;
                    if (std::uint64_t left_out = 0; refusals.allow(left_out))
                        log.warn("broker.connection_refused", {{"peer_pid", step.peer},
                                                               {"reason", "outside the child's process tree"},
                                                               {"suppressed", left_out}});
                    continue;
                }
                if (step.what == kind::failed) {
                    // EMFILE and friends: a pause, not a spin on the error.
                    if (std::uint64_t left_out = 0; accept_failures.allow(left_out))
                        log.warn("broker.accept_failed", {{"errno", step.error}, {"suppressed", left_out}});
                    timer pause{ex, std::chrono::milliseconds(100)};
                    auto [wec] = co_await pause.async_wait();
                    if (wec) co_return;
                    break;
                }
                auto sock = adopt(ex, step.fd, net::descriptor_mode::non_blocking);  // accept4
                if (!sock) {
                    ::close(step.fd);
                    continue;
                }
                const bool alone = lone_request(proxy);
                serve(std::move(*sock), proxy, streams, stats);
                if (alone) break;
            }
        }
    }
};

broker::broker(broker_options opts, credential_source& creds, const log::logger& log)
    : impl_(std::make_unique<impl>(std::move(opts), creds, log))
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

    stream_proxy proxy(ex, s.opts, s.creds, s.log, stats_);
    impl::spare_pool spares;  // outlives every stream: they refill it as they end
    task_group streams(ex);
    streams.spawn(ex, proxy.watch_deadlines(), [&s](const std::exception_ptr& e) {
        if (e) s.log.error("broker.watchdog_failed", {{"error", describe(e)}});
    });
    if (s.opts.listen_fd >= 0)
        streams.spawn(ex, s.accept_streams(proxy, streams, stats_), [&s](const std::exception_ptr& e) {
            if (e) s.log.error("broker.listener_failed", {{"error", describe(e)}});
        });
    // Ours of the streams one request is answered with (several for
    // `0x02 N`): spares first, any more made on the spot.
    std::vector<asio::local::stream_protocol::socket> adopted;
    adopted.reserve(max_control_batch);
    const auto take_stream = [&]() -> int {
        if (spares.ready.empty() && !spares.make_one(ex)) return -1;
        auto& spare = spares.ready.back();
        const int theirs = spare.theirs;
        adopted.push_back(std::move(spare.ours));
        spares.ready.pop_back();
        return theirs;
    };
    bool closed = false;
    while (!closed && cs.cancelled() == asio::cancellation_type::none) {
        auto [ec] = co_await control.async_wait(seqpacket::socket::wait_read, nothrow);
        if (ec) break;
        // Every datagram waiting is answered before the next wait (one
        // epoll round trip per burst, not per request), unless it came alone.
        for (;;) {
            adopted.clear();
            const auto step = next_control_step(control.native_handle(), s.opts.child, take_stream);
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
            if (step.error != 0)  // no stream made, or a batch cut short
                s.log.warn("broker.socketpair_failed", {{"errno", step.error}, {"streams", step.streams}});
            if (step.what == kind::failed) continue;
            const bool alone = impl::lone_request(proxy);
            for (auto& sock : adopted) s.serve(std::move(sock), proxy, streams, stats_, &spares);
            spares.wanted = step.streams;
            // One now, while the child takes its stream and writes: a
            // failure here is met again, and logged, by the request that
            // needs the pair.
            if (spares.ready.empty()) (void)spares.make_one(ex);
            if (alone) break;
        }
    }
    // The child is gone or we are stopping: in-flight upstream requests end now.
    streams.stop();
    co_await streams.join();
}

}  // namespace tether::auth
