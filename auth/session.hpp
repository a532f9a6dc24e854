// Keeps the node's session token valid: challenge login, refresh before
// expiry (steady clock), one refresh at a time, token read at every call.
#pragma once

#include "auth/state_store.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/connect.hpp"
#include "net/server_set.hpp"
#include "net/url.hpp"

#include <boost/asio/strand.hpp>
#include <boost/system/result.hpp>

#include <atomic>
#include <chrono>
#include <memory>

namespace boost::asio::ssl {
class context;
}

namespace tether::net {
class http_client;
class replaceable_tls;
class rpc_client;
}  // namespace tether::net

namespace tether::auth {

struct session_error {
    net::connect::error error;
    /// BeginAuth said permission_denied: revoked, deleted or mismatched. The
    /// node must be re-enrolled; retrying cannot help.
    bool permanent = false;
};

template <class T>
using session_result = boost::system::result<T, session_error>;

/// Thread-safe: every member runs on the manager's own strand (callers on
/// other strands are hopped over and resumed on theirs).
class session_manager {
public:
    /// `blocking` runs file writes (state.json) off the event loop.
    session_manager(asio::any_io_executor ex, asio::any_io_executor blocking, net::server_set server,
                    std::shared_ptr<net::replaceable_tls> tls, state_paths paths, node_state state,
                    secret key_pem, const log::logger& log);
    ~session_manager();

    /// A token valid now; logs in first when there is none or it is due.
    awaitable<session_result<secret>> token();

    /// After the server rejected `rejected` as unauthenticated: a new login,
    /// unless another caller already replaced that token.
    awaitable<session_result<secret>> refresh(secret rejected);

    [[nodiscard]] const std::string& node_id() const noexcept { return state_.node_id; }
    /// Thread-safe (read by the health endpoint from its own strand).
    [[nodiscard]] std::uint64_t refreshes() const noexcept { return refreshes_.load(); }
    /// Thread-safe: the gateway's wall clock as last seen at a login (our
    /// own before the first), in ms since the epoch.
    [[nodiscard]] std::int64_t server_now_ms() const noexcept;
    /// Thread-safe: a token is held and has not expired (steady clock).
    [[nodiscard]] bool valid() const noexcept;

    /// Off: logins stay in memory (a second process using the state
    /// directory while `tether run` holds its lock must not write it).
    void persist_logins(bool on) noexcept { persist_ = on; }

    /// Message for the operator when a permanent failure ends the agent.
    static std::string reenroll_hint(const std::string& detail);

private:
    awaitable<session_result<secret>> get(bool force, secret rejected);
    awaitable<session_result<secret>> login();
    [[nodiscard]] bool due() const;

    asio::strand<asio::any_io_executor> strand_;
    asio::any_io_executor blocking_;
    std::unique_ptr<net::http_client> http_;
    std::unique_ptr<net::rpc_client> rpc_;
    state_paths paths_;
    node_state state_;
    secret key_;
    const log::logger& log_;
    bool refreshing_ = false;
    timer refreshed_;  // condition variable: cancelled when a login finishes
    std::chrono::steady_clock::time_point expires_{};
    std::chrono::milliseconds refresh_margin_{std::chrono::hours(1)};
    std::atomic<std::uint64_t> refreshes_{0};
    bool persist_ = true;
    std::atomic<std::chrono::steady_clock::rep> valid_until_{0};
    std::atomic<std::int64_t> server_offset_ms_{
        0};  // state_.server_offset_ms, readable off the strand  // expires_, readable off the strand
};

}  // namespace tether::auth
