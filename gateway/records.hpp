// The records the gateway keeps, shared by both storage backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::gateway {

struct node_record {
    std::string node_id;
    std::string org_id;
    std::string node_name;
    std::vector<std::string> capabilities;
    std::string public_key;    ///< raw 32-byte Ed25519 key
    std::string api_key_hash;  ///< hex SHA-256; the key itself is never stored
    bool revoked = false;
    std::int64_t last_seen_ms = 0;
    std::int64_t created_ms = 0;
    /// From heartbeats: the configUpdatedAt the node applied, its agent's
    /// version, and when the applied version last changed.
    std::int64_t applied_config_at = 0;
    std::string agent_version;
    std::int64_t applied_changed_ms = 0;
};

/// What a heartbeat says of the node; stored when it differs from what is
/// (at once, whatever the last_seen debounce).
struct heartbeat_report {
    std::int64_t applied_config_at = 0;
    std::string agent_version;
    std::optional<std::vector<std::string>> capabilities;  ///< not sent: the stored ones stay
};

/// How far ahead of this gateway's clock a stored time may lie and still be
/// taken as written by a replica whose clock runs a little ahead. A time
/// further ahead means this clock went back (an NTP step).
inline constexpr std::int64_t clock_skew_allowance_ms = 1000;

/// A node counts as online when not revoked and last seen within
/// [since_ms, until_ms]. The upper bound matters after the wall clock went
/// back: a last_seen written before the step lies ahead of now whether the
/// node lives on or not (a live one's next heartbeat rewrites it).
struct online_span {
    std::int64_t since_ms = 0;
    std::int64_t until_ms = 0;
    [[nodiscard]] bool holds(std::int64_t last_seen_ms) const noexcept
    {
        return last_seen_ms >= since_ms && last_seen_ms <= until_ms;
    }
};

/// One org's rollout of its latest config, as GetRollout reports it.
/// Revoked nodes count only in `revoked`.
struct rollout_counts {
    std::size_t applied = 0;  ///< online, on the latest version (or newer)
    std::size_t behind = 0;   ///< online, on an older one (or none)
    std::size_t offline = 0;  ///< not seen within the online span (or never)
    std::size_t revoked = 0;
    /// The newest applied_changed_ms among nodes on the latest version: when
    /// the last of them caught up (0: none has).
    std::int64_t last_caught_up_ms = 0;
    std::vector<node_record> behind_page;  ///< by node id, after the cursor asked for
};

struct config_record {
    std::int64_t updated_at = 0;  ///< configUpdatedAt: strictly increasing per org
    std::string document;         ///< JSON object text
};

/// What a publish did. With a condition (the org's latest must still be the
/// version the caller read), a publish that finds another stores nothing:
/// two operators editing one org must not silently undo each other.
struct publish_outcome {
    bool stored = true;
    /// Stored: the new version. Not stored: the org's latest (0: none).
    std::int64_t updated_at = 0;
};

/// Versions of an org's config the store keeps (the newest is the only one
/// served; the others are there for an operator reading the database after
/// a bad publish). A publish deletes what falls beyond them: a pipeline that
/// publishes every minute must not grow the database for ever.
inline constexpr std::size_t configs_kept_per_org = 10;

/// Events only operators see: a node's heartbeat report changed. Node
/// streams never carry them, live or replayed.
inline bool admin_only_event(std::string_view type) noexcept
{
    return type == "node-status";
}

struct event_record {
    std::int64_t id = 0;  ///< increasing in commit order, never reused
    std::string org_id;
    std::string type;
    std::string data;
};

/// What BeginAuth needs of a node, and nothing else: found or not, the
/// lookup costs about the same (see bench/auth_timing).
struct login_record {
    std::string api_key_hash;
    bool revoked = false;
};

// Login challenges, sessions and stream tokens, keyed by the SHA-256 (hex)
// of the token: a stolen table replays nothing. They live in the store so
// a gateway restart (or another replica) still knows them.
/// console_session: an operator's web console login (the cookie's hash).
enum class credential_kind { challenge = 1, session = 2, stream_token = 3, console_session = 4 };
struct credential_record {
    std::string node_id;
    std::string org_id;
    std::int64_t expires_ms = 0;
    /// Stream tokens: when the session they were issued under ends.
    std::int64_t session_expires_ms = 0;
};

/// node_record::capabilities as both backends store them: a JSON array of
/// strings (anything else reads back as none).
std::string caps_to_json(const std::vector<std::string>& caps);
std::vector<std::string> caps_from_json(std::string_view text);

}  // namespace tether::gateway
