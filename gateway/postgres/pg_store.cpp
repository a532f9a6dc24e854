#include "gateway/postgres/pg_store.hpp"

#include "base/run_on.hpp"
#include "gateway/postgres/pg_schema.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <stdexcept>

namespace tether::gateway::postgres {

namespace {

using clock = std::chrono::steady_clock;

std::runtime_error failed(const pg_error& e)
{
    return std::runtime_error("postgres " + e.sqlstate + ": " + e.message);
}

const std::string& text(const pg_rows& r, std::size_t row, std::size_t col)
{
    static const std::string empty;
    if (row >= r.rows.size() || col >= r.rows[row].size() || !r.rows[row][col]) return empty;
    return *r.rows[row][col];
}

bool is_null(const pg_rows& r, std::size_t row, std::size_t col)
{
    return row >= r.rows.size() || col >= r.rows[row].size() || !r.rows[row][col];
}

std::int64_t integer(const pg_rows& r, std::size_t row, std::size_t col)
{
    const auto& t = text(r, row, col);
    return t.empty() ? 0 : std::stoll(t);
}

bool boolean(const pg_rows& r, std::size_t row, std::size_t col)
{
    return text(r, row, col) == "t";
}

std::string hex(std::string_view bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string unhex(std::string_view text)
{
    auto value = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return 0;
    };
    std::string out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2)
        out += static_cast<char>(value(text[i]) * 16 + value(text[i + 1]));
    return out;
}

constexpr const char* node_columns =
    "node_id, org_id, node_name, capabilities, encode(public_key, 'hex'), api_key_hash, revoked, "
    "last_seen_ms, created_ms, applied_config_at, agent_version, applied_changed_ms";

/// node_columns from column `at` of row `i`.
node_record node_at(const pg_rows& r, std::size_t i, std::size_t at = 0)
{
    return node_record{text(r, i, at + 0),        text(r, i, at + 1),
                       text(r, i, at + 2),        caps_from_json(text(r, i, at + 3)),
                       unhex(text(r, i, at + 4)), text(r, i, at + 5),
                       boolean(r, i, at + 6),     integer(r, i, at + 7),
                       integer(r, i, at + 8),     integer(r, i, at + 9),
                       text(r, i, at + 10),       integer(r, i, at + 11)};
}

credential_record credential_at(const pg_rows& r, std::size_t i)
{
    return credential_record{text(r, i, 0), text(r, i, 1), integer(r, i, 2), integer(r, i, 3)};
}

std::string kind_text(credential_kind k)
{
    return std::to_string(static_cast<int>(k));
}

}  // namespace

pg_store::pg_store(asio::any_io_executor ex, store_options opts, uniform01 rand, const log::logger& log)
    : strand_(asio::make_strand(ex)), opts_(std::move(opts)), log_(log), rand_(rand)
{
    pool_ = std::make_unique<pg_pool>(strand_, opts_.pool, std::move(rand), log_);
}

pg_store::~pg_store() = default;

awaitable<pg_rows> pg_store::run_here(std::string sql, params p)
{
    auto r = co_await pool_->query(std::move(sql), std::move(p));
    in_use_ = pool_->in_use();
    open_ = pool_->open();
    if (!r) throw failed(r.error());
    pg_rows out = std::move(*r);
    co_return out;
}

awaitable<pg_rows> pg_store::run(std::string sql, params p)
{
    // The pool belongs to its strand; the caller resumes on its own executor
    // (run_on, not co_spawn: base/run_on.hpp).
    auto out = co_await run_on(strand_, run_here(std::move(sql), std::move(p)));
    co_return out;
}

awaitable<std::vector<pg_rows>> pg_store::run_transaction_here(std::vector<pg_pool::statement> steps)
{
    auto r = co_await pool_->transaction(std::move(steps));
    in_use_ = pool_->in_use();
    open_ = pool_->open();
    if (!r) throw failed(r.error());
    std::vector<pg_rows> out = std::move(*r);
    co_return out;
}

awaitable<std::vector<pg_rows>> pg_store::run_transaction(std::vector<pg_pool::statement> steps)
{
    auto out = co_await run_on(strand_, run_transaction_here(std::move(steps)));
    co_return out;
}

