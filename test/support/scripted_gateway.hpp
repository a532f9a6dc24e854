// One scripted gateway for the agent's task tests: logs anyone in and
// answers Heartbeat, GetRuntimeConfig, CreateStreamToken and the event
// stream from its fields, counting each call.
#pragma once

#include "net/connect_reply.hpp"
#include "net/http_server.hpp"
#include "support/loopback_server.hpp"
#include "support/scripted_login.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tether::test {

/// A gateway that logs anyone in and answers from the fields below.
struct scripted_gateway {
    std::int64_t config_at = 0;
    boost::json::object config;
    std::chrono::milliseconds fetch_delay{0};
    std::string token_code;      ///< CreateStreamToken error code, or "" for OK
    std::string stream_token;    ///< what CreateStreamToken grants, or "" for "st-N"
    std::string heartbeat_code;  ///< Heartbeat error code, or "" for OK
    /// How long a heartbeat takes to answer; the time it is "stored" (as
    /// the real gateway stamps last_seen) is just before the answer.
    std::chrono::milliseconds heartbeat_delay{0};
    struct beat {
        std::chrono::steady_clock::time_point arrived, stored;
        std::string applied;  ///< the configUpdatedAt the node reported
    };
    std::vector<beat> beats;
    /// Answers the n-th (0-based) stream open.
    std::function<net::reply(int n)> stream = [](int) {
        return sse_reply("", std::chrono::seconds(30));
    };

    /// Calls to this method (its last path segment) get `broken` instead:
    /// a body that is not a Connect error, a proxy's page.
    std::string broken_method;
    net::reply broken;

    int begin_auth = 0, fetches = 0, tokens = 0, heartbeats = 0, opens = 0;
    std::vector<std::optional<std::string>> last_event_ids;

    awaitable<net::reply> operator()(net::http::request req, net::peer_info)
    {
        const auto ex = co_await asio::this_coro::executor;
        if (!broken_method.empty() && req.target.ends_with("/" + broken_method)) {
            if (broken_method == "BeginAuth") ++begin_auth;
            if (broken_method == "Heartbeat") ++heartbeats;
            net::reply r = broken;
            co_return r;
        }
        if (auto login = scripted_login(req, begin_auth)) {
            net::reply r = std::move(*login);  // named: see the GCC 12 rules in base/asio.hpp
            co_return r;
        }
        if (req.target.ends_with("/Heartbeat")) {
            ++heartbeats;
            beat b{std::chrono::steady_clock::now(), {}, {}};
            boost::system::error_code bad;
            if (const auto body = boost::json::parse(req.body, bad); !bad && body.is_object())
                if (const auto* v = body.as_object().if_contains("configUpdatedAt"); v && v->is_string())
                    b.applied = v->as_string();
            if (heartbeat_delay.count() > 0) {
                timer t{ex, heartbeat_delay};
                co_await t.async_wait();
            }
            b.stored = std::chrono::steady_clock::now();
            beats.push_back(std::move(b));
            if (!heartbeat_code.empty()) co_return error(heartbeat_code);
            boost::json::object o{{"configUpdatedAt", std::to_string(config_at)}};
            co_return net::json_reply(boost::json::serialize(o));
        }
        if (req.target.ends_with("/GetRuntimeConfig")) {
            ++fetches;
            if (fetch_delay.count() > 0) {
                timer t{ex, fetch_delay};
                co_await t.async_wait();
            }
            boost::json::object o{{"configUpdatedAt", std::to_string(config_at)}, {"config", config}};
            co_return net::json_reply(boost::json::serialize(o));
        }
        if (req.target.ends_with("/CreateStreamToken")) {
            ++tokens;
            if (!token_code.empty()) co_return error(token_code);
            boost::json::object o{
                {"token", stream_token.empty() ? "st-" + std::to_string(tokens) : stream_token},
                {"expiresAt", "2030-01-01T00:05:00Z"}};
            co_return net::json_reply(boost::json::serialize(o));
        }
        if (req.target == "/v1/events") {
            last_event_ids.push_back(
                req.headers.get("Last-Event-ID")
                    ? std::optional<std::string>(std::string(*req.headers.get("Last-Event-ID")))
                    : std::nullopt);
            co_return stream(opens++);
        }
        co_return net::connect::error_reply(404, net::connect::code::unimplemented, "");
    }

    static net::reply error(const std::string& code)
    {
        return net::connect::error_reply(*net::connect::parse_code(code), "scripted");
    }
};

}  // namespace tether::test
