// Publishes the applied config in the --config-out directory for workloads
// that read a file (settings/projected_config.hpp), once per version.
#pragma once

#include "app/agent/metrics.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "settings/config_store.hpp"
#include "settings/projected_config.hpp"

#include <atomic>
#include <string>

namespace tether::app {

/// The bytes config.json holds for `cfg`: its document as received, on one
/// line, with a newline.
std::string rendered_document(const settings::runtime_config& cfg);

class config_render_task {
public:
    struct deps {
        settings::config_store& store;
        settings::projection_options out;
        asio::any_io_executor blocking;  ///< file writes
        agent_metrics& metrics;
        const log::logger& log;
    };

    explicit config_render_task(deps d) : d_(std::move(d)) {}

    /// Publishes the current config now, blocking: at start-up, before any
    /// network, so a workload starts with what the node had. Throws
    /// std::runtime_error when the directory cannot be written.
    void render_now();

    /// Publishes `cfg` on the blocking executor and logs it; false, with the
    /// failure logged and shown in /status, when it could not be written.
    awaitable<bool> render(settings::config_ptr cfg);

    /// The version the directory shows (0: none yet). Thread-safe.
    [[nodiscard]] std::int64_t rendered() const noexcept { return rendered_.load(); }

    /// Publishes every later version (only the newest of a burst). A failed
    /// write is retried every 5 s.
    awaitable<void> run();

private:
    deps d_;
    std::atomic<std::int64_t> rendered_{0};
};

}  // namespace tether::app
