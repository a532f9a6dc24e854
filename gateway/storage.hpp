// The embedded backend's synchronous calls, one statement (or one SQLite
// transaction) each, joined into one by atomically() where a call of the
// store writes more than once. The gateway never calls them directly:
// sqlite_store runs them on its storage thread behind the awaitable `store`.
#pragma once

#include "gateway/records.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tether::gateway {

/// Every call is synchronous and may block on disk: the gateway calls it
/// from its storage thread only (see storage_executor), never from an
/// io_context thread. Implementations need not be thread-safe.
/// Failures (disk full, corruption) throw std::runtime_error.
class storage {
public:
    using login_record = gateway::login_record;
    using credential_kind = gateway::credential_kind;
    using credential_record = gateway::credential_record;

    virtual ~storage() = default;

    /// Runs `work` as one transaction: what it writes commits together, or
    /// nothing does when it throws. A call inside that keeps a transaction
    /// of its own joins this one.
    virtual void atomically(const std::function<void()>& work) = 0;

    virtual void add_enrollment_code(const std::string& code_hash, const std::string& org_id,
                                     std::int64_t expires_ms, std::int64_t uses) = 0;
    /// See store::remove_enrollment_codes.
    virtual std::int64_t remove_enrollment_codes(const std::string& code_hash, const std::string& org_id) = 0;
    /// Takes one of the code's uses and returns its org, atomically; nullopt
    /// when the code is unknown, expired or used up.
    virtual std::optional<std::string> consume_enrollment_code(const std::string& code_hash,
                                                               std::int64_t now_ms) = 0;

    /// Undoes consume_enrollment_code (an enrollment refused after the code
    /// was checked must not cost the operator the code).
    virtual void release_enrollment_code(const std::string& code_hash) = 0;

    virtual void insert_node(const node_record& n) = 0;
    virtual std::optional<node_record> find_node(const std::string& node_id) = 0;
    virtual std::optional<login_record> find_login(const std::string& node_id) = 0;
    /// Some node (revoked or not) already holds this raw public key.
    virtual bool public_key_taken(const std::string& public_key) = 0;
    virtual void touch_node(const std::string& node_id, std::int64_t last_seen_ms) = 0;
    /// touch_node and the report's facts; applied_changed_ms = now when the
    /// applied version differs from the stored one.
    virtual void record_report(const std::string& node_id, std::int64_t now_ms,
                               const heartbeat_report& r) = 0;
    /// False when there is no such node.
    virtual bool revoke_node(const std::string& node_id) = 0;
    /// See store::forget_nodes.
    virtual std::int64_t forget_nodes(const std::string& org_id, std::int64_t seen_before_ms) = 0;
    /// Nodes ordered by id, after `after_id` (exclusive), at most `limit`.
    virtual std::vector<node_record> list_nodes(const std::string& org_id, const std::string& after_id,
                                                std::size_t limit) = 0;
    /// See store::rollout.
    virtual rollout_counts rollout(const std::string& org_id, std::int64_t latest_at, online_span online,
                                   const std::string& after_id, std::size_t limit) = 0;
    virtual std::vector<std::string> node_orgs(std::size_t limit) = 0;

    /// Stores a new config version, with a configUpdatedAt greater than every
    /// earlier one of the org (max(now_ms, previous + 1)), unless `if_latest`
    /// is given and the org's latest is another (0: none). Keeps the newest
    /// `configs_kept_per_org`.
    virtual publish_outcome publish_config(const std::string& org_id, const std::string& document,
                                           std::int64_t now_ms, std::optional<std::int64_t> if_latest) = 0;
    virtual std::optional<config_record> latest_config(const std::string& org_id) = 0;

    /// Appends to the org's history, keeping the newest `keep` events.
    virtual std::int64_t append_event(const std::string& org_id, const std::string& type,
                                      const std::string& data, std::size_t keep) = 0;
    /// Events after `after_id`, in id order; `org_id` empty = every org.
    virtual std::vector<event_record> events_after(const std::string& org_id, std::int64_t after_id) = 0;
    /// The highest id removed from the org's history (0 if none): a client
    /// whose Last-Event-ID is below it missed events that are gone.
    virtual std::int64_t pruned_upto(const std::string& org_id) = 0;
    virtual std::int64_t last_event_id() = 0;

    // ---- Short-lived credentials -------------------------------------------
    // Login challenges, sessions and stream tokens, keyed by the SHA-256 (hex)
    // of the token: a stolen table replays nothing. They live in the store so
    // a gateway restart (or another replica) still knows them.

    virtual void put_credential(credential_kind k, const std::string& hash, const credential_record& r) = 0;
    /// Single use: deletes the credential (live or not) and returns it when
    /// it was live at `now_ms`.
    virtual std::optional<credential_record> take_credential(credential_kind k, const std::string& hash,
                                                             std::int64_t now_ms) = 0;
    /// A live credential, left in place.
    virtual std::optional<credential_record> find_credential(credential_kind k, const std::string& hash,
                                                             std::int64_t now_ms) = 0;
    /// How many live credentials of kind `k` the node holds.
    virtual std::size_t count_credentials(credential_kind k, const std::string& node_id,
                                          std::int64_t now_ms) = 0;
    /// Keeps the node's `keep` most recently issued credentials of kind `k`.
    virtual void trim_credentials(credential_kind k, const std::string& node_id, std::size_t keep) = 0;
    /// Removes every credential of kind `k` the node holds.
    virtual void drop_credentials(credential_kind k, const std::string& node_id) = 0;
    /// Removes every credential and enrollment code that expired by `now_ms`.
    virtual void prune_credentials(std::int64_t now_ms) = 0;

    /// How many node writes (`touch_node`) happened: heartbeat debounce is
    /// observable in tests and metrics through this.
    [[nodiscard]] virtual std::uint64_t node_writes() const noexcept = 0;
};

}  // namespace tether::gateway
