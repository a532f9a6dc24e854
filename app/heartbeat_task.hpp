// The agent's heartbeat loop, and the config catch-up it drives.
#pragma once

#include "auth/session.hpp"
#include "auth/state_paths.hpp"
#include "net/asio.hpp"
#include "net/backoff.hpp"
#include "net/log.hpp"
#include "net/url.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace tether::app {

struct heartbeat_options {
    std::chrono::milliseconds interval{30'000};  ///< clamped to [5 s, 1 h]
    std::string agent_version;
    std::vector<std::string> capabilities;
};

/// What the agent knows about itself, for health and status. Thread-safe.
struct agent_status {
    std::atomic<std::int64_t> last_heartbeat_ok_ms{0};
    std::atomic<std::int64_t> heartbeats_sent{0};
    std::atomic<std::int64_t> heartbeats_failed{0};
    std::atomic<std::int64_t> config_updated_at{0};
    std::atomic<std::int64_t> config_applies{0};
    std::atomic<std::int64_t> last_loop_ms{0};  ///< the loop came round (liveness)
    std::atomic<std::int64_t> interval_ms{30'000};
};

std::chrono::milliseconds clamp_interval(std::chrono::milliseconds d);

/// Loads the last applied config's configUpdatedAt from the state directory
/// (0 when none), so a restart does not refetch what it already has.
std::int64_t load_applied_config(const auth::state_paths& paths, const log::logger& log);

/// Runs until cancelled. Permanent authentication failures (BeginAuth
/// permission_denied, Heartbeat not_found) throw fatal_exit(permanent_auth);
/// everything else is logged and retried at the next tick.
awaitable<void> run_heartbeats(heartbeat_options opts, auth::session_manager& session, net::url server,
                               std::shared_ptr<asio::ssl::context> tls, auth::state_paths paths,
                               asio::any_io_executor blocking, agent_status& status, const log::logger& log,
                               net::uniform01 rand);

}  // namespace tether::app
