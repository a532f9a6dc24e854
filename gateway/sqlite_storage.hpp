// The embedded default backend: one SQLite file, WAL mode.
#pragma once

#include "gateway/storage.hpp"

#include <chrono>
#include <filesystem>
#include <memory>

struct sqlite3;

namespace tether::gateway {

/// Opens (creating if needed) `path` and applies pending schema migrations.
/// Throws std::runtime_error naming the file on any failure.
class sqlite_storage final : public storage {
public:
    explicit sqlite_storage(const std::filesystem::path& path);
    ~sqlite_storage() override;

    void atomically(const std::function<void()>& work) override;
    void add_enrollment_code(const std::string& code_hash, const std::string& org_id, std::int64_t expires_ms,
                             std::int64_t uses) override;
    std::int64_t remove_enrollment_codes(const std::string& code_hash, const std::string& org_id) override;
    std::optional<std::string> consume_enrollment_code(const std::string& code_hash,
                                                       std::int64_t now_ms) override;
    void insert_node(const node_record& n) override;
    std::optional<node_record> find_node(const std::string& node_id) override;
    bool public_key_taken(const std::string& public_key) override;
    std::optional<login_record> find_login(const std::string& node_id) override;
    void release_enrollment_code(const std::string& code_hash) override;
    void touch_node(const std::string& node_id, std::int64_t last_seen_ms) override;
    void record_report(const std::string& node_id, std::int64_t now_ms, const heartbeat_report& r) override;
    bool revoke_node(const std::string& node_id) override;
    std::int64_t forget_nodes(const std::string& org_id, std::int64_t seen_before_ms) override;
    std::vector<node_record> list_nodes(const std::string& org_id, const std::string& after_id,
                                        std::size_t limit) override;
    rollout_counts rollout(const std::string& org_id, std::int64_t latest_at, online_span online,
                           const std::string& after_id, std::size_t limit) override;
    std::vector<std::string> node_orgs(std::size_t limit) override;
    publish_outcome publish_config(const std::string& org_id, const std::string& document,
                                   std::int64_t now_ms, std::optional<std::int64_t> if_latest) override;
    std::optional<config_record> latest_config(const std::string& org_id) override;
    std::int64_t append_event(const std::string& org_id, const std::string& type, const std::string& data,
                              std::size_t keep) override;
    std::vector<event_record> events_after(const std::string& org_id, std::int64_t after_id) override;
    std::int64_t pruned_upto(const std::string& org_id) override;
    std::int64_t last_event_id() override;
    void put_credential(credential_kind k, const std::string& hash, const credential_record& r) override;
    std::optional<credential_record> take_credential(credential_kind k, const std::string& hash,
                                                     std::int64_t now_ms) override;
    std::optional<credential_record> find_credential(credential_kind k, const std::string& hash,
                                                     std::int64_t now_ms) override;
    std::size_t count_credentials(credential_kind k, const std::string& node_id,
                                  std::int64_t now_ms) override;
    void trim_credentials(credential_kind k, const std::string& node_id, std::size_t keep) override;
    void drop_credentials(credential_kind k, const std::string& node_id) override;
    void prune_credentials(std::int64_t now_ms) override;
    [[nodiscard]] std::uint64_t node_writes() const noexcept override { return node_writes_; }

    /// The schema version this build migrates to.
    static int schema_version() noexcept;

private:
    class statement;
    static credential_record credential_at(const statement& s);
    static node_record node_at(const statement& s);
    void exec(const char* sql);
    /// Transactions nest: only the outermost begins and ends one, so that a
    /// call keeping its own transaction joins the atomically() around it.
    void begin();
    void commit();
    /// Ends the open transaction, if SQLite has not; for error paths, so
    /// it throws nothing and leaves the error in flight as it was. Nested,
    /// it leaves the end to the outermost, which the error reaches.
    void roll_back() noexcept;
    void migrate();
    /// SQLite's busy handler: whether to wait on for a lock held elsewhere.
    static int on_busy(void* self, int count) noexcept;
    static int on_commit(void* self) noexcept;

    sqlite3* db_ = nullptr;
    int depth_ = 0;  ///< begin()s not yet ended
    /// Set when a wait for a lock held elsewhere ran out; cleared by our
    /// next commit, which proves the lock is ours to take again.
    bool locked_elsewhere_ = false;
    std::chrono::steady_clock::time_point busy_since_{};
    std::filesystem::path path_;
    std::uint64_t node_writes_ = 0;
};

/// A consistent copy of the database at `db` as `out` (0600), taken while
/// a gateway may be writing it (one read transaction: `VACUUM INTO`). The
/// copy is written under a name of its own, fsynced and linked into place,
/// so `out` is whole or absent; an existing `out` is never replaced.
/// Applies no migration to `db`. Throws std::runtime_error saying why.
void backup_database(const std::filesystem::path& db, const std::filesystem::path& out);

}  // namespace tether::gateway
