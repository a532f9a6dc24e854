// Short-lived credentials: login challenges, session tokens, stream tokens,
// issued here and kept in the store by the SHA-256 of the token (so a
// restart logs nobody out, another replica knows them, and a stolen
// database replays nothing); plus the per-node heartbeat rate limit, which
// stays in this process's memory (per replica).
#pragma once

#include "base/secret.hpp"
#include "gateway/store.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace tether::gateway {

struct session_info {
    std::string node_id;
    std::string org_id;
    std::int64_t expires_ms = 0;
};

struct issued_token {
    secret token;
    std::int64_t expires_ms = 0;
};

struct session_limits {
    std::int64_t challenge_ms = 30'000;
    std::int64_t session_ms = 24LL * 3600 * 1000;
    std::int64_t stream_token_ms = 5 * 60 * 1000;
    std::size_t stream_tokens_per_node = 10;
    /// Live sessions per node; a login beyond it ends the node's oldest.
    std::size_t sessions_per_node = 8;
    std::size_t heartbeats_per_second = 10;
    std::int64_t heartbeat_write_every_ms = 5'000;
};

/// The credential calls are round trips to the store; the rate limits are
/// thread-safe and run anywhere.
class session_registry {
public:
    using clock_fn = std::function<std::int64_t()>;  ///< wall clock, ms since the epoch

    session_registry(clock_fn now, session_limits limits = {});

    struct challenge {
        std::string bytes;  ///< 32 random bytes, valid for one CompleteAuth of this node
        std::int64_t expires_ms = 0;
    };
    awaitable<challenge> new_challenge(store& st, std::string node_id);
    /// Single use: true once for a live challenge issued to this node.
    awaitable<bool> take_challenge(store& st, std::string node_id, std::string challenge);

    /// A login beyond `sessions_per_node` ends the node's oldest session.
    awaitable<issued_token> new_session(store& st, std::string node_id, std::string org_id);
    awaitable<std::optional<session_info>> find_session(store& st, secret token);

    /// nullopt when the node already holds the maximum of unexpired tokens.
    awaitable<std::optional<issued_token>> new_stream_token(store& st, session_info s);
    /// Single use; the grant carries the session's expiry (streams end with it).
    awaitable<std::optional<session_info>> take_stream_token(store& st, secret token);

    /// Expired credentials leave the store, idle rate-limit state the memory.
    awaitable<void> prune(store& st);

    /// Sliding one-second window per node.
    bool allow_heartbeat(const std::string& node_id);

    [[nodiscard]] std::int64_t now_ms() const { return now_(); }
    [[nodiscard]] const session_limits& limits() const noexcept { return limits_; }

private:
    clock_fn now_;
    session_limits limits_;
    std::mutex m_;  // guards the rate-limit map
    std::map<std::string, std::deque<std::int64_t>> beats_;
};

}  // namespace tether::gateway
