// Reaping children we did not start (Linux): orphans re-parented to us when
// we are PID 1 of a container or a child subreaper.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"

#include <sys/types.h>

#include <functional>

namespace tether::app {

class reaper_task {
public:
    struct deps {
        pid_t keep = -1;  ///< a child whose status its owner collects; -1: none
        const log::logger& log;
        /// When set, asked each time instead of `keep` (a child restarted
        /// under another pid).
        std::function<pid_t()> keep_now = {};
    };

    explicit reaper_task(deps d) : d_(std::move(d)) {}

    /// Reaps every exited child except `keep`, now and on each SIGCHLD,
    /// until cancelled.
    awaitable<void> run();

private:
    deps d_;
};

/// Reaps exited children other than `keep`, without blocking; returns how many.
int reap_exited(pid_t keep) noexcept;

}  // namespace tether::app
