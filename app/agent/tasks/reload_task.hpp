// `tether exec --on-config-change`: renders each newer config for the child
// (TETHER_CONFIG_FILE) and then tells it: a signal, a restart, or nothing.
// Changes are debounced (--config-wait MIN[:MAX], consul-template's `wait`:
// act once the config was quiet for MIN, and at the latest MAX after the
// first change). Versions only go forwards: an older or the same version
// never renders or signals.
#pragma once

#include "app/agent/metrics.hpp"
#include "app/agent/tasks/child_watch_task.hpp"
#include "app/agent/tasks/config_render_task.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "settings/config_store.hpp"
#include "settings/projected_config.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tether::app {

struct reload_policy {
    enum class action { none, signal, restart };
    action what = action::none;
    int signo = SIGHUP;
    std::chrono::milliseconds wait_min{0};
    std::chrono::milliseconds wait_max{0};
};

/// "none", "restart", "signal:SIGHUP" (or "signal:HUP", "signal:1"); nullopt
/// when not one of them.
std::optional<reload_policy> parse_reload_mode(std::string_view text);
/// "SIGTERM", "TERM", "15"; nullopt for anything else.
std::optional<int> parse_signal(std::string_view text);

class reload_task {
public:
    struct deps {
        asio::any_io_executor ex;
        settings::config_store& store;
        settings::projection_options out;
        asio::any_io_executor blocking;  ///< file writes
        child_watch_task& child;
        reload_policy policy;
        agent_metrics& metrics;
        const log::logger& log;
    };

    explicit reload_task(deps d)
        : d_(std::move(d)),
          renderer_({d_.store, d_.out, d_.blocking, d_.metrics, d_.log}),
          rendered_signal_(d_.ex)
    {
    }

    /// Renders the current config now, blocking (before the child starts).
    /// Throws std::runtime_error when the directory cannot be written.
    void render_now() { renderer_.render_now(); }

    /// Done once some config is rendered (--wait-for-config).
    awaitable<void> rendered_once();

    awaitable<void> run();

    [[nodiscard]] std::int64_t actions() const noexcept { return actions_.load(); }

private:
    void act(std::int64_t version);

    deps d_;
    config_render_task renderer_;  // its render(), not its run(): acting follows each render here
    settings::change_signal rendered_signal_;
    std::atomic<std::int64_t> actions_{0};
};

}  // namespace tether::app
