// The agent's heartbeat loop.
#pragma once

#include "app/agent_metrics.hpp"
#include "auth/session.hpp"
#include "net/asio.hpp"
#include "net/backoff.hpp"
#include "net/log.hpp"
#include "net/url.hpp"
#include "settings/config_store.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace tether::app {

class config_sync;

struct heartbeat_options {
    std::chrono::milliseconds interval{30'000};  ///< clamped to [5 s, 1 h]
    std::string agent_version;
    std::vector<std::string> capabilities;
};

std::chrono::milliseconds clamp_interval(std::chrono::milliseconds d);

/// Runs until cancelled. The interval is the config's
/// heartbeatIntervalSeconds when set, else the gateway's reply, else
/// `opts.interval`. A reply naming a newer config asks `sync` to fetch it
/// (the catch-up for a missed event). Permanent authentication failures
/// throw fatal_exit(permanent_auth); everything else is logged, counted by
/// code and retried at the next tick.
awaitable<void> run_heartbeats(heartbeat_options opts, auth::session_manager& session, net::url server,
                               std::shared_ptr<asio::ssl::context> tls, const settings::config_store& store,
                               config_sync& sync, agent_metrics& metrics, const log::logger& log,
                               net::uniform01 rand);

}  // namespace tether::app