void pg_store::append_event_steps(std::vector<pg_pool::statement>& steps, const std::string& org,
                                  std::string type, std::string data_sql, params data_params,
                                  std::size_t keep)
{
    params p{org, std::move(type)};
    for (auto& d : data_params) p.push_back(std::move(d));
    steps.push_back({insert_event_sql(data_sql), std::move(p)});
    // The history keeps the newest `keep`; event_horizon remembers how far
    // it was cut, so a Last-Event-ID behind it gets a reset.
    params prune{org, std::to_string(keep)};
    steps.push_back(
        {"WITH cut AS (SELECT id FROM events WHERE org_id = $1 ORDER BY id DESC OFFSET $2::int LIMIT 1), "
         "del AS (DELETE FROM events WHERE org_id = $1 AND id <= (SELECT id FROM cut)) "
         "INSERT INTO event_horizon(org_id, pruned_upto) SELECT $1, id FROM cut "
         "ON CONFLICT (org_id) DO UPDATE SET pruned_upto = "
         "GREATEST(event_horizon.pruned_upto, EXCLUDED.pruned_upto)",
         std::move(prune)});
}

awaitable<pg_result<int>> pg_store::open()
{
    pg_connection c(strand_);
    auto connected = co_await c.connect(opts_.pool.conninfo, opts_.pool.connect_timeout);
    if (!connected) {
        pg_result<int> bad = connected.error();
        co_return bad;
    }
    auto version = co_await migrate(c, gateway_migrations(), std::chrono::seconds(60));
    if (!version) co_return version;
    // Streams opened from now on replay from the table; the tail hands on
    // what commits after this point.
    const params none;
    auto newest =
        co_await c.query("SELECT COALESCE(MAX(id), 0) FROM events", none, opts_.pool.statement_timeout);
    if (!newest) {
        pg_result<int> bad = newest.error();
        co_return bad;
    }
    const auto cursor = integer(*newest, 0, 0);
    fed_ = cursor;
    tail_options t;
    t.conninfo = opts_.pool.conninfo;
    t.poll = opts_.poll;
    tail_ = std::make_unique<event_tail>(
        *pool_, t, cursor,
        [this](const std::vector<event_record>& batch) {
            if (!batch.empty()) fed_ = batch.back().id;
            if (sink_) sink_(batch);
        },
        rand_, log_);
    co_return version;
}

awaitable<void> pg_store::run_feed()
{
    if (!tail_) throw std::logic_error("pg_store::run_feed before open");
    co_await run_on(strand_, tail_->run());
}

awaitable<void> pg_store::add_enrollment_code(std::string code_hash, std::string org_id,
                                              std::int64_t expires_ms, std::int64_t uses)
{
    params p{std::move(code_hash), std::move(org_id), std::to_string(expires_ms), std::to_string(uses)};
    co_await run(
        "INSERT INTO enrollment_codes(code_hash, org_id, expires_ms, uses_left) "
        "VALUES ($1, $2, $3::bigint, $4::integer)",
        std::move(p));
}

awaitable<std::int64_t> pg_store::remove_enrollment_codes(std::string code_hash, std::string org_id)
{
    params p{std::move(code_hash), std::move(org_id)};
    const auto r = co_await run(
        "DELETE FROM enrollment_codes WHERE code_hash = $1 OR ($1 = '' AND org_id = $2)", std::move(p));
    co_return r.affected;
}

