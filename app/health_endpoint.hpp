// The agent's loopback health endpoint: /livez, /readyz, /metrics, /status.
#pragma once

#include "app/agent_metrics.hpp"
#include "net/http_server.hpp"

#include <atomic>
#include <functional>

namespace tether::app {

struct health_sources {
    const agent_metrics* metrics = nullptr;
    std::function<std::uint64_t()> session_refreshes;
    std::function<bool()> session_valid;
    std::string node_id;
};

/// Answers the four endpoints from `src`; everything else is 404.
net::handler health_handler(health_sources src);

/// Resident set size of this process in bytes (from /proc/self/statm).
std::uint64_t resident_memory_bytes();

}  // namespace tether::app
