// The child task of `tether exec` (Linux): waits for the child through a
// pidfd, passes SIGINT/SIGTERM/SIGHUP/SIGQUIT on to it, and ends the
// process with the child's status.
#pragma once

#include "app/common/supervisor.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"

#include <sys/types.h>

#include <optional>

namespace tether::app {

class child_watch_task {
public:
    struct deps {
        pid_t pid;
        std::optional<int>& exit_code;  ///< set to the child's status (status_code) when it exits
        supervisor& sup;                ///< asked to stop once the child has exited
        const log::logger& log;
    };

    explicit child_watch_task(deps d) : d_(d) {}

    /// Until the child exits; cancelled (a drain), it sends the child SIGTERM.
    awaitable<void> run();

private:
    deps d_;
};

}  // namespace tether::app
