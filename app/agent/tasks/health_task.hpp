// The agent's loopback health endpoint (/livez, /readyz, /metrics, /status)
// and the task that serves it.
#pragma once

#include "app/agent/config_api.hpp"
#include "app/agent/metrics.hpp"
#include "net/http_server.hpp"

#include <atomic>
#include <functional>

namespace tether::app {

struct health_sources {
    const agent_metrics* metrics = nullptr;
    std::function<std::uint64_t()> session_refreshes;
    std::function<bool()> session_valid;
    std::string node_id;
    /// The local config watch API, when served here.
    const config_api* config = nullptr;
    /// /readyz also waits for a config to have been applied.
    bool require_config = false;
};

/// Answers the four endpoints and the config API from `src`; everything
/// else is 404.
net::handler health_handler(health_sources src);

/// The health task: serves `health_handler` on a loopback address, to
/// requests whose Host names a loopback address or localhost (else 403).
class health_task {
public:
    struct deps {
        asio::any_io_executor ex;
        asio::ip::tcp::endpoint listen;
        health_sources sources;
        const log::logger& log;
    };

    /// Binds now: a port in use is a start-up error (throws system_error).
    explicit health_task(deps d);

    [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const { return server_.local_endpoint(); }

    /// Runs until cancelled.
    awaitable<void> run() { return server_.run(); }

private:
    net::http_server server_;
};

/// Resident set size of this process in bytes (from /proc/self/statm).
std::uint64_t resident_memory_bytes();

}  // namespace tether::app
