#include "app/agent/tasks/config_render_task.hpp"

#include "base/blocking_call.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json/serialize.hpp>

#include <stdexcept>

namespace tether::app {

using namespace std::chrono_literals;

std::string rendered_document(const settings::runtime_config& cfg)
{
    return boost::json::serialize(cfg.document) + "\n";
}

void config_render_task::render_now()
{
    settings::prepare_projection_dir(d_.out);
    const auto cfg = d_.store.current();
    if (cfg->updated_at == 0) return;  // nothing was ever applied here
    const bool wrote = settings::project_config(d_.out, cfg->updated_at, rendered_document(*cfg));
    rendered_ = cfg->updated_at;
    d_.log.info("config.rendered",
                {{"dir", d_.out.dir.string()}, {"configUpdatedAt", cfg->updated_at}, {"written", wrote}});
}

awaitable<bool> config_render_task::render(settings::config_ptr cfg)
{
    std::function<int()> write = [this, cfg] {
        return settings::project_config(d_.out, cfg->updated_at, rendered_document(*cfg)) ? 1 : 0;
    };
    try {
        const int wrote = co_await blocking_call(d_.blocking, std::move(write));
        d_.log.info(
            "config.rendered",
            {{"dir", d_.out.dir.string()}, {"configUpdatedAt", cfg->updated_at}, {"written", wrote == 1}});
    } catch (const std::runtime_error& e) {
        d_.metrics.config_last_error.set({std::string("rendering: ") + e.what(), cfg->updated_at, wall_ms()});
        d_.log.warn(
            "config.render_failed",
            {{"dir", d_.out.dir.string()}, {"configUpdatedAt", cfg->updated_at}, {"error", e.what()}});
        co_return false;
    }
    rendered_ = cfg->updated_at;
    co_return true;
}

awaitable<void> config_render_task::run()
{
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto cs = co_await asio::this_coro::cancellation_state;
    const auto ex = co_await asio::this_coro::executor;
    // Taken before the first look: a change in between still wakes us.
    const auto changed = d_.store.watch(ex);
    timer retry{ex};
    for (;;) {
        const auto cfg = d_.store.current();
        bool failed = false;
        if (cfg->updated_at != 0 && cfg->updated_at != rendered()) {
            const bool ok = co_await render(cfg);
            failed = !ok;
        }
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
        if (failed) {
            retry.expires_after(5s);
            co_await retry.async_wait(nothrow);
        } else {
            co_await changed->wait();
        }
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
    }
}

}  // namespace tether::app
