#include "auth/broker.hpp"

#include "auth/broker_stream.hpp"
#include "base/exceptions.hpp"
#include "base/task_group.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>

#include <optional>
#include <vector>

namespace tether::auth {

struct broker::impl {
    broker_options opts;
    credential_source& creds;
    const log::logger& log;
};

broker::broker(broker_options opts, credential_source& creds, const log::logger& log)
    : impl_(std::make_unique<impl>(impl{std::move(opts), creds, log}))
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
    task_group streams(ex);
    streams.spawn(ex, proxy.watch_deadlines(), [&s](const std::exception_ptr& e) {
        if (e) s.log.error("broker.watchdog_failed", {{"error", describe(e)}});
    });
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
            streams.spawn(ex, proxy.serve(std::move(*adopted)), [&s](const std::exception_ptr& e) {
                if (e) s.log.debug("broker.stream_ended", {{"error", describe(e)}});
            });
        }
    }
    // The child is gone or we are stopping: in-flight upstream requests end now.
    streams.stop();
    co_await streams.join();
}

}  // namespace tether::auth
