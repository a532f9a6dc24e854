#include "app/heartbeat_task.hpp"

#include "app/config_sync.hpp"
#include "app/session_call.hpp"
#include "net/blocking_call.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json/array.hpp>

#include <algorithm>

namespace tether::app {

namespace pj = net::protojson;
namespace json = boost::json;
using namespace std::chrono_literals;

std::chrono::milliseconds clamp_interval(std::chrono::milliseconds d)
{
    return std::clamp<std::chrono::milliseconds>(d, 5s, 1h);
}

awaitable<void> run_heartbeats(heartbeat_options opts, auth::session_manager& session, net::url server,
                               std::shared_ptr<asio::ssl::context> tls, const settings::config_store& store,
                               config_sync& sync, agent_metrics& metrics, const log::logger& log,
                               net::uniform01 rand)
{
    const auto ex = co_await asio::this_coro::executor;
    net::http_client http(ex, std::move(tls));
    net::rpc_client rpc(http, server);
    const auto started = std::chrono::steady_clock::now();
    std::chrono::milliseconds from_server{0};
    const auto interval = [&] {
        const auto cfg = store.current();
        if (cfg->heartbeat_interval) return clamp_interval(*cfg->heartbeat_interval);
        return clamp_interval(from_server.count() > 0 ? from_server : opts.interval);
    };
    timer tick{ex};
    // The first beat lands at a random point of the first interval, so a
    // fleet restarted together does not beat in lockstep.
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(interval() * rand());
    metrics.last_loop_ms = net::wall_ms();
    metrics.interval_ms = interval().count();

    for (;;) {
        tick.expires_after(delay);
        co_await tick.async_wait(use_awaitable);  // cancellation ends the task here
        metrics.last_loop_ms = net::wall_ms();

        const auto uptime =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
        json::array caps;
        for (const auto& c : opts.capabilities) caps.emplace_back(c);
        const json::object req{{"agentVersion", opts.agent_version},
                               {"uptimeSeconds", std::to_string(uptime.count())},
                               {"configUpdatedAt", std::to_string(store.updated_at())},
                               {"capabilities", caps}};
        const auto deadline = std::min<std::chrono::milliseconds>(interval(), 30s);
        auto r = co_await session_call(session, rpc, "Heartbeat", req, deadline);
        if (r) {
            ++metrics.heartbeats_sent;
            metrics.last_heartbeat_ok_ms = net::wall_ms();
            const auto server_cfg = pj::value_or(pj::get_int64(*r, "configUpdatedAt"), 0);
            const auto server_interval = pj::value_or(pj::get_int32(*r, "heartbeatIntervalSeconds"), 0);
            if (server_interval > 0) from_server = std::chrono::seconds(server_interval);
            log.info("heartbeat.ok",
                     {{"configUpdatedAt", server_cfg}, {"interval_s", interval().count() / 1000}});
            // A missed config event is caught here (request ignores what is not newer).
            sync.request(server_cfg, "heartbeat");
        } else {
            metrics.heartbeat_failed(r.error().c);
            log.warn("heartbeat.failed",
                     {{"code", net::connect::to_string(r.error().c)}, {"message", r.error().message}});
        }
        metrics.interval_ms = interval().count();
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(interval() * (0.9 + 0.2 * rand()));
    }
}

}  // namespace tether::app