awaitable<store::enrollment> pg_store::enroll(std::string code_hash, node_record n, std::int64_t now_ms)
{
    // One statement decides, so two replicas enrolling with one code (or
    // one key) cannot both win: the code is consumed only when the key is
    // free, and the columns after the insert say why it was not.
    params p{std::move(code_hash), std::to_string(now_ms),      n.node_id,
             n.node_name,          hex(n.public_key),           caps_to_json(n.capabilities),
             n.api_key_hash,       std::to_string(n.created_ms)};
    enrollment out;
    try {
        const auto r = co_await run(
            "WITH code AS (UPDATE enrollment_codes SET uses_left = uses_left - 1 "
            "  WHERE code_hash = $1 AND uses_left > 0 AND expires_ms > $2::bigint "
            "  AND NOT EXISTS (SELECT 1 FROM nodes WHERE public_key = decode($5, 'hex')) RETURNING org_id), "
            "ins AS (INSERT INTO nodes(node_id, org_id, node_name, capabilities, public_key, api_key_hash, "
            "  created_ms) SELECT $3, org_id, $4, $6, decode($5, 'hex'), $7, $8::bigint FROM code RETURNING "
            "org_id) "
            "SELECT (SELECT org_id FROM ins), "
            "EXISTS (SELECT 1 FROM enrollment_codes WHERE code_hash = $1 AND uses_left > 0 AND expires_ms > "
            "$2::bigint), "
            "(SELECT org_id FROM enrollment_codes WHERE code_hash = $1)",
            std::move(p));
        if (!is_null(r, 0, 0)) {
            out.outcome = enroll_outcome::enrolled;
            out.org_id = text(r, 0, 0);
        } else if (boolean(r, 0, 1)) {
            out.outcome = enroll_outcome::key_taken;  // the code was usable: the key was not
            out.org_id = text(r, 0, 2);
        }
    } catch (const std::runtime_error& e) {
        // Two enrollments with one new key at once: the unique index picks one.
        if (std::string_view(e.what()).find("postgres 23505") != 0) throw;
        out.outcome = enroll_outcome::key_taken;
    }
    co_return out;
}

awaitable<std::optional<login_record>> pg_store::find_login(std::string node_id)
{
    params p{std::move(node_id)};
    const auto r = co_await run("SELECT api_key_hash, revoked FROM nodes WHERE node_id = $1", std::move(p));
    std::optional<login_record> out;
    if (!r.rows.empty()) out = login_record{text(r, 0, 0), boolean(r, 0, 1)};
    co_return out;
}

awaitable<std::optional<node_record>> pg_store::find_node(std::string node_id)
{
    params p{std::move(node_id)};
    const auto r =
        co_await run(std::string("SELECT ") + node_columns + " FROM nodes WHERE node_id = $1", std::move(p));
    std::optional<node_record> out;
    if (!r.rows.empty()) out = node_at(r, 0);
    co_return out;
}

awaitable<bool> pg_store::node_is_live(std::string node_id)
{
    params p{std::move(node_id)};
    const auto r = co_await run("SELECT NOT revoked FROM nodes WHERE node_id = $1", std::move(p));
    const bool out = !r.rows.empty() && boolean(r, 0, 0);
    co_return out;
}

awaitable<live_config> pg_store::record_heartbeat(std::string node_id, std::string org_id,
                                                  std::int64_t now_ms, std::int64_t write_every_ms,
                                                  std::optional<heartbeat_report> report)
{
    // One round trip: liveness, the debounced write (only when last_seen is
    // old enough, so a storm across replicas writes once per interval, or
    // when the report differs from what is stored) and the org's latest
    // config. write_every_ms < 0 reads only. Without a report ($5 NULL) the
    // stored facts stay. A last_seen further ahead of now than
    // clock_skew_allowance_ms is written at once: the wall clock went back
    // (see sqlite_store).
    static_assert(clock_skew_allowance_ms == 1000, "the statement below writes it out");
    params p{std::move(node_id), std::move(org_id), std::to_string(now_ms), std::to_string(write_every_ms)};
    if (report) {
        p.emplace_back(std::to_string(report->applied_config_at));
        p.emplace_back(report->agent_version);
        if (report->capabilities)
            p.emplace_back(caps_to_json(*report->capabilities));
        else
            p.emplace_back(std::nullopt);
    } else {
        p.insert(p.end(), 3, std::nullopt);
    }
    const auto r = co_await run(
        "WITH n AS (SELECT revoked, applied_config_at, agent_version, capabilities FROM nodes "
        "  WHERE node_id = $1), "
        "t AS (UPDATE nodes SET last_seen_ms = $3::bigint, "
        "  applied_changed_ms = CASE WHEN $5::bigint IS NOT NULL AND applied_config_at <> $5::bigint "
        "    THEN $3::bigint ELSE applied_changed_ms END, "
        "  applied_config_at = coalesce($5::bigint, applied_config_at), "
        "  agent_version = coalesce($6::text, agent_version), capabilities = coalesce($7::text, "
        "capabilities) "
        "  WHERE node_id = $1 AND NOT revoked AND $4::bigint >= 0 AND (last_seen_ms > $3::bigint + 1000 "
        "    OR last_seen_ms <= $3::bigint - $4::bigint "
        "    OR ($5::bigint IS NOT NULL AND last_seen_ms <= $3::bigint - least($4::bigint, 1000) "
        "      AND (applied_config_at <> $5::bigint OR agent_version <> $6::text "
        "      OR capabilities <> $7::text))) RETURNING 1) "
        "SELECT (SELECT NOT revoked FROM n), (SELECT count(*) FROM t), c.updated_at, c.document, "
        "  $5::bigint IS NOT NULL AND (SELECT applied_config_at <> $5::bigint OR agent_version <> $6::text "
        "    OR coalesce(capabilities <> $7::text, false) FROM n) "
        "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT updated_at, document FROM configs "
        "  WHERE org_id = $2 ORDER BY updated_at DESC LIMIT 1) AS c ON true",
        std::move(p));
    live_config out;
    out.alive = boolean(r, 0, 0);
    const bool wrote = integer(r, 0, 1) > 0;
    if (wrote) ++node_writes_;
    if (out.alive && !is_null(r, 0, 2)) out.cfg = config_record{integer(r, 0, 2), text(r, 0, 3)};
    out.report_written = wrote && !is_null(r, 0, 4) && boolean(r, 0, 4);
    co_return out;
}

