#include "gateway/sqlite_storage.hpp"

#include "base/whole_file.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tether::gateway {

namespace {

// Versioned in code: entry N takes the schema from version N to N+1. Never
// edit an entry that has shipped; append a new one.
constexpr const char* migrations[] = {
    R"sql(
CREATE TABLE enrollment_codes(
  code_hash  TEXT PRIMARY KEY,
  org_id     TEXT NOT NULL,
  expires_ms INTEGER NOT NULL,
  used       INTEGER NOT NULL DEFAULT 0);
CREATE TABLE nodes(
  node_id      TEXT PRIMARY KEY,
  org_id       TEXT NOT NULL,
  node_name    TEXT NOT NULL,
  capabilities TEXT NOT NULL,
  public_key   BLOB NOT NULL,
  api_key_hash TEXT NOT NULL,
  revoked      INTEGER NOT NULL DEFAULT 0,
  last_seen_ms INTEGER NOT NULL DEFAULT 0,
  created_ms   INTEGER NOT NULL);
CREATE INDEX nodes_by_org ON nodes(org_id, node_id);
CREATE TABLE configs(
  org_id     TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  document   TEXT NOT NULL,
  PRIMARY KEY(org_id, updated_at));
CREATE TABLE events(
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id TEXT NOT NULL,
  type   TEXT NOT NULL,
  data   TEXT NOT NULL);
CREATE INDEX events_by_org ON events(org_id, id);
CREATE TABLE event_horizon(
  org_id      TEXT PRIMARY KEY,
  pruned_upto INTEGER NOT NULL);
)sql",
    // 2: challenges, sessions and stream tokens, by the SHA-256 of the token.
    // The rowid orders a node's credentials by issue.
    R"sql(
CREATE TABLE credentials(
  kind               INTEGER NOT NULL,
  token_hash         TEXT NOT NULL,
  node_id            TEXT NOT NULL,
  org_id             TEXT NOT NULL,
  expires_ms         INTEGER NOT NULL,
  session_expires_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(kind, token_hash));
CREATE INDEX credentials_by_node ON credentials(kind, node_id);
CREATE INDEX credentials_by_expiry ON credentials(expires_ms);
)sql",
    // 3: what heartbeats report (issue 18): the applied config, the agent's
    // version, when the applied version last changed.
    R"sql(
ALTER TABLE nodes ADD COLUMN applied_config_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN applied_changed_ms INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4: codes that enroll more than one node (a DaemonSet shares one).
    // uses_left alone decides from here on; `used` is no longer written.
    R"sql(
ALTER TABLE enrollment_codes ADD COLUMN uses_left INTEGER NOT NULL DEFAULT 1;
UPDATE enrollment_codes SET uses_left = 0 WHERE used = 1;
)sql",
};

}  // namespace

/// RAII prepared statement with 1-based binds and 0-based columns.
class sqlite_storage::statement {
public:
    statement(sqlite3* db, const char* sql) : db_(db)
    {
        if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
            throw std::runtime_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
    }
    ~statement() { sqlite3_finalize(stmt_); }
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;

