// What the gateway's handlers ask of their storage, one awaitable call per
// step of an RPC, with two backends chosen at start: sqlite_store (the
// embedded file, one storage thread) and postgres::pg_store (N replicas on
// one database). Each call is atomic where the RPC needs it to be (enroll,
// publish, revoke are one transaction), so the handlers never compose
// storage steps that could interleave with another replica's.
#pragma once

#include "base/asio.hpp"
#include "gateway/records.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tether::gateway {

/// A node's liveness and its org's latest config, read together.
struct live_config {
    bool alive = false;  ///< the node exists and is not revoked
    std::optional<config_record> cfg;
    /// The heartbeat's report differed from the stored one and was written.
    bool report_written = false;
};

/// What replay after a Last-Event-ID finds.
struct event_history {
    bool reset = false;  ///< the cursor is older than the history (or not ours): send `reset` first
    std::vector<event_record> events;
};

/// For /readyz and /metrics.
struct store_status {
    bool listening = true;         ///< the event feed is connected (PostgreSQL: the LISTEN connection)
    bool feed_ready = true;        ///< listening and caught up: /readyz requires it
    std::int64_t tail_lag_ms = 0;  ///< since the event feed last read everything committed
    std::size_t pool_in_use = 0;   ///< connections running a statement
    std::size_t pool_open = 0;     ///< connections open
    std::int64_t feed_cursor = 0;  ///< the newest event id handed to the sink
};

/// Every call may run on any thread and resumes the caller on its own
/// executor. Failures of the store itself (disk, database unreachable,
/// statement timeout) throw std::runtime_error: the service answers them
/// `unavailable`. Outcomes an RPC expects (unknown code, taken key) are
/// values.
class store {
public:
    virtual ~store() = default;

    /// Where committed events go, in id order, each exactly once: the
    /// service's hub. Set once, before serving; called on a backend thread.
    using event_sink = std::function<void(const std::vector<event_record>&)>;
    virtual void set_event_sink(event_sink sink) = 0;

    // ---- Enrollment and nodes ------------------------------------------------
    /// A code that enrolls up to `uses` nodes (one, unless an operator
    /// asked for a code a whole DaemonSet shares) until `expires_ms`.
    virtual awaitable<void> add_enrollment_code(std::string code_hash, std::string org_id,
                                                std::int64_t expires_ms, std::int64_t uses) = 0;
    /// Deletes the code with this hash, or (`code_hash` empty) every code of
    /// `org_id`, used up and expired ones included; how many it deleted.
    virtual awaitable<std::int64_t> remove_enrollment_codes(std::string code_hash, std::string org_id) = 0;
    enum class enroll_outcome { enrolled, code_refused, key_taken };
    struct enrollment {
        enroll_outcome outcome = enroll_outcome::code_refused;
        std::string org_id;
    };
    /// Consumes the code (unknown, expired or used: code_refused) and inserts
    /// `n` in its org, atomically; a key another node holds leaves the code
    /// unused (key_taken).
    virtual awaitable<enrollment> enroll(std::string code_hash, node_record n, std::int64_t now_ms) = 0;
    virtual awaitable<std::optional<login_record>> find_login(std::string node_id) = 0;
    virtual awaitable<std::optional<node_record>> find_node(std::string node_id) = 0;
    virtual awaitable<bool> node_is_live(std::string node_id) = 0;
    /// record_heartbeat without the write.
    awaitable<live_config> config_if_live(std::string node_id, std::string org_id)
    {
        auto out = co_await record_heartbeat(std::move(node_id), std::move(org_id), 0, -1, std::nullopt);
        co_return out;
    }
    /// config_if_live, and last_seen = now when the node is live and its
    /// last_seen is at least `write_every_ms` old (< 0: never write): one round trip, so a
    /// heartbeat storm costs reads, and writes at most once per interval
    /// across every replica. A `report` that differs from the stored one is
    /// written at once (with last_seen), so a rollout shows without waiting,
    /// but at most once a second per node.
    virtual awaitable<live_config> record_heartbeat(std::string node_id, std::string org_id,
                                                    std::int64_t now_ms, std::int64_t write_every_ms,
                                                    std::optional<heartbeat_report> report) = 0;
    /// Nodes ordered by id after `after_id` (exclusive), at most `limit`;
    /// `org_id` empty: every org.
    virtual awaitable<std::vector<node_record>> list_nodes(std::string org_id, std::string after_id,
                                                           std::size_t limit) = 0;
    /// The org's rollout of `latest_at` (see online_span for who is
    /// online); `behind_page` holds at most `limit` online nodes behind, by
    /// id after `after_id`.
    virtual awaitable<rollout_counts> rollout(std::string org_id, std::int64_t latest_at, online_span online,
                                              std::string after_id, std::size_t limit) = 0;
    /// Orgs that have nodes, by id, at most `limit`.
    virtual awaitable<std::vector<std::string>> node_orgs(std::size_t limit) = 0;
    /// Marks the node revoked, drops its stream tokens and challenges (its
    /// sessions stay, so their calls get not_found) and appends the
    /// `node-revoked` event, atomically; nullopt when there is no such node.
    virtual awaitable<std::optional<event_record>> revoke_node(std::string node_id, std::size_t keep) = 0;
    /// Deletes the org's nodes last seen (or, never seen, enrolled) before
    /// `seen_before_ms`, revoked ones included, with their credentials,
    /// atomically; how many. A node that comes back gets not_found.
    virtual awaitable<std::int64_t> forget_nodes(std::string org_id, std::int64_t seen_before_ms) = 0;

