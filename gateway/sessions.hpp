// Short-lived credentials the gateway keeps only in memory: login
// challenges, session tokens, stream tokens; plus per-node heartbeat rate
// limiting and write debouncing. A restart forgets them all on purpose:
// agents log in again (their api key and node key are the durable identity),
// so no bearer token ever touches the disk.
#pragma once

#include "base/secret.hpp"

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

/// Thread-safe. Tokens are looked up by their SHA-256, so the maps never
/// hold a usable credential.
class session_registry {
public:
    using clock_fn = std::function<std::int64_t()>;  ///< wall clock, ms since the epoch

    session_registry(clock_fn now, session_limits limits = {});

    /// 32 random bytes, valid for one CompleteAuth of this node.
    std::string new_challenge(const std::string& node_id, std::int64_t* expires_ms);
    /// Single use: true once for a live challenge issued to this node.
    bool take_challenge(const std::string& node_id, const std::string& challenge);

    issued_token new_session(const std::string& node_id, const std::string& org_id);
    std::optional<session_info> find_session(const secret& token);

    /// nullopt when the node already holds the maximum of unexpired tokens.
    std::optional<issued_token> new_stream_token(const session_info& s);
    /// Single use; the grant carries the session's expiry (streams end with it).
    std::optional<session_info> take_stream_token(const secret& token);

    /// Revocation: the node's stream tokens and challenges are gone; its
    /// sessions remain so that calls with them get not_found.
    void drop_node(const std::string& node_id);

    /// Sliding one-second window per node.
    bool allow_heartbeat(const std::string& node_id);
    /// True at most once per `heartbeat_write_every_ms` per node.
    bool should_write(const std::string& node_id);

    void prune();
    [[nodiscard]] std::int64_t now_ms() const { return now_(); }
    [[nodiscard]] const session_limits& limits() const noexcept { return limits_; }

private:
    struct challenge {
        std::string node_id;
        std::int64_t expires_ms;
    };
    clock_fn now_;
    session_limits limits_;
    std::mutex m_;
    std::map<std::string, challenge> challenges_;                   // key: sha256(challenge)
    std::map<std::string, session_info> sessions_;                  // key: sha256(token)
    std::map<std::string, std::deque<std::string>> node_sessions_;  // node -> its session keys, oldest first
    std::map<std::string, session_info> stream_tokens_;   // key: sha256(token); expires_ms = token expiry
    std::map<std::string, std::int64_t> stream_session_;  // key: sha256(token) -> session expiry
    std::map<std::string, std::deque<std::int64_t>> beats_;
    std::map<std::string, std::int64_t> last_write_;
};

}  // namespace tether::gateway
