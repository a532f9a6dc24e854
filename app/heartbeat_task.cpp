#include "app/heartbeat_task.hpp"

#include "app/exit_status.hpp"
#include "auth/state_store.hpp"
#include "net/blocking_call.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace tether::app {

namespace pj = net::protojson;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void permanent(const std::string& detail)
{
    throw fatal_exit(exit_status::permanent_auth, auth::session_manager::reenroll_hint(detail));
}

}  // namespace

std::chrono::milliseconds clamp_interval(std::chrono::milliseconds d)
{
    return std::clamp<std::chrono::milliseconds>(d, 5s, 1h);
}

std::int64_t load_applied_config(const auth::state_paths& paths, const log::logger& log)
{
    std::error_code fec;
    if (!std::filesystem::exists(paths.config_file(), fec)) return 0;
    std::ifstream in(paths.config_file());
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    const auto v = json::parse(ss.str(), ec);
    if (ec || !v.is_object()) {
        log.warn("config.local_unreadable", {{"file", paths.config_file().string()}});
        return 0;
    }
    return pj::value_or(pj::get_int64(v.get_object(), "configUpdatedAt"), 0);
}

awaitable<void> run_heartbeats(heartbeat_options opts, auth::session_manager& session, net::url server,
                               std::shared_ptr<asio::ssl::context> tls, auth::state_paths paths,
                               asio::any_io_executor blocking, agent_status& status, const log::logger& log,
                               net::uniform01 rand)
{
    const auto ex = co_await asio::this_coro::executor;
    net::http_client http(ex, std::move(tls));
    net::rpc_client rpc(http, server);
    const auto started = std::chrono::steady_clock::now();
    auto interval = clamp_interval(opts.interval);
    timer tick{ex};
    // The first beat lands at a random point of the first interval, so a
    // fleet restarted together does not beat in lockstep.
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(interval * rand());
    status.last_loop_ms = net::wall_ms();
    status.interval_ms = interval.count();

    for (;;) {
        tick.expires_after(delay);
        co_await tick.async_wait(use_awaitable);  // cancellation ends the task here
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(interval * (0.9 + 0.2 * rand()));
        status.last_loop_ms = net::wall_ms();
        status.interval_ms = interval.count();

        auto tok = co_await session.token();
        if (!tok) {
            if (tok.error().permanent) permanent(tok.error().error.message);
            ++status.heartbeats_failed;
            log.warn("heartbeat.failed", {{"reason", "login"},
                                          {"code", net::connect::to_string(tok.error().error.c)},
                                          {"message", tok.error().error.message}});
            continue;
        }
        const auto uptime =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
        json::array caps;
        for (const auto& c : opts.capabilities) caps.emplace_back(c);
        const json::object req{{"agentVersion", opts.agent_version},
                               {"uptimeSeconds", std::to_string(uptime.count())},
                               {"configUpdatedAt", std::to_string(status.config_updated_at.load())},
                               {"capabilities", caps}};
        const auto deadline = std::min<std::chrono::milliseconds>(interval, 30s);
        const std::string svc(net::node_service);
        secret bearer = *tok;  // the token in force for this beat, replaced by a refresh
        auto r = co_await rpc.call(svc, "Heartbeat", req, bearer, deadline);
        if (!r && r.error().c == net::connect::code::unauthenticated) {
            // The session died under us (gateway restart, expiry): one new
            // login, one retry.
            auto fresh = co_await session.refresh(bearer);
            if (!fresh && fresh.error().permanent) permanent(fresh.error().error.message);
            if (fresh) {
                bearer = *fresh;
                r = co_await rpc.call(svc, "Heartbeat", req, bearer, deadline);
            }
        }
        if (!r) {
            if (r.error().c == net::connect::code::not_found) permanent("not_found: " + r.error().message);
            ++status.heartbeats_failed;
            log.warn("heartbeat.failed",
                     {{"code", net::connect::to_string(r.error().c)}, {"message", r.error().message}});
            continue;
        }
        ++status.heartbeats_sent;
        status.last_heartbeat_ok_ms = net::wall_ms();
        const auto server_cfg = pj::value_or(pj::get_int64(*r, "configUpdatedAt"), 0);
        const auto server_interval = pj::value_or(pj::get_int32(*r, "heartbeatIntervalSeconds"), 0);
        if (server_interval > 0) interval = clamp_interval(std::chrono::seconds(server_interval));
        log.info("heartbeat.ok", {{"configUpdatedAt", server_cfg}, {"interval_s", interval.count() / 1000}});

        if (server_cfg > status.config_updated_at.load()) {
            // A missed config event is caught here: fetch and apply.
            const json::object no_fields;  // named: see the GCC 12 rules in net/asio.hpp
            auto cfg = co_await rpc.call(svc, "GetRuntimeConfig", no_fields, bearer, deadline);
            if (!cfg) {
                log.warn("config.fetch_failed", {{"code", net::connect::to_string(cfg.error().c)}});
                continue;
            }
            const auto at = pj::value_or(pj::get_int64(*cfg, "configUpdatedAt"), 0);
            const auto* doc = cfg->if_contains("config");
            if (!doc || !doc->is_object() || at <= status.config_updated_at.load()) continue;
            json::object saved{{"configUpdatedAt", at}, {"config", *doc}};
            std::function<int()> persist = [file = paths.config_file(), text = json::serialize(saved)] {
                auth::write_atomically(file, text + "\n");
                return 0;
            };
            co_await net::blocking_call(blocking, std::move(persist));
            status.config_updated_at = at;
            ++status.config_applies;
            json::array keys;
            for (const auto& kv : doc->get_object()) keys.emplace_back(kv.key());
            log.info("config.applied", {{"configUpdatedAt", at}, {"keys", keys}, {"source", "heartbeat"}});
            if (const auto* hb = doc->get_object().if_contains("heartbeatIntervalSeconds");
                hb && hb->is_int64())
                interval = clamp_interval(std::chrono::seconds(hb->get_int64()));
        }
    }
}

}  // namespace tether::app