    // ---- Configs and events --------------------------------------------------
    /// The org's newest config, if it has one.
    virtual awaitable<std::optional<config_record>> latest_config(std::string org_id) = 0;
    /// Stores a new version (configUpdatedAt = max(now, previous + 1)) and
    /// appends its `config-updated` event, atomically, unless `if_latest`
    /// is given and the org's latest is another (0: none): then nothing
    /// changes. The org's history keeps the newest `keep` events and
    /// `configs_kept_per_org` versions.
    virtual awaitable<publish_outcome> publish_config(std::string org_id, std::string document,
                                                      std::int64_t now_ms,
                                                      std::optional<std::int64_t> if_latest,
                                                      std::size_t keep) = 0;
    /// Appends an event of the org's (in id order with every other), and
    /// keeps the newest `keep`; the sink gets it like any other.
    virtual awaitable<std::int64_t> append_event(std::string org_id, std::string type, std::string data,
                                                 std::size_t keep) = 0;
    /// The org's events after `after_id` (nullopt: a cursor that did not
    /// parse); `org_id` empty: every org. At most `limit` events: a longer
    /// history answers with a reset and the newest `limit`.
    virtual awaitable<event_history> replay(std::string org_id, std::optional<std::int64_t> after_id,
                                            std::size_t limit) = 0;

    // ---- Credentials ---------------------------------------------------------
    /// Stores a credential; with `keep` > 0, the node keeps only its `keep`
    /// most recently issued ones of this kind.
    virtual awaitable<void> put_credential(credential_kind k, std::string hash, credential_record r,
                                           std::size_t keep) = 0;
    /// Stores it only while the node holds fewer than `max_live` live ones
    /// of this kind; false when it holds that many.
    virtual awaitable<bool> put_credential_capped(credential_kind k, std::string hash, credential_record r,
                                                  std::size_t max_live, std::int64_t now_ms) = 0;
    /// Single use across replicas: deletes the credential (live or not) and
    /// returns it when it was live at `now_ms`.
    virtual awaitable<std::optional<credential_record>> take_credential(credential_kind k, std::string hash,
                                                                        std::int64_t now_ms) = 0;
    virtual awaitable<std::optional<credential_record>> find_credential(credential_kind k, std::string hash,
                                                                        std::int64_t now_ms) = 0;
    /// Removes every credential and enrollment code that expired by `now_ms`.
    virtual awaitable<void> prune_credentials(std::int64_t now_ms) = 0;

    // ---- Health ----------------------------------------------------------------
    /// A trivial round trip; throws when the store does not answer.
    virtual awaitable<void> ping() = 0;
    [[nodiscard]] virtual store_status status() const = 0;
    /// Node writes this process made (heartbeat debounce is observable).
    [[nodiscard]] virtual std::uint64_t node_writes() const noexcept = 0;
    /// "sqlite" or "postgres", for logs and /metrics.
    [[nodiscard]] virtual std::string_view backend() const noexcept = 0;
};

}  // namespace tether::gateway
