#include "app/agent/tasks/realtime_task.hpp"

#include "app/agent/session_call.hpp"
#include "app/agent/tasks/config_sync_task.hpp"
#include "app/agent/tasks/dispatch_task.hpp"
#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "net/http_writer.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/this_coro.hpp>

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

}  // namespace

std::vector<net::url> realtime_candidates(const net::server_set& server, const std::vector<net::url>& given)
{
    std::vector<net::url> out;
    for (const auto& u : given)
        out.push_back(u.path.empty() || u.path == "/" ? u.with_path("/v1/events") : u);
    // Every replica's stream, in the set's (shuffled) order: the stream
    // client falls back along them as it does along --realtime-url.
    if (out.empty())
        for (const auto& u : server.in_order()) out.push_back(u.with_path("/v1/events"));
    return out;
}

realtime_task::realtime_task(deps d) : d_(std::move(d)) {}

awaitable<void> realtime_task::run()
{
    const auto ex = co_await asio::this_coro::executor;
    auto& session = d_.session;
    auto& metrics = d_.metrics;
    auto& dispatch = d_.dispatch;
    auto& sync = d_.sync;
    const auto& log = d_.log;
    net::http_client http(ex, d_.tls);
    net::rpc_client rpc(http, d_.server);
    net::sse_client sse(http, d_.stream, d_.rand, log);

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
        const json::object no_fields;  // named: see the GCC 12 rules in base/asio.hpp
        auto r = co_await session_call(session, rpc, "CreateStreamToken", no_fields, 15s);
        if (!r) {
            if (stream_refused(r.error().c)) {
                refused = r.error();
                result<net::http::fields> stop = make_error_code(net::errc::credentials_refused);
                co_return stop;
            }
            log.warn("realtime.token_failed",
                     {{"code", net::connect::to_string(r.error().c)}, {"message", r.error().message}});
            result<net::http::fields> failed = make_error_code(net::errc::no_credentials);
            co_return failed;
        }
        const auto token = pj::value_or(pj::get_string(*r, "token"), "");
        if (!net::http::usable_bearer_token(token)) {
            log.warn(
                "realtime.token_failed",
                {{"code", "internal"}, {"message", "CreateStreamToken answered without a usable token"}});
            result<net::http::fields> failed = make_error_code(net::errc::no_credentials);
            co_return failed;
        }
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

}  // namespace tether::app