awaitable<std::optional<config_record>> pg_store::latest_config(std::string org_id)
{
    params p{std::move(org_id)};
    const auto r = co_await run(
        "SELECT updated_at, document FROM configs WHERE org_id = $1 "
        "ORDER BY updated_at DESC LIMIT 1",
        std::move(p));
    std::optional<config_record> out;
    if (!r.rows.empty()) out = config_record{integer(r, 0, 0), text(r, 0, 1)};
    co_return out;
}

awaitable<std::vector<node_record>> pg_store::list_nodes(std::string org_id, std::string after_id,
                                                         std::size_t limit)
{
    params p{std::move(org_id), std::move(after_id), std::to_string(limit)};
    const auto r = co_await run(std::string("SELECT ") + node_columns +
                                    " FROM nodes WHERE ($1 = '' OR org_id = $1) AND node_id > $2 "
                                    "ORDER BY node_id LIMIT $3::int",
                                std::move(p));
    std::vector<node_record> out;
    out.reserve(r.rows.size());
    for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(node_at(r, i));
    co_return out;
}

awaitable<rollout_counts> pg_store::rollout(std::string org_id, std::int64_t latest_at, online_span online,
                                            std::string after_id, std::size_t limit)
{
    // Counts and page from one snapshot: they agree with each other.
    params p{std::move(org_id),   std::to_string(online.since_ms), std::to_string(latest_at),
             std::move(after_id), std::to_string(limit),           std::to_string(online.until_ms)};
    const auto r = co_await run(
        "WITH c AS (SELECT "
        "  count(*) FILTER (WHERE NOT revoked AND last_seen_ms BETWEEN $2::bigint AND $6::bigint "
        "    AND applied_config_at >= $3::bigint) AS applied, "
        "  count(*) FILTER (WHERE NOT revoked AND last_seen_ms BETWEEN $2::bigint AND $6::bigint "
        "    AND applied_config_at < $3::bigint) AS behind, "
        "  count(*) FILTER (WHERE NOT revoked AND last_seen_ms NOT BETWEEN $2::bigint AND $6::bigint) "
        "    AS offline, "
        "  count(*) FILTER (WHERE revoked) AS revoked, "
        "  COALESCE(max(applied_changed_ms) FILTER (WHERE NOT revoked AND applied_config_at >= $3::bigint), "
        "0) AS caught_up "
        "  FROM nodes WHERE org_id = $1) "
        "SELECT c.applied, c.behind, c.offline, c.revoked, c.caught_up, b.* "
        "FROM c LEFT JOIN LATERAL (SELECT " +
            std::string(node_columns) +
            " FROM nodes WHERE org_id = $1 AND NOT revoked "
            "  AND last_seen_ms BETWEEN $2::bigint AND $6::bigint AND applied_config_at < $3::bigint "
            "  AND node_id > $4 "
            "  ORDER BY node_id LIMIT $5::int) AS b ON true ORDER BY b.node_id",
        std::move(p));
    rollout_counts out;
    if (r.rows.empty()) co_return out;
    out.applied = static_cast<std::size_t>(integer(r, 0, 0));
    out.behind = static_cast<std::size_t>(integer(r, 0, 1));
    out.offline = static_cast<std::size_t>(integer(r, 0, 2));
    out.revoked = static_cast<std::size_t>(integer(r, 0, 3));
    out.last_caught_up_ms = integer(r, 0, 4);
    for (std::size_t i = 0; i < r.rows.size(); ++i)
        if (!is_null(r, i, 5)) out.behind_page.push_back(node_at(r, i, 5));
    co_return out;
}

