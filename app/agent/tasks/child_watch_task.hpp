// The child task of `tether exec` (Linux): starts the child (at once, or
// once `before_start` is done: --wait-for-config), waits for it through a
// pidfd, passes SIGINT/SIGTERM/SIGHUP/SIGQUIT on to it, restarts it when
// asked (--on-config-change restart), and ends the process with the
// child's status when it exits on its own.
#pragma once

#include "app/common/supervisor.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"

#include <boost/asio/experimental/concurrent_channel.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <optional>

namespace tether::app {

class child_watch_task {
public:
    struct deps {
        asio::any_io_executor ex;
        /// Starts the child and returns its pid; throws fatal_exit 127/126
        /// as spawn_child does.
        std::function<pid_t()> spawn;
        std::optional<int>& exit_code;  ///< set to the child's status (status_code) when it exits
        supervisor& sup;                ///< asked to stop once the child has exited
        const log::logger& log;
        /// A child already started before the supervisor ran (then `spawn`
        /// is only for restarts); -1: run() starts the first one.
        pid_t first = -1;
        /// Awaited before the first start; empty: start at once.
        std::function<awaitable<void>()> before_start = {};
        /// A restart stops the child with this, then SIGKILL after kill_timeout.
        int kill_signal = SIGTERM;
        std::chrono::milliseconds kill_timeout{10'000};
    };

    explicit child_watch_task(deps d) : d_(std::move(d)), restart_(d_.ex, 1) {}

    /// Until the child exits; cancelled (a drain), it sends the child SIGTERM.
    awaitable<void> run();

    /// Thread-safe: stop the child and start it again (one pending at most).
    void restart() noexcept { (void)restart_.try_send(error_code{}); }

    /// Thread-safe: sends `signo` to the child; false when none runs.
    bool signal_child(int signo) noexcept;

    [[nodiscard]] bool running() const noexcept { return pid_.load() > 0; }
    /// The child whose status run() collects (the reaper must leave it).
    [[nodiscard]] pid_t collecting() const noexcept { return collecting_.load(); }
    [[nodiscard]] std::int64_t restarts() const noexcept { return restarts_.load(); }

private:
    deps d_;
    asio::experimental::concurrent_channel<void(error_code)> restart_;
    std::atomic<pid_t> pid_{-1};  // -1 before the start, between a stop and its restart, after the exit
    std::atomic<pid_t> collecting_{-1};
    std::atomic<std::int64_t> restarts_{0};
};

}  // namespace tether::app
