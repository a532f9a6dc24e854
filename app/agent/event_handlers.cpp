#include "app/agent/event_handlers.hpp"

#include "app/agent/session_call.hpp"
#include "app/agent/tasks/config_sync_task.hpp"
#include "app/agent/tasks/dispatch_task.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>

namespace tether::app {

namespace pj = net::protojson;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

/// data parsed as a JSON object, or nullopt (malformed data is not an error
/// for the stream: the handler decides what it means).
std::optional<json::object> data_object(const net::sse_event& e)
{
    boost::system::error_code ec;
    auto v = json::parse(e.data, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.get_object());
}

}  // namespace

revocation_check confirm_with_gateway(auth::session_manager& session, net::server_set server,
                                      std::shared_ptr<net::replaceable_tls> tls)
{
    return [&session, server = std::move(server), tls = std::move(tls)]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        net::http_client http(ex, tls);
        net::rpc_client rpc(http, server);
        const json::object probe{{"agentVersion", "tether"}};
        // Throws fatal_exit when the gateway confirms; any other answer returns.
        auto r = co_await session_call(session, rpc, "Heartbeat", probe, 15s);
        (void)r;
    };
}

void add_agent_handlers(dispatch_task& dispatch, config_sync_task& sync, std::string node_id,
                        revocation_check confirm, const log::logger& log)
{
    dispatch.on("config-updated", "config-fetch", [&sync](const net::sse_event& e) -> awaitable<error_code> {
        const auto data = data_object(e);
        std::optional<std::int64_t> at;
        if (data) {
            if (auto v = pj::get_int64(*data, "configUpdatedAt"); v && *v > 0) at = *v;
        }
        // Unparseable news is still news: fetch and see.
        sync.request(at, "event");
        co_return error_code{};
    });
    dispatch.on("reset", "config-refetch", [&sync](const net::sse_event&) -> awaitable<error_code> {
        sync.request(std::nullopt, "reset");
        co_return error_code{};
    });
    dispatch.on(
        "node-revoked", "revocation",
        [&log, node_id = std::move(node_id),
         confirm = std::move(confirm)](const net::sse_event& e) -> awaitable<error_code> {
            const auto data = data_object(e);
            const auto who = data ? pj::value_or(pj::get_string(*data, "nodeId"), "") : std::string();
            if (who != node_id) {
                log.debug("realtime.revoked_other", {{"node", who}});
                co_return error_code{};
            }
            log.warn("realtime.revoked", {{"node", who}, {"action", "asking the gateway to confirm"}});
            co_await confirm();  // throws fatal_exit(permanent_auth) when confirmed
            log.warn("realtime.revocation_unconfirmed",
                     {{"node", who}, {"action", "the gateway still accepts this node; carrying on"}});
            co_return error_code{};
        });
}

}  // namespace tether::app