awaitable<std::vector<std::string>> pg_store::node_orgs(std::size_t limit)
{
    params p{std::to_string(limit)};
    const auto r =
        co_await run("SELECT DISTINCT org_id FROM nodes ORDER BY org_id LIMIT $1::int", std::move(p));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(text(r, i, 0));
    co_return out;
}

awaitable<std::int64_t> pg_store::append_event(std::string org_id, std::string type, std::string data,
                                               std::size_t keep)
{
    // Under the publish lock, like every event: ids commit in order.
    std::vector<pg_pool::statement> steps;
    params lock{std::to_string(publish_lock_key)};
    steps.push_back({"SELECT pg_advisory_xact_lock($1::bigint)", std::move(lock)});
    params data_params{std::move(data)};
    append_event_steps(steps, org_id, std::move(type), "$3", std::move(data_params), keep);
    const auto done = co_await run_transaction(std::move(steps));
    const std::int64_t id = integer(done[1], 0, 0);
    co_return id;
}

awaitable<std::optional<event_record>> pg_store::revoke_node(std::string node_id, std::size_t keep)
{
    std::optional<event_record> out;
    const auto node = co_await find_node(node_id);  // a node's org never changes
    if (!node) co_return out;
    std::vector<pg_pool::statement> steps;
    params lock{std::to_string(publish_lock_key)};
    steps.push_back({"SELECT pg_advisory_xact_lock($1::bigint)", std::move(lock)});
    params id{node_id};
    steps.push_back({"UPDATE nodes SET revoked = true WHERE node_id = $1", id});
    steps.push_back({"DELETE FROM credentials WHERE node_id = $1 AND kind IN (" +
                         kind_text(credential_kind::challenge) + ", " +
                         kind_text(credential_kind::stream_token) + ")",
                     id});
    const boost::json::object data{{"nodeId", node_id}};
    params data_params{boost::json::serialize(data)};
    append_event_steps(steps, node->org_id, "node-revoked", "$3", data_params, keep);
    const auto done = co_await run_transaction(std::move(steps));
    out = event_record{integer(done[3], 0, 0), node->org_id, "node-revoked", boost::json::serialize(data)};
    co_return out;
}

awaitable<std::int64_t> pg_store::forget_nodes(std::string org_id, std::int64_t seen_before_ms)
{
    // One statement: every data-modifying part of it runs, or none.
    params p{std::move(org_id), std::to_string(seen_before_ms)};
    const auto r = co_await run(
        "WITH gone AS (DELETE FROM nodes WHERE org_id = $1 AND GREATEST(last_seen_ms, created_ms) < "
        "$2::bigint "
        "RETURNING node_id), "
        "creds AS (DELETE FROM credentials WHERE node_id IN (SELECT node_id FROM gone)) "
        "SELECT count(*) FROM gone",
        std::move(p));
    co_return integer(r, 0, 0);
}

