#include "gateway/postgres/pg_schema.hpp"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace tether::gateway::postgres {

namespace {

// The tables of the SQLite backend, in PostgreSQL's types. Events get their
// id from a sequence in the publishing transaction (the backend will take a
// transaction-scoped advisory lock before nextval, so ids commit in order).
constexpr std::array<std::string_view, 3> migrations{{
    R"sql(
CREATE TABLE enrollment_codes(
  code_hash  text PRIMARY KEY,
  org_id     text NOT NULL,
  expires_ms bigint NOT NULL,
  used       boolean NOT NULL DEFAULT false);
CREATE TABLE nodes(
  node_id      text PRIMARY KEY,
  org_id       text NOT NULL,
  node_name    text NOT NULL,
  capabilities text NOT NULL,
  public_key   bytea NOT NULL UNIQUE,
  api_key_hash text NOT NULL,
  revoked      boolean NOT NULL DEFAULT false,
  last_seen_ms bigint NOT NULL DEFAULT 0,
  created_ms   bigint NOT NULL);
CREATE INDEX nodes_by_org ON nodes(org_id, node_id);
CREATE TABLE configs(
  org_id     text NOT NULL,
  updated_at bigint NOT NULL,
  document   text NOT NULL,
  PRIMARY KEY(org_id, updated_at));
CREATE SEQUENCE event_ids;
CREATE TABLE events(
  id     bigint PRIMARY KEY,
  org_id text NOT NULL,
  type   text NOT NULL,
  data   text NOT NULL);
CREATE INDEX events_by_org ON events(org_id, id);
CREATE TABLE event_horizon(
  org_id      text PRIMARY KEY,
  pruned_upto bigint NOT NULL);
CREATE TABLE credentials(
  kind               smallint NOT NULL,
  token_hash         text NOT NULL,
  node_id            text NOT NULL,
  org_id             text NOT NULL,
  expires_ms         bigint NOT NULL,
  session_expires_ms bigint NOT NULL DEFAULT 0,
  issued             bigserial,
  PRIMARY KEY(kind, token_hash));
CREATE INDEX credentials_by_node ON credentials(kind, node_id);
CREATE INDEX credentials_by_expiry ON credentials(expires_ms);
)sql",
    // 2: what heartbeats report (issue 18), as SQLite's migration 3.
    R"sql(
ALTER TABLE nodes ADD COLUMN applied_config_at bigint NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN agent_version text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN applied_changed_ms bigint NOT NULL DEFAULT 0;
)sql",
    // 3: codes that enroll more than one node, as SQLite's migration 4;
    // uses_left alone decides from here on (`used` is no longer written).
    R"sql(
ALTER TABLE enrollment_codes ADD COLUMN uses_left integer NOT NULL DEFAULT 1;
UPDATE enrollment_codes SET uses_left = 0 WHERE used;
)sql",
}};

pg_error refused(std::string message)
{
    return {"TE001", std::move(message)};
}

}  // namespace

std::span<const std::string_view> gateway_migrations() noexcept
{
    return migrations;
}

awaitable<pg_result<int>> migrate(pg_connection& c, std::span<const std::string_view> steps,
                                  std::chrono::milliseconds timeout)
{
    // Parameters are named locals: no braced temporaries inside co_await (GCC 12).
    const std::vector<std::optional<std::string>> lock_key{std::to_string(migration_lock_key)};
    const std::vector<std::optional<std::string>> no_params;
    // Session-level lock: replicas starting together wait here, one at a
    // time, and each finds the work done by the one before.
    auto locked = co_await c.query("SELECT pg_advisory_lock($1::bigint)", lock_key, timeout);
    if (!locked) {
        pg_result<int> bad = locked.error();
        co_return bad;
    }
    pg_result<int> out = 0;
    auto made =
        co_await c.script("CREATE TABLE IF NOT EXISTS schema_version(version integer NOT NULL)", timeout);
    pg_result<pg_rows> current = made;
    if (made) {
        auto read = co_await c.query("SELECT version FROM schema_version", no_params,
                                     timeout);  // no co_await in a ternary
        current = std::move(read);
    }
    if (!current) {
        out = current.error();
    } else {
        int version = current->rows.empty() || !current->rows[0][0] ? 0 : std::stoi(*current->rows[0][0]);
        const int known = static_cast<int>(steps.size());
        if (version > known) {
            out = refused("schema version " + std::to_string(version) + " is newer than this build (" +
                          std::to_string(known) + "); refusing to run an older gateway on it");
        } else {
            for (; version < known; ++version) {
                const std::string step =
                    "BEGIN;\n" + std::string(steps[static_cast<std::size_t>(version)]) +
                    "\nDELETE FROM schema_version;\nINSERT INTO schema_version VALUES (" +
                    std::to_string(version + 1) + ");\nCOMMIT;";
                auto applied = co_await c.script(step, timeout);
                if (!applied) {
                    auto rolled = co_await c.script("ROLLBACK", timeout);
                    (void)rolled;
                    out = pg_error{applied.error().sqlstate, "migration to version " +
                                                                 std::to_string(version + 1) +
                                                                 " failed: " + applied.error().message};
                    break;
                }
            }
            if (out) out = version;
        }
    }
    auto unlocked = co_await c.query("SELECT pg_advisory_unlock($1::bigint)", lock_key, timeout);
    (void)unlocked;  // a closed connection releases it too
    co_return out;
}

}  // namespace tether::gateway::postgres