    statement& bind(int i, const std::string& v)
    {
        check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    statement& bind_blob(int i, const std::string& v)
    {
        check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    statement& bind(int i, std::int64_t v)
    {
        check(sqlite3_bind_int64(stmt_, i, v));
        return *this;
    }
    /// True while there is a row.
    bool step()
    {
        const int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw std::runtime_error(std::string("sqlite step: ") + sqlite3_errmsg(db_));
    }
    std::string text(int col) const
    {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_blob(stmt_, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
    }
    std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

private:
    void check(int rc) const
    {
        if (rc != SQLITE_OK) throw std::runtime_error(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
    }
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

int sqlite_storage::schema_version() noexcept
{
    return static_cast<int>(std::size(migrations));
}

sqlite_storage::sqlite_storage(const std::filesystem::path& path) : path_(path)
{
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw std::runtime_error("cannot open database " + path.string() + ": " + why);
    }
    sqlite3_busy_handler(db_, &sqlite_storage::on_busy, this);
    sqlite3_commit_hook(db_, &sqlite_storage::on_commit, this);
    try {
        exec("PRAGMA journal_mode=WAL");
        exec("PRAGMA synchronous=NORMAL");  // WAL + NORMAL: durable across process crashes
        exec("PRAGMA foreign_keys=ON");
        migrate();
    } catch (const std::exception& e) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw std::runtime_error("database " + path.string() + ": " + e.what());
    }
}

sqlite_storage::~sqlite_storage()
{
    sqlite3_close(db_);
}

int sqlite_storage::on_busy(void* self, int count) noexcept
{
    // Every storage call runs on one thread: a write waiting for a lock
    // another process holds (someone's sqlite3 shell left in a transaction)
    // holds up every call queued behind it, reads included, which WAL would
    // otherwise let through. So the first wait may take 5 s, and once one
    // has run out, the next writes give up after a moment until one of
    // ours commits again.
    auto& s = *static_cast<sqlite_storage*>(self);
    const auto now = std::chrono::steady_clock::now();
    if (count == 0) s.busy_since_ = now;
    const auto limit = s.locked_elsewhere_ ? std::chrono::milliseconds(50) : std::chrono::milliseconds(5000);
    if (now - s.busy_since_ >= limit) {
        s.locked_elsewhere_ = true;
        return 0;
    }
    sqlite3_sleep(std::min(1 << std::min(count, 5), 25));  // 1, 2, 4 ... 25 ms between tries
    return 1;
}

int sqlite_storage::on_commit(void* self) noexcept
{
    static_cast<sqlite_storage*>(self)->locked_elsewhere_ = false;
    return 0;  // go on with the commit
}

void sqlite_storage::exec(const char* sql)
{
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        const std::string why = err ? err : "unknown error";
        sqlite3_free(err);
        throw std::runtime_error(why);
    }
}

void sqlite_storage::begin()
{
    if (depth_ == 0) exec("BEGIN IMMEDIATE");
    ++depth_;
}

void sqlite_storage::commit()
{
    // A COMMIT that throws leaves depth_ as it was, for the caller's roll_back().
    if (depth_ == 1) exec("COMMIT");
    --depth_;
}

void sqlite_storage::atomically(const std::function<void()>& work)
{
    begin();
    try {
        work();
        commit();
    } catch (...) {
        roll_back();
        throw;
    }
}

void sqlite_storage::roll_back() noexcept
{
    if (depth_ > 0 && --depth_ > 0) return;
    // SQLite may have rolled back already (it can on SQLITE_FULL, IOERR,
    // BUSY and NOMEM). A second ROLLBACK then fails, and its "no transaction
    // is active" would replace the error that says what went wrong.
    if (sqlite3_get_autocommit(db_) != 0) return;
    (void)sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void sqlite_storage::migrate()
{
    exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)");
    std::int64_t version = 0;
    {
        statement s(db_, "SELECT version FROM schema_version");
        if (s.step()) version = s.integer(0);
    }
    if (version > schema_version())
        throw std::runtime_error("schema version " + std::to_string(version) + " is newer than this build (" +
                                 std::to_string(schema_version()) +
                                 "); refusing to run an older gateway on it");
    for (auto v = version; v < schema_version(); ++v) {
        begin();
        try {
            exec(migrations[v]);
            exec("DELETE FROM schema_version");
            statement s(db_, "INSERT INTO schema_version(version) VALUES(?)");
            s.bind(1, v + 1).step();
            commit();
        } catch (...) {
            roll_back();
            throw;
        }
    }
}

void sqlite_storage::add_enrollment_code(const std::string& code_hash, const std::string& org_id,
                                         std::int64_t expires_ms, std::int64_t uses)
{
    statement s(db_,
                "INSERT INTO enrollment_codes(code_hash, org_id, expires_ms, uses_left) VALUES(?,?,?,?)");
    s.bind(1, code_hash).bind(2, org_id).bind(3, expires_ms).bind(4, uses).step();
}

std::int64_t sqlite_storage::remove_enrollment_codes(const std::string& code_hash, const std::string& org_id)
{
    statement s(db_, "DELETE FROM enrollment_codes WHERE code_hash = ?1 OR (?1 = '' AND org_id = ?2)");
    s.bind(1, code_hash).bind(2, org_id).step();
    return sqlite3_changes(db_);
}

std::optional<std::string> sqlite_storage::consume_enrollment_code(const std::string& code_hash,
                                                                   std::int64_t now_ms)
{
    // One UPDATE decides: two enrollments racing for one code cannot both win.
    statement s(db_,
                "UPDATE enrollment_codes SET uses_left = uses_left - 1 "
                "WHERE code_hash = ? AND uses_left > 0 AND expires_ms > ? RETURNING org_id");
    s.bind(1, code_hash).bind(2, now_ms);
    if (!s.step()) return std::nullopt;
    auto org = s.text(0);
    while (s.step()) {}
    return org;
}

void sqlite_storage::release_enrollment_code(const std::string& code_hash)
{
    statement s(db_, "UPDATE enrollment_codes SET uses_left = uses_left + 1 WHERE code_hash = ?");
    s.bind(1, code_hash).step();
}

void sqlite_storage::insert_node(const node_record& n)
{
    statement s(
        db_,
        "INSERT INTO nodes(node_id, org_id, node_name, capabilities, public_key, api_key_hash, revoked, "
        "last_seen_ms, created_ms) VALUES(?,?,?,?,?,?,?,?,?)");
    s.bind(1, n.node_id)
        .bind(2, n.org_id)
        .bind(3, n.node_name)
        .bind(4, caps_to_json(n.capabilities))
        .bind_blob(5, n.public_key)
        .bind(6, n.api_key_hash)
        .bind(7, std::int64_t{n.revoked ? 1 : 0})
        .bind(8, n.last_seen_ms)
        .bind(9, n.created_ms)
        .step();
}

namespace {
constexpr const char* node_columns =
    "node_id, org_id, node_name, capabilities, public_key, api_key_hash, revoked, last_seen_ms, created_ms, "
    "applied_config_at, agent_version, applied_changed_ms";
}

node_record sqlite_storage::node_at(const statement& s)
{
    // Columns: node_columns.
    return node_record{s.text(0),    s.text(1),    s.text(2),         caps_from_json(s.text(3)),
                       s.text(4),    s.text(5),    s.integer(6) != 0, s.integer(7),
                       s.integer(8), s.integer(9), s.text(10),        s.integer(11)};
}

std::optional<node_record> sqlite_storage::find_node(const std::string& node_id)
{
    statement s(db_, (std::string("SELECT ") + node_columns + " FROM nodes WHERE node_id = ?").c_str());
    s.bind(1, node_id);
    if (!s.step()) return std::nullopt;
    return node_at(s);
}

std::optional<storage::login_record> sqlite_storage::find_login(const std::string& node_id)
{
    statement s(db_, "SELECT api_key_hash, revoked FROM nodes WHERE node_id = ?");
    s.bind(1, node_id);
    if (!s.step()) return std::nullopt;
    return login_record{s.text(0), s.integer(1) != 0};
}

bool sqlite_storage::public_key_taken(const std::string& public_key)
{
    statement s(db_, "SELECT 1 FROM nodes WHERE public_key = ? LIMIT 1");
    s.bind_blob(1, public_key);
    return s.step();
}

void sqlite_storage::touch_node(const std::string& node_id, std::int64_t last_seen_ms)
{
    statement s(db_, "UPDATE nodes SET last_seen_ms = ? WHERE node_id = ?");
    s.bind(1, last_seen_ms).bind(2, node_id).step();
    ++node_writes_;
}

void sqlite_storage::record_report(const std::string& node_id, std::int64_t now_ms, const heartbeat_report& r)
{
    statement s(
        db_,
        "UPDATE nodes SET last_seen_ms = ?1, applied_changed_ms = CASE WHEN applied_config_at != ?2 THEN ?1 "
        "ELSE applied_changed_ms END, applied_config_at = ?2, agent_version = ?3, capabilities = ?4 "
        "WHERE node_id = ?5");
    s.bind(1, now_ms)
        .bind(2, r.applied_config_at)
        .bind(3, r.agent_version)
        .bind(4, caps_to_json(r.capabilities.value_or(std::vector<std::string>{})));
    s.bind(5, node_id).step();
    ++node_writes_;
}

std::int64_t sqlite_storage::forget_nodes(const std::string& org_id, std::int64_t seen_before_ms)
{
    begin();
    try {
        {
            statement s(
                db_,
                "DELETE FROM credentials WHERE node_id IN (SELECT node_id FROM nodes WHERE org_id = ?1 "
                "AND MAX(last_seen_ms, created_ms) < ?2)");
            s.bind(1, org_id).bind(2, seen_before_ms).step();
        }
        statement s(db_, "DELETE FROM nodes WHERE org_id = ?1 AND MAX(last_seen_ms, created_ms) < ?2");
        s.bind(1, org_id).bind(2, seen_before_ms).step();
        const std::int64_t gone = sqlite3_changes(db_);
        commit();
        return gone;
    } catch (...) {
        roll_back();
        throw;
    }
}

bool sqlite_storage::revoke_node(const std::string& node_id)
{
    statement s(db_, "UPDATE nodes SET revoked = 1 WHERE node_id = ?");
    s.bind(1, node_id).step();
    return sqlite3_changes(db_) > 0;
}

std::vector<node_record> sqlite_storage::list_nodes(const std::string& org_id, const std::string& after_id,
                                                    std::size_t limit)
{
    std::vector<node_record> out;
    statement s(db_, (std::string("SELECT ") + node_columns +
                      " FROM nodes WHERE (?1 = '' OR org_id = ?1) AND node_id > ?2 ORDER BY node_id LIMIT ?3")
                         .c_str());
    s.bind(1, org_id).bind(2, after_id).bind(3, static_cast<std::int64_t>(limit));
    while (s.step()) out.push_back(node_at(s));
    return out;
}

rollout_counts sqlite_storage::rollout(const std::string& org_id, std::int64_t latest_at, online_span online,
                                       const std::string& after_id, std::size_t limit)
{
    rollout_counts out;
    {
        // One pass over the org's nodes (nodes_by_org).
        statement s(
            db_,
            "SELECT "
            "COALESCE(SUM(revoked = 0 AND last_seen_ms BETWEEN ?2 AND ?4 AND applied_config_at >= ?3), 0), "
            "COALESCE(SUM(revoked = 0 AND last_seen_ms BETWEEN ?2 AND ?4 AND applied_config_at < ?3), 0), "
            "COALESCE(SUM(revoked = 0 AND last_seen_ms NOT BETWEEN ?2 AND ?4), 0), "
            "COALESCE(SUM(revoked != 0), 0), "
            "COALESCE(MAX(CASE WHEN revoked = 0 AND applied_config_at >= ?3 THEN applied_changed_ms "
            "END), 0) "
            "FROM nodes WHERE org_id = ?1");
        s.bind(1, org_id).bind(2, online.since_ms).bind(3, latest_at).bind(4, online.until_ms);
        if (s.step()) {
            out.applied = static_cast<std::size_t>(s.integer(0));
            out.behind = static_cast<std::size_t>(s.integer(1));
            out.offline = static_cast<std::size_t>(s.integer(2));
            out.revoked = static_cast<std::size_t>(s.integer(3));
            out.last_caught_up_ms = s.integer(4);
        }
    }
    statement s(db_, (std::string("SELECT ") + node_columns +
                      " FROM nodes WHERE org_id = ?1 AND revoked = 0 AND last_seen_ms BETWEEN ?2 AND ?6 "
                      "AND applied_config_at < ?3 AND node_id > ?4 ORDER BY node_id LIMIT ?5")
                         .c_str());
    s.bind(1, org_id).bind(2, online.since_ms).bind(3, latest_at).bind(4, after_id);
    s.bind(5, static_cast<std::int64_t>(limit)).bind(6, online.until_ms);
    while (s.step()) out.behind_page.push_back(node_at(s));
    return out;
}

std::vector<std::string> sqlite_storage::node_orgs(std::size_t limit)
{
    std::vector<std::string> out;
    statement s(db_, "SELECT DISTINCT org_id FROM nodes ORDER BY org_id LIMIT ?");
    s.bind(1, static_cast<std::int64_t>(limit));
    while (s.step()) out.push_back(s.text(0));
    return out;
}

publish_outcome sqlite_storage::publish_config(const std::string& org_id, const std::string& document,
                                               std::int64_t now_ms, std::optional<std::int64_t> if_latest)
{
    begin();
    try {
        std::int64_t previous = 0;
        {
            statement s(db_, "SELECT MAX(updated_at) FROM configs WHERE org_id = ?");
            s.bind(1, org_id);
            if (s.step()) previous = s.integer(0);
        }
        if (if_latest && *if_latest != previous) {
            commit();  // it only read
            return {false, previous};
        }
        const std::int64_t at = std::max(now_ms, previous + 1);
        statement s(db_, "INSERT INTO configs(org_id, updated_at, document) VALUES(?,?,?)");
        s.bind(1, org_id).bind(2, at).bind(3, document).step();
        statement d(db_,
                    "DELETE FROM configs WHERE org_id = ?1 AND updated_at < (SELECT updated_at FROM configs "
                    "WHERE org_id = ?1 ORDER BY updated_at DESC LIMIT 1 OFFSET ?2)");
        d.bind(1, org_id).bind(2, static_cast<std::int64_t>(configs_kept_per_org - 1)).step();
        commit();
        return {true, at};
    } catch (...) {
        roll_back();
        throw;
    }
}

std::optional<config_record> sqlite_storage::latest_config(const std::string& org_id)
{
    statement s(db_,
                "SELECT updated_at, document FROM configs WHERE org_id = ? ORDER BY updated_at DESC LIMIT 1");
    s.bind(1, org_id);
    if (!s.step()) return std::nullopt;
    return config_record{s.integer(0), s.text(1)};
}

std::int64_t sqlite_storage::append_event(const std::string& org_id, const std::string& type,
                                          const std::string& data, std::size_t keep)
{
    begin();
    try {
        std::int64_t id = 0;
        {
            statement s(db_, "INSERT INTO events(org_id, type, data) VALUES(?,?,?) RETURNING id");
            s.bind(1, org_id).bind(2, type).bind(3, data);
            if (s.step()) id = s.integer(0);
            while (s.step()) {}
        }
        // Prune beyond `keep`, remembering how far: replay needs to know
        // whether a client's Last-Event-ID fell off the end.
        std::int64_t cut = 0;
        {
            statement s(db_, "SELECT id FROM events WHERE org_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?");
            s.bind(1, org_id).bind(2, static_cast<std::int64_t>(keep));
            if (s.step()) cut = s.integer(0);
        }
        if (cut > 0) {
            statement d(db_, "DELETE FROM events WHERE org_id = ? AND id <= ?");
            d.bind(1, org_id).bind(2, cut).step();
            statement h(db_,
                        "INSERT INTO event_horizon(org_id, pruned_upto) VALUES(?1, ?2) "
                        "ON CONFLICT(org_id) DO UPDATE SET pruned_upto = MAX(pruned_upto, ?2)");
            h.bind(1, org_id).bind(2, cut).step();
        }
        commit();
        return id;
    } catch (...) {
        roll_back();
        throw;
    }
}

std::vector<event_record> sqlite_storage::events_after(const std::string& org_id, std::int64_t after_id)
{
    std::vector<event_record> out;
    statement s(
        db_,
        "SELECT id, org_id, type, data FROM events WHERE (?1 = '' OR org_id = ?1) AND id > ?2 ORDER BY id");
    s.bind(1, org_id).bind(2, after_id);
    while (s.step()) out.push_back(event_record{s.integer(0), s.text(1), s.text(2), s.text(3)});
    return out;
}

std::int64_t sqlite_storage::pruned_upto(const std::string& org_id)
{
    statement s(db_, org_id.empty() ? "SELECT COALESCE(MAX(pruned_upto), 0) FROM event_horizon"
                                    : "SELECT pruned_upto FROM event_horizon WHERE org_id = ?");
    if (!org_id.empty()) s.bind(1, org_id);
    return s.step() ? s.integer(0) : 0;
}

std::int64_t sqlite_storage::last_event_id()
{
    statement s(db_, "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'events'");
    return s.step() ? s.integer(0) : 0;
}

// ---- Credentials ---------------------------------------------------------

storage::credential_record sqlite_storage::credential_at(const statement& s)
{
    // Columns: node_id, org_id, expires_ms, session_expires_ms.
    return credential_record{s.text(0), s.text(1), s.integer(2), s.integer(3)};
}

void sqlite_storage::put_credential(credential_kind k, const std::string& hash, const credential_record& r)
{
    statement s(db_,
                "INSERT OR REPLACE INTO credentials(kind, token_hash, node_id, org_id, expires_ms, "
                "session_expires_ms) VALUES(?,?,?,?,?,?)");
    s.bind(1, static_cast<std::int64_t>(k))
        .bind(2, hash)
        .bind(3, r.node_id)
        .bind(4, r.org_id)
        .bind(5, r.expires_ms)
        .bind(6, r.session_expires_ms)
        .step();
}

std::optional<storage::credential_record> sqlite_storage::take_credential(credential_kind k,
                                                                          const std::string& hash,
                                                                          std::int64_t now_ms)
{
    // DELETE ... RETURNING: the row is gone in the same statement that reads
    // it, so two takers can never both succeed.
    statement s(db_,
                "DELETE FROM credentials WHERE kind = ? AND token_hash = ? "
                "RETURNING node_id, org_id, expires_ms, session_expires_ms");
    s.bind(1, static_cast<std::int64_t>(k)).bind(2, hash);
    std::optional<credential_record> out;
    if (s.step()) out = credential_at(s);
    while (s.step()) {}
    if (out && out->expires_ms <= now_ms) return std::nullopt;
    return out;
}

std::optional<storage::credential_record> sqlite_storage::find_credential(credential_kind k,
                                                                          const std::string& hash,
                                                                          std::int64_t now_ms)
{
    statement s(db_,
                "SELECT node_id, org_id, expires_ms, session_expires_ms FROM credentials "
                "WHERE kind = ? AND token_hash = ? AND expires_ms > ?");
    s.bind(1, static_cast<std::int64_t>(k)).bind(2, hash).bind(3, now_ms);
    if (!s.step()) return std::nullopt;
    return credential_at(s);
}

std::size_t sqlite_storage::count_credentials(credential_kind k, const std::string& node_id,
                                              std::int64_t now_ms)
{
    statement s(db_, "SELECT count(*) FROM credentials WHERE kind = ? AND node_id = ? AND expires_ms > ?");
    s.bind(1, static_cast<std::int64_t>(k)).bind(2, node_id).bind(3, now_ms);
    return s.step() ? static_cast<std::size_t>(s.integer(0)) : 0;
}

void sqlite_storage::trim_credentials(credential_kind k, const std::string& node_id, std::size_t keep)
{
    statement s(
        db_,
        "DELETE FROM credentials WHERE kind = ?1 AND node_id = ?2 AND rowid NOT IN "
        "(SELECT rowid FROM credentials WHERE kind = ?1 AND node_id = ?2 ORDER BY rowid DESC LIMIT ?3)");
    s.bind(1, static_cast<std::int64_t>(k)).bind(2, node_id).bind(3, static_cast<std::int64_t>(keep)).step();
}

void sqlite_storage::drop_credentials(credential_kind k, const std::string& node_id)
{
    statement s(db_, "DELETE FROM credentials WHERE kind = ? AND node_id = ?");
    s.bind(1, static_cast<std::int64_t>(k)).bind(2, node_id).step();
}

void sqlite_storage::prune_credentials(std::int64_t now_ms)
{
    statement s(db_, "DELETE FROM credentials WHERE expires_ms <= ?");
    s.bind(1, now_ms).step();
    // An expired code enrolls nobody (enroll checks expires_ms), so it goes
    // too; a used-up one stays until then, as a taken use may be given back.
    statement codes(db_, "DELETE FROM enrollment_codes WHERE expires_ms <= ?");
    codes.bind(1, now_ms).step();
}

void backup_database(const std::filesystem::path& db, const std::filesystem::path& out)
{
    if (!std::filesystem::exists(db)) throw std::runtime_error("no database at " + db.string());
    sqlite3* handle = nullptr;
    // Read-write without CREATE: WAL readers need the shared-memory file;
    // nothing here writes the database.
    if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
        const std::string why = handle ? sqlite3_errmsg(handle) : "out of memory";
        sqlite3_close(handle);
        throw std::runtime_error("cannot open database " + db.string() + ": " + why);
    }
    sqlite3_busy_timeout(handle, 5000);
    const std::unique_ptr<sqlite3, int (*)(sqlite3*)> owned(handle, sqlite3_close);

    // VACUUM INTO fills an empty file: the one publish_whole_file made,
    // 0600 (the copy holds key and token hashes).
    const auto vacuum_into = [handle, &db](int, const std::filesystem::path& tmp) {
        sqlite3_stmt* stmt = nullptr;
        int rc = sqlite3_prepare_v2(handle, "VACUUM INTO ?1", -1, &stmt, nullptr);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(stmt, 1, tmp.c_str(), -1, SQLITE_TRANSIENT);
        if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
        sqlite3_finalize(stmt);
        if (rc != SQLITE_DONE)
            throw std::runtime_error("cannot copy " + db.string() + ": " + sqlite3_errmsg(handle));
    };
    if (!publish_whole_file(out, vacuum_into, if_exists::keep))
        throw std::runtime_error("cannot create " + out.string() + ": " + std::strerror(EEXIST));
}

}  // namespace tether::gateway