awaitable<publish_outcome> pg_store::publish_config(std::string org_id, std::string document,
                                                    std::int64_t now_ms,
                                                    std::optional<std::int64_t> if_latest, std::size_t keep)
{
    // Under the publish lock, so versions and event ids both commit in order.
    std::vector<pg_pool::statement> steps;
    params lock{std::to_string(publish_lock_key)};
    steps.push_back({"SELECT pg_advisory_xact_lock($1::bigint)", std::move(lock)});
    if (if_latest) {
        // One row (an aggregate without GROUP BY) when the latest is still
        // the one expected, none otherwise.
        params expected{org_id, std::to_string(*if_latest)};
        steps.push_back(
            {"SELECT 1 FROM configs WHERE org_id = $1 HAVING COALESCE(MAX(updated_at), 0) = $2::bigint",
             std::move(expected), true});
    }
    const std::size_t insert_step = steps.size();
    params cfg{org_id, std::to_string(now_ms), std::move(document)};
    steps.push_back(
        {"INSERT INTO configs(org_id, updated_at, document) "
         "SELECT $1, GREATEST($2::bigint, COALESCE(MAX(updated_at), 0) + 1), $3 FROM configs "
         "WHERE org_id = $1 RETURNING updated_at",
         std::move(cfg)});
    // The event's data is what the SQLite backend writes: {"configUpdatedAt":N}.
    append_event_steps(
        steps, org_id, "config-updated",
        "'{\"configUpdatedAt\":' || (SELECT MAX(updated_at) FROM configs WHERE org_id = $1) || '}'", {},
        keep);
    params older{org_id, std::to_string(configs_kept_per_org - 1)};
    steps.push_back(
        {"DELETE FROM configs WHERE org_id = $1 AND updated_at < (SELECT updated_at FROM configs "
         "WHERE org_id = $1 ORDER BY updated_at DESC OFFSET $2::int LIMIT 1)",
         std::move(older)});
    const auto done = co_await run_transaction(std::move(steps));
    publish_outcome out;
    if (done.size() <= insert_step) {
        // Read after the refusal, for the message: another may land between.
        const auto latest = co_await latest_config(std::move(org_id));
        out = {false, latest ? latest->updated_at : 0};
        co_return out;
    }
    out = {true, integer(done[insert_step], 0, 0)};
    co_return out;
}

awaitable<event_history> pg_store::replay(std::string org_id, std::optional<std::int64_t> after_id,
                                          std::size_t limit)
{
    // One statement, one snapshot: the horizon, the newest id and the events
    // agree with each other.
    params p{std::move(org_id), std::to_string(after_id.value_or(-1)), std::to_string(limit + 1)};
    const auto r = co_await run(
        "WITH h AS (SELECT COALESCE(MAX(pruned_upto), 0) AS pruned FROM event_horizon "
        "  WHERE ($1 = '' OR org_id = $1)), "
        "s AS (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS newest FROM event_ids), "
        "g AS (SELECT ($2::bigint < 0 OR $2::bigint < h.pruned OR $2::bigint > s.newest) AS reset FROM h, s) "
        "SELECT g.reset, e.id, e.org_id, e.type, e.data FROM g LEFT JOIN LATERAL ("
        "  SELECT id, org_id, type, data FROM events WHERE ($1 = '' OR org_id = $1) "
        "  AND id > CASE WHEN g.reset THEN 0 ELSE $2::bigint END ORDER BY id DESC LIMIT $3::int) AS e ON "
        "true "
        "ORDER BY e.id",
        std::move(p));
    event_history out;
    out.reset = !r.rows.empty() && boolean(r, 0, 0);
    for (std::size_t i = 0; i < r.rows.size(); ++i)
        if (!is_null(r, i, 1))
            out.events.push_back(event_record{integer(r, i, 1), text(r, i, 2), text(r, i, 3), text(r, i, 4)});
    if (out.events.size() > limit) {
        out.reset = true;
        out.events.erase(out.events.begin(), out.events.end() - static_cast<std::ptrdiff_t>(limit));
    }
    co_return out;
}

awaitable<void> pg_store::put_credential(credential_kind k, std::string hash, credential_record r,
                                         std::size_t keep)
{
    std::vector<pg_pool::statement> steps;
    params put{kind_text(k),
               std::move(hash),
               r.node_id,
               r.org_id,
               std::to_string(r.expires_ms),
               std::to_string(r.session_expires_ms)};
    steps.push_back(
        {"INSERT INTO credentials(kind, token_hash, node_id, org_id, expires_ms, session_expires_ms) "
         "VALUES ($1::smallint, $2, $3, $4, $5::bigint, $6::bigint) "
         "ON CONFLICT (kind, token_hash) DO UPDATE SET node_id = EXCLUDED.node_id, "
         "org_id = EXCLUDED.org_id, expires_ms = EXCLUDED.expires_ms, "
         "session_expires_ms = EXCLUDED.session_expires_ms",
         std::move(put)});
    if (keep == 0) {
        co_await run(std::move(steps[0].sql), std::move(steps[0].params));
        co_return;
    }
    params trim{kind_text(k), r.node_id, std::to_string(keep)};
    steps.push_back(
        {"DELETE FROM credentials WHERE kind = $1::smallint AND node_id = $2 AND issued NOT IN "
         "(SELECT issued FROM credentials WHERE kind = $1::smallint AND node_id = $2 "
         "ORDER BY issued DESC LIMIT $3::int)",
         std::move(trim)});
    co_await run_transaction(std::move(steps));
}

