#include "app/realtime_task.hpp"

#include "app/config_sync.hpp"
#include "app/event_dispatcher.hpp"
#include "app/exit_status.hpp"
#include "app/session_call.hpp"
#include "net/errc.hpp"
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

/// The stream token request failed in a way that retrying cannot fix.
bool stream_refused(net::connect::code c)
{
    return c == net::connect::code::permission_denied;
}

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

std::vector<net::url> realtime_candidates(const net::url& server, const std::vector<net::url>& given)
{
    std::vector<net::url> out;
    for (const auto& u : given)
        out.push_back(u.path.empty() || u.path == "/" ? u.with_path("/v1/events") : u);
    if (out.empty()) out.push_back(server.with_path("/v1/events"));
    return out;
}

awaitable<void> run_realtime(net::sse_options opts, auth::session_manager& session, net::url server,
                             std::shared_ptr<asio::ssl::context> tls, event_dispatcher& dispatch,
                             config_sync& sync, agent_metrics& metrics, const log::logger& log,
                             net::uniform01 rand)
{
    const auto ex = co_await asio::this_coro::executor;
    net::http_client http(ex, tls);
    net::rpc_client rpc(http, server);
    net::sse_client sse(http, std::move(opts), std::move(rand), log);

    bool ever_connected = false;
    bool warned = false;
    unsigned unauthorized = 0;  // 401s on the stream in a row
    std::optional<net::connect::error> refused;

    net::sse_client::prepare_fn prepare =
        [&](const net::sse_attempt& a) -> awaitable<result<net::http::fields>> {
        if (a.number > 1 && !ever_connected && !warned) {
            warned = true;
            log.warn("realtime.unavailable",
                     {{"message",
                       "realtime config updates are unavailable; heartbeats will still pick up "
                       "changes; retrying in the background"},
                      {"reason", a.last_error.message()},
                      {"status", a.last_status}});
        }
        unauthorized = a.last_status == 401 ? unauthorized + 1 : 0;
        if (unauthorized >= 2) {
            // A fresh stream token was refused too: the session itself is
            // suspect (gateway restarted and forgot it).
            auto current = co_await session.token();
            if (current) {
                auto fresh = co_await session.refresh(*current);
                (void)fresh;
            }
            unauthorized = 0;
        }
        const json::object no_fields;  // named: see the GCC 12 rules in net/asio.hpp
        auto r = co_await session_call(session, rpc, "CreateStreamToken", no_fields, 15s);
        if (!r) {
            if (stream_refused(r.error().c)) {
                refused = r.error();
                result<net::http::fields> stop = make_error_code(net::errc::stream_ended);
                co_return stop;
            }
            log.warn("realtime.token_failed",
                     {{"code", net::connect::to_string(r.error().c)}, {"message", r.error().message}});
            result<net::http::fields> failed = make_error_code(net::errc::no_credentials);
            co_return failed;
        }
        const auto token = pj::value_or(pj::get_string(*r, "token"), "");
        net::http::fields headers;
        headers.set("Authorization", "Bearer " + token);
        result<net::http::fields> out = std::move(headers);
        co_return out;
    };
    net::sse_client::event_fn on_event = [&](const net::sse_event& e) -> awaitable<void> {
        ++metrics.events_by_type[event_type_index(e.type)];
        // Payloads may carry sensitive data: type and size only.
        log.debug("realtime.event", {{"type", e.type}, {"bytes", e.data.size()}, {"id", e.last_event_id}});
        dispatch.post(e);
        co_return;
    };
    net::sse_client::state_fn on_state = [&](bool connected, const net::url& where) {
        metrics.realtime_connected = connected;
        if (!connected) {
            ++metrics.stream_disconnects;
            return;
        }
        ++metrics.stream_connects;
        if (warned && !ever_connected) log.info("realtime.available", {{"url", where.redacted()}});
        ever_connected = true;
        // Whatever happened while we were away is caught up by one fetch.
        sync.request(std::nullopt, "reconnect");
    };
    net::sse_client::classify_fn classify = [](unsigned status) {
        if (status == 401) return net::status_action::retry;  // new stream token
        return net::default_status_action(status);
    };

    const auto ec = co_await sse.run(prepare, on_event, on_state, classify);
    metrics.realtime_connected = false;
    if (ec == asio::error::operation_aborted) co_return;
    if (refused) {
        log.warn("realtime.stopped", {{"reason", "the gateway refused a stream token"},
                                      {"code", net::connect::to_string(refused->c)},
                                      {"message", refused->message},
                                      {"heartbeats", "continue"}});
    } else {
        log.warn("realtime.stopped",
                 {{"reason", ec.message()}, {"status", sse.last_status()}, {"heartbeats", "continue"}});
    }
}

revocation_check confirm_with_gateway(auth::session_manager& session, net::url server,
                                      std::shared_ptr<asio::ssl::context> tls)
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

void add_agent_handlers(event_dispatcher& dispatch, config_sync& sync, std::string node_id,
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
