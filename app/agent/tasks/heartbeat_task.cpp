#include "app/agent/tasks/heartbeat_task.hpp"

#include "app/agent/session_call.hpp"
#include "app/agent/tasks/config_sync_task.hpp"
#include "base/blocking_call.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/array.hpp>

namespace tether::app {

namespace pj = net::protojson;
namespace json = boost::json;
using namespace std::chrono_literals;

heartbeat_task::heartbeat_task(deps d) : d_(std::move(d)) {}

std::chrono::milliseconds heartbeat_task::interval() const
{
    const auto cfg = d_.store.current();
    if (cfg->heartbeat_interval) return d_.bounds.clamp(*cfg->heartbeat_interval);
    return d_.bounds.clamp(from_server_.count() > 0 ? from_server_ : d_.interval);
}

awaitable<void> heartbeat_task::run()
{
    const auto ex = co_await asio::this_coro::executor;
    from_server_ = std::chrono::milliseconds{0};  // a restarted task starts as a new one
    net::http_client http(ex, d_.tls);
    net::rpc_client rpc(http, d_.server);
    const auto started = std::chrono::steady_clock::now();
    auto& metrics = d_.metrics;
    const auto& log = d_.log;
    timer tick{ex};
    // The first beat lands at a random point of the first interval, so a
    // fleet restarted together does not beat in lockstep.
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(interval() * d_.rand());
    metrics.last_loop_ms = wall_ms();
    metrics.interval_ms = interval().count();

    const auto changed = d_.store.watch(ex);
    const auto applied = [this] {
        return d_.applied ? d_.applied() : d_.store.updated_at();
    };
    auto last_answer = std::chrono::steady_clock::now() - 1h;
    for (;;) {
        tick.expires_after(delay);
        {
            using namespace asio::experimental::awaitable_operators;
            // cancellation ends the task here
            auto woke = co_await (tick.async_wait(use_awaitable) || changed->wait());
            if (woke.index() == 1) {
                // A newly applied version is reported within a moment, not an
                // interval later, so a rollout shows as it happens; the pause
                // lets the render finish and folds a burst of versions into
                // one beat. The gateway stores a changed report at most once
                // a second, counted from when it stored the previous beat,
                // which it did before we had its answer: a second (and a
                // little, for clock slew) after that answer is always enough.
                const auto settle = std::max<std::chrono::steady_clock::duration>(
                    250ms, last_answer + 1050ms - std::chrono::steady_clock::now());
                tick.expires_after(settle);
                co_await tick.async_wait(use_awaitable);
            }
        }
        metrics.last_loop_ms = wall_ms();

        const auto uptime =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
        json::array caps;
        for (const auto& c : d_.capabilities) caps.emplace_back(c);
        const json::object req{{"agentVersion", d_.agent_version},
                               {"uptimeSeconds", std::to_string(uptime.count())},
                               {"configUpdatedAt", std::to_string(applied())},
                               {"capabilities", caps}};
        const auto deadline = std::min<std::chrono::milliseconds>(interval(), 30s);
        auto r = co_await session_call(d_.session, rpc, "Heartbeat", req, deadline);
        last_answer = std::chrono::steady_clock::now();
        if (r) {
            ++metrics.heartbeats_sent;
            metrics.last_heartbeat_ok_ms = wall_ms();
            const auto server_cfg = pj::value_or(pj::get_int64(*r, "configUpdatedAt"), 0);
            if (server_cfg == d_.store.updated_at()) metrics.config_confirmed_ms = wall_ms();
            const auto server_interval = pj::value_or(pj::get_int32(*r, "heartbeatIntervalSeconds"), 0);
            if (server_interval > 0) from_server_ = std::chrono::seconds(server_interval);
            log.info("heartbeat.ok",
                     {{"configUpdatedAt", server_cfg}, {"interval_s", interval().count() / 1000}});
            // A missed config event is caught here (request ignores what is not newer).
            d_.sync.request(server_cfg, "heartbeat");
        } else {
            metrics.heartbeat_failed(r.error().c);
            log.warn("heartbeat.failed",
                     {{"code", net::connect::to_string(r.error().c)}, {"message", r.error().message}});
        }
        metrics.interval_ms = interval().count();
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(interval() * (0.9 + 0.2 * d_.rand()));
    }
}

}  // namespace tether::app
