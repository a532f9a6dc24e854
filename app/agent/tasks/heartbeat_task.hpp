// The heartbeat task: one Heartbeat call per interval, the interval from
// the config, the gateway or the flag, and a catch-up fetch when a reply
// names a newer config.
#pragma once

#include "app/agent/metrics.hpp"
#include "auth/session.hpp"
#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "base/log.hpp"
#include "net/server_set.hpp"
#include "net/url.hpp"
#include "settings/config_store.hpp"
#include "settings/runtime_config.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tether::app {

class config_sync_task;

class heartbeat_task {
public:
    struct deps {
        auth::session_manager& session;
        net::server_set server;  ///< one URL, or replicas to fail over between
        std::shared_ptr<net::replaceable_tls> tls;
        const settings::config_store& store;
        config_sync_task& sync;
        agent_metrics& metrics;
        const log::logger& log;
        uniform01 rand;
        std::chrono::milliseconds interval{30'000};  ///< --heartbeat-interval
        std::string agent_version;
        std::vector<std::string> capabilities;
        /// Every interval, whatever its source, is clamped to these; tests
        /// shorten them to run in milliseconds.
        settings::interval_bounds bounds = settings::heartbeat_interval_bounds;
        /// The configUpdatedAt the workloads have (tether run --config-out:
        /// the version rendered); unset: the store's.
        std::function<std::int64_t()> applied{};
    };

    explicit heartbeat_task(deps d);

    /// Runs until cancelled. The interval is the config's
    /// heartbeatIntervalSeconds when set, else the gateway's reply, else
    /// `interval`. Permanent authentication failures throw
    /// fatal_exit(permanent_auth); everything else is logged, counted by code
    /// and retried at the next tick.
    awaitable<void> run();

private:
    [[nodiscard]] std::chrono::milliseconds interval() const;

    deps d_;
    std::chrono::milliseconds from_server_{0};
};

}  // namespace tether::app