awaitable<bool> pg_store::put_credential_capped(credential_kind k, std::string hash, credential_record r,
                                                std::size_t max_live, std::int64_t now_ms)
{
    // Count and insert in one statement: replicas issuing at once can
    // exceed the cap only by the few that race, never by a storm.
    params p{kind_text(k),
             std::move(hash),
             r.node_id,
             r.org_id,
             std::to_string(r.expires_ms),
             std::to_string(r.session_expires_ms),
             std::to_string(now_ms),
             std::to_string(max_live)};
    const auto done = co_await run(
        "INSERT INTO credentials(kind, token_hash, node_id, org_id, expires_ms, session_expires_ms) "
        "SELECT $1::smallint, $2, $3, $4, $5::bigint, $6::bigint WHERE (SELECT count(*) FROM credentials "
        "WHERE kind = $1::smallint AND node_id = $3 AND expires_ms > $7::bigint) < $8::bigint",
        std::move(p));
    const bool out = done.affected == 1;
    co_return out;
}

awaitable<std::optional<credential_record>> pg_store::take_credential(credential_kind k, std::string hash,
                                                                      std::int64_t now_ms)
{
    // DELETE ... RETURNING: one replica's take removes it for all.
    params p{kind_text(k), std::move(hash)};
    const auto r = co_await run(
        "DELETE FROM credentials WHERE kind = $1::smallint AND token_hash = $2 "
        "RETURNING node_id, org_id, expires_ms, session_expires_ms",
        std::move(p));
    std::optional<credential_record> out;
    if (!r.rows.empty() && integer(r, 0, 2) > now_ms) out = credential_at(r, 0);
    co_return out;
}

awaitable<std::optional<credential_record>> pg_store::find_credential(credential_kind k, std::string hash,
                                                                      std::int64_t now_ms)
{
    params p{kind_text(k), std::move(hash), std::to_string(now_ms)};
    const auto r = co_await run(
        "SELECT node_id, org_id, expires_ms, session_expires_ms FROM credentials "
        "WHERE kind = $1::smallint AND token_hash = $2 AND expires_ms > $3::bigint",
        std::move(p));
    std::optional<credential_record> out;
    if (!r.rows.empty()) out = credential_at(r, 0);
    co_return out;
}

awaitable<void> pg_store::prune_credentials(std::int64_t now_ms)
{
    // In batches: one DELETE of a large backlog could outlast the
    // statement_timeout and be cancelled every round, never catching up.
    // A round takes at most prune_batches of them; the next goes on.
    // Expired enrollment codes enroll nobody and go the same way; a used-up
    // one stays until it expires, as a taken use may be given back.
    const std::vector<const char*> deletes{
        "DELETE FROM credentials WHERE (kind, token_hash) IN (SELECT kind, token_hash FROM credentials "
        "WHERE expires_ms <= $1::bigint LIMIT $2::int)",
        "DELETE FROM enrollment_codes WHERE code_hash IN (SELECT code_hash FROM enrollment_codes "
        "WHERE expires_ms <= $1::bigint LIMIT $2::int)"};
    for (const char* sql : deletes) {
        for (int batch = 0; batch < prune_batches; ++batch) {
            params p{std::to_string(now_ms), std::to_string(prune_batch_rows)};
            const auto r = co_await run(sql, std::move(p));
            if (r.affected < prune_batch_rows) break;
        }
    }
}

awaitable<void> pg_store::ping()
{
    params none;
    co_await run("SELECT 1", std::move(none));
}

store_status pg_store::status() const
{
    store_status s;
    s.pool_in_use = in_use_.load();
    s.pool_open = open_.load();
    s.feed_cursor = fed_.load();
    if (!tail_) {
        s.listening = s.feed_ready = false;
        s.tail_lag_ms = INT64_MAX;
        return s;
    }
    s.listening = tail_->listening();
    const auto caught = tail_->caught_up_at();
    s.tail_lag_ms =
        caught.time_since_epoch().count() == 0
            ? INT64_MAX
            : std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - caught).count();
    s.feed_ready = s.listening && s.tail_lag_ms <= opts_.max_tail_lag.count();
    return s;
}

}  // namespace tether::gateway::postgres
