#include "auth/session.hpp"

#include "auth/keys.hpp"
#include "base/blocking_call.hpp"
#include "net/http_client.hpp"
#include "net/http_writer.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

namespace tether::auth {

namespace pj = net::protojson;
using steady = std::chrono::steady_clock;

namespace {

/// Longer grants are trusted this long: steady_clock's nanoseconds overflow
/// after ~292 years, and a node logging in again after 30 days costs nothing.
constexpr std::chrono::milliseconds max_trusted_lifetime = std::chrono::hours(24 * 30);

session_result<secret> transient(net::connect::error e)
{
    return session_error{std::move(e), false};
}

/// A failed BeginAuth: permission_denied, said in a Connect error body, is
/// the contract's "re-enroll". Anything else (a proxy's 403 page, an unknown
/// code, any answer to CompleteAuth) may pass, so it is retried.
session_result<secret> rejected(net::connect::error e, bool begin_auth)
{
    const bool permanent = begin_auth && e.explicit_code && e.c == net::connect::code::permission_denied;
    return session_error{std::move(e), permanent};
}

}  // namespace

std::string session_manager::reenroll_hint(const std::string& detail)
{
    return "the gateway refused this node's identity permanently (" + detail +
           "). Likely causes: the node was revoked or deleted by an operator, the gateway's database was "
           "reset, or state.json belongs to another gateway. Re-enroll: tether enroll --server URL "
           "--code-file FILE --force";
}

session_manager::session_manager(asio::any_io_executor ex, asio::any_io_executor blocking,
                                 net::server_set server, std::shared_ptr<net::replaceable_tls> tls,
                                 state_paths paths, node_state state, secret key_pem, const log::logger& log)
    : strand_(asio::make_strand(ex)),
      blocking_(std::move(blocking)),
      http_(std::make_unique<net::http_client>(strand_, std::move(tls))),
      rpc_(std::make_unique<net::rpc_client>(*http_, std::move(server))),
      paths_(std::move(paths)),
      state_(std::move(state)),
      key_(std::move(key_pem)),
      log_(log),
      refreshed_(strand_, timer::time_point::max())
{
    // A persisted token is only trusted with more than an hour left,
    // measured once on the wall clock and from then on on the steady clock.
    const auto remaining = state_.session_expires_ms - (wall_ms() + state_.server_offset_ms);
    if (!state_.session_token.empty() && remaining > 0)
        expires_ = steady::now() + std::min(std::chrono::milliseconds(remaining), max_trusted_lifetime);
    valid_until_ = expires_.time_since_epoch().count();
    server_offset_ms_ = state_.server_offset_ms;
}

std::int64_t session_manager::server_now_ms() const noexcept
{
    return wall_ms() + server_offset_ms_.load();
}

bool session_manager::valid() const noexcept
{
    return steady::now().time_since_epoch().count() < valid_until_.load();
}

session_manager::~session_manager() = default;

bool session_manager::due() const
{
    return state_.session_token.empty() || steady::now() >= expires_ - refresh_margin_;
}

awaitable<session_result<secret>> session_manager::token()
{
    secret none;  // named: see the GCC 12 rules in base/asio.hpp
    auto r = co_await asio::co_spawn(strand_, get(false, std::move(none)), use_awaitable);
    co_return r;
}

awaitable<session_result<secret>> session_manager::refresh(secret rejected)
{
    auto r = co_await asio::co_spawn(strand_, get(true, std::move(rejected)), use_awaitable);
    co_return r;
}

awaitable<session_result<secret>> session_manager::get(bool force, secret rejected)
{
    for (;;) {
        const bool replaced = force && !(state_.session_token == rejected);
        if ((!force || replaced) && !due()) {
            session_result<secret> current = state_.session_token;
            co_return current;
        }
        if (refreshing_) {
            // Someone is logging in: wait for it, then look again.
            refreshed_.expires_at(timer::time_point::max());
            co_await refreshed_.async_wait();
            force = force && state_.session_token == rejected;
            continue;
        }
        refreshing_ = true;
        auto r = co_await login();
        refreshing_ = false;
        refreshed_.cancel();
        co_return r;
    }
}

awaitable<session_result<secret>> session_manager::login()
{
    const auto timeout = std::chrono::seconds(15);
    const boost::json::object begin_req{{"nodeId", state_.node_id}, {"apiKey", state_.api_key.reveal()}};
    const secret none;
    auto begin = co_await rpc_->call(std::string(net::node_service), "BeginAuth", begin_req, none, timeout);
    if (!begin) {
        auto out = rejected(begin.error(), true);
        co_return out;
    }
    auto challenge = pj::get_bytes(*begin, "challenge");
    if (!challenge || challenge->empty()) {
        auto out = transient({net::connect::code::internal, "BeginAuth answered without a challenge"});
        co_return out;
    }
    const std::string sig = sign(key_, login_message(state_.node_id, *challenge));
    const boost::json::object complete_req{{"nodeId", state_.node_id},
                                           {"challenge", pj::base64_encode(*challenge)},
                                           {"signature", pj::base64_encode(sig)}};
    auto done =
        co_await rpc_->call(std::string(net::node_service), "CompleteAuth", complete_req, none, timeout);
    if (!done) {
        auto out = rejected(done.error(), false);
        co_return out;
    }
    auto tok = pj::get_string(*done, "sessionToken");
    auto exp = pj::get_timestamp(*done, "expiresAt");
    auto srv = pj::get_timestamp(*done, "serverTime");
    // A token that cannot go in a header as it is would fail every call
    // after this one: refused here, once, like a missing one.
    if (!tok || !net::http::usable_bearer_token(*tok) || !exp || !srv) {
        auto out =
            transient({net::connect::code::internal, "CompleteAuth answered without a usable session"});
        co_return out;
    }
    // The lifetime the server granted, applied to our steady clock: a wrong
    // wall clock or a suspended process cannot make us trust a dead token.
    const std::chrono::milliseconds granted = *exp - *srv;
    if (granted <= std::chrono::milliseconds::zero()) {
        auto out =
            transient({net::connect::code::internal, "CompleteAuth granted a session that already expired"});
        co_return out;
    }
    const auto lifetime = std::min(granted, max_trusted_lifetime);
    expires_ = steady::now() + lifetime;
    valid_until_ = expires_.time_since_epoch().count();
    // Refresh with a third of the lifetime left, at most an hour ahead: a
    // margin longer than the session would log in before every call.
    refresh_margin_ = std::min<std::chrono::milliseconds>(std::chrono::hours(1), lifetime / 3);
    state_.session_token = secret(std::move(*tok));
    state_.session_expires_ms = exp->time_since_epoch().count();
    state_.server_offset_ms = srv->time_since_epoch().count() - wall_ms();
    server_offset_ms_ = state_.server_offset_ms;
    ++refreshes_;
    log_.info("session.refreshed", {{"node", state_.node_id}, {"lifetime_s", lifetime.count() / 1000}});

    if (!persist_) {
        session_result<secret> out = state_.session_token;
        co_return out;
    }
    std::function<int()> persist = [paths = paths_, st = state_] {
        save_state(paths, st);
        return 0;
    };
    try {
        co_await blocking_call(blocking_, std::move(persist));
    } catch (const std::exception& e) {
        // Not fatal: the token still works in memory; the next start logs in.
        log_.warn("session.persist_failed", {{"error", e.what()}});
    }
    session_result<secret> out = state_.session_token;
    co_return out;
}

}  // namespace tether::auth
