// `tether exec` next to a running `tether run` on the same state directory:
// follows the config that agent applies (it rewrites config.json there by
// rename after each apply) through inotify, instead of a session of its own.
#pragma once

#include "app/agent/metrics.hpp"
#include "auth/state_paths.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "settings/config_store.hpp"

namespace tether::app {

class config_follow_task {
public:
    struct deps {
        settings::config_store& store;
        auth::state_paths paths;
        asio::any_io_executor blocking;  ///< file reads
        agent_metrics& metrics;
        const log::logger& log;
    };

    explicit config_follow_task(deps d) : d_(std::move(d)) {}

    /// Until cancelled. Throws std::system_error when inotify cannot watch
    /// the directory.
    awaitable<void> run();

private:
    deps d_;
};

}  // namespace tether::app
