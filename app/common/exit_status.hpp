// Process exit statuses: the contract with whoever runs tether (systemd,
// Kubernetes, a shell script). Scripts match on these numbers.
#pragma once

#include <stdexcept>
#include <string>

namespace tether::app {

enum class exit_status : int {
    ok = 0,              ///< finished, or stopped by SIGINT/SIGTERM and drained cleanly
    failure = 1,         ///< anything else, including a drain that ran out of time
    usage = 2,           ///< bad command line, environment or configuration
    permanent_auth = 3,  ///< the node must be re-enrolled (revoked, unknown, mismatched)
};

constexpr int to_int(exit_status s) noexcept
{
    return static_cast<int>(s);
}

/// Thrown by a task (or start-up code) to end the process with a specific
/// status. The supervisor stops every other task, then exits with it.
struct fatal_exit : std::runtime_error {
    fatal_exit(exit_status s, const std::string& why) : std::runtime_error(why), status(s) {}
    exit_status status;
};

}  // namespace tether::app
