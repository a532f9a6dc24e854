// The event-loop libpq connection against a real, throwaway PostgreSQL.
#include "gateway/postgres/pg_connection.hpp"

#include "gateway/postgres/pg_events.hpp"
#include "gateway/postgres/pg_pool.hpp"
#include "gateway/postgres/pg_schema.hpp"
#include "support/log_capture.hpp"
#include "support/postgres_server.hpp"
#include "support/run_for.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <list>
#include <thread>

namespace asio = boost::asio;
namespace pg = tether::gateway::postgres;
using namespace std::chrono_literals;
using tether::test::run_for;

namespace {

/// A database of its own on the executable's shared cluster; or, for the
/// cases that stop the server, a cluster of its own.
struct database {
    explicit database(bool own_cluster = false)
        : own(own_cluster ? std::make_unique<tether::test::postgres_server>() : nullptr),
          conninfo(server().conninfo(own ? "postgres" : server().new_database()))
    {
    }
    tether::test::postgres_server& server() { return own ? *own : tether::test::shared_postgres(); }
    std::unique_ptr<tether::test::postgres_server> own;
    std::string conninfo;
};

struct rig {
    explicit rig(bool own_cluster = false) : db(own_cluster) {}
    database db;
    asio::io_context ioc;

    std::unique_ptr<pg::pg_connection> connect()
    {
        auto c = std::make_unique<pg::pg_connection>(ioc.get_executor());
        const auto ok = run_for(ioc, c->connect(db.conninfo, 5s));
        BOOST_TEST_REQUIRE(ok.has_value(), ok.error().sqlstate + " " + ok.error().message);
        BOOST_TEST_REQUIRE(c->connected());
        return c;
    }
    pg::pg_result<pg::pg_rows> query(pg::pg_connection& c, std::string sql,
                                     std::vector<std::optional<std::string>> params = {},
                                     std::chrono::milliseconds timeout = 5s)
    {
        return run_for(ioc, c.query(std::move(sql), std::move(params), timeout));
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(pg_connection_suite)

BOOST_AUTO_TEST_CASE(statements_with_parameters_round_trip)
{
    rig r;
    auto c = r.connect();
    BOOST_TEST_REQUIRE(r.query(*c, "CREATE TABLE t(id bigint PRIMARY KEY, name text)").has_value());
    const auto ins = r.query(*c, "INSERT INTO t VALUES($1, $2), ($3, $4)", {"1", "one", "2", std::nullopt});
    BOOST_TEST_REQUIRE(ins.has_value(), ins.error().message);
    BOOST_TEST(ins->affected == 2);
    const auto sel = r.query(*c, "SELECT id, name FROM t WHERE id >= $1 ORDER BY id", {"1"});
    BOOST_TEST_REQUIRE(sel.has_value(), sel.error().message);
    BOOST_TEST_REQUIRE(sel->rows.size() == 2u);
    BOOST_TEST((sel->columns == std::vector<std::string>{"id", "name"}));
    BOOST_TEST(*sel->rows[0][1] == "one");
    BOOST_TEST(!sel->rows[1][1].has_value());  // NULL stays NULL
    // A parameter is data, never SQL.
    const auto odd = r.query(*c, "SELECT $1::text", {"'; DROP TABLE t; --"});
    BOOST_TEST_REQUIRE(odd.has_value());
    BOOST_TEST(*odd->rows[0][0] == "'; DROP TABLE t; --");
    BOOST_TEST(*r.query(*c, "SELECT count(*) FROM t")->rows[0][0] == "2");
}

BOOST_AUTO_TEST_CASE(statements_with_parameters_are_prepared_once_per_connection)
{
    rig r;
    auto c = r.connect();
    const auto prepared = [&] {
        const auto n = r.query(*c, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'tether_%'");
        BOOST_TEST_REQUIRE(n.has_value(), n.error().message);
        return *n->rows[0][0];
    };
    BOOST_TEST(prepared() == "0");
    for (int i = 0; i < 5; ++i) {
        const auto v = r.query(*c, "SELECT $1::int + 1", {std::to_string(i)});
        BOOST_TEST_REQUIRE(v.has_value(), v.error().message);
        BOOST_TEST(*v->rows[0][0] == std::to_string(i + 1));
    }
    BOOST_TEST(prepared() == "1");  // five executions, one statement
    // One that does not parse is an error each time and is not kept.
    for (int i = 0; i < 2; ++i) BOOST_TEST(r.query(*c, "SELEC $1", {"1"}).error().sqlstate == "42601");
    BOOST_TEST(r.query(*c, "SELECT $1::text", {"x"}).has_value());
    BOOST_TEST(prepared() == "2");
}

BOOST_AUTO_TEST_CASE(server_errors_carry_the_sqlstate_and_leave_the_connection_usable)
{
    rig r;
    auto c = r.connect();
    const auto bad = r.query(*c, "SELEC 1");
    BOOST_TEST_REQUIRE(!bad.has_value());
    BOOST_TEST(bad.error().sqlstate == "42601");  // syntax_error
    BOOST_TEST(c->connected());
    const auto dup = r.query(*c, "SELECT 1/0");
    BOOST_TEST_REQUIRE(!dup.has_value());
    BOOST_TEST(dup.error().sqlstate == "22012");  // division_by_zero
    BOOST_TEST(r.query(*c, "SELECT 1").has_value());
}

BOOST_AUTO_TEST_CASE(notifications_arrive_on_the_listening_connection)
{
    rig r;
    auto listener = r.connect();
    auto sender = r.connect();
    BOOST_TEST_REQUIRE(r.query(*listener, "LISTEN tether_events").has_value());
    const auto none = run_for(r.ioc, listener->next_notification(100ms));
    BOOST_TEST_REQUIRE(none.has_value());
    BOOST_TEST(!none->has_value());
    BOOST_TEST_REQUIRE(r.query(*sender, "SELECT pg_notify('tether_events', $1)", {"42"}).has_value());
    const auto got = run_for(r.ioc, listener->next_notification(5s));
    BOOST_TEST_REQUIRE(got.has_value(), got.error().message);
    BOOST_TEST_REQUIRE(got->has_value());
    BOOST_TEST((*got)->channel == "tether_events");
    BOOST_TEST((*got)->payload == "42");
}

BOOST_AUTO_TEST_CASE(a_flood_of_notifications_keeps_only_the_newest)
{
    rig r;
    auto listener = r.connect();
    auto sender = r.connect();
    BOOST_TEST_REQUIRE(r.query(*listener, "LISTEN flood").has_value());
    const auto total = pg::pg_connection::max_pending_notifications + 76;
    BOOST_TEST_REQUIRE(r.query(*sender,
                               "SELECT count(pg_notify('flood', g::text)) FROM generate_series(1, $1::int) g",
                               {std::to_string(total)})
                           .has_value());
    tether::test::pump_for(r.ioc, 500ms);  // delivered to the listener's socket by now
    // A statement on the listener reads everything before its answer: the
    // whole flood arrives at once, and only the newest are kept.
    BOOST_TEST_REQUIRE(r.query(*listener, "SELECT 1").has_value());
    const auto first = run_for(r.ioc, listener->next_notification(1s));
    BOOST_TEST_REQUIRE(first.has_value());
    BOOST_TEST_REQUIRE(first->has_value());
    BOOST_TEST((*first)->payload == "77");
}

BOOST_AUTO_TEST_CASE(a_statement_past_its_timeout_fails_fast_and_closes_the_connection)
{
    rig r;
    auto c = r.connect();
    const auto started = std::chrono::steady_clock::now();
    const auto slow = r.query(*c, "SELECT pg_sleep(5)", {}, 200ms);
    BOOST_TEST_REQUIRE(!slow.has_value());
    BOOST_TEST(slow.error().sqlstate == "57014");
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
    BOOST_TEST(!c->connected());
    BOOST_TEST(r.query(*c, "SELECT 1").error().sqlstate == "08003");
    BOOST_TEST(r.connect()->connected());  // the server itself is fine
}

BOOST_AUTO_TEST_CASE(no_server_and_a_server_gone_are_errors_not_hangs)
{
    rig r(true);
    pg::pg_connection nowhere(r.ioc.get_executor());
    const auto refused = run_for(r.ioc, nowhere.connect("host=/nonexistent-tether user=postgres", 5s));
    BOOST_TEST_REQUIRE(!refused.has_value());
    BOOST_TEST(refused.error().sqlstate == "08000");
    BOOST_TEST(!refused.error().message.empty());

    auto c = r.connect();
    r.db.server().stop();
    const auto started = std::chrono::steady_clock::now();
    const auto gone = r.query(*c, "SELECT 1", {}, 5s);
    BOOST_TEST_REQUIRE(!gone.has_value());
    BOOST_TEST((std::chrono::steady_clock::now() - started < 3s));
    BOOST_TEST(!c->connected());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_schema_suite)

BOOST_AUTO_TEST_CASE(replicas_migrating_together_apply_each_step_once)
{
    rig r;
    // Three "replicas" start at once, each on its own connection.
    std::vector<std::unique_ptr<pg::pg_connection>> conns;
    for (int i = 0; i < 3; ++i) conns.push_back(r.connect());
    std::vector<std::optional<pg::pg_result<int>>> results(3);
    int done = 0;
    for (int i = 0; i < 3; ++i)
        asio::co_spawn(
            r.ioc,
            [&, i]() -> tether::awaitable<void> {
                auto v =
                    co_await pg::migrate(*conns[static_cast<std::size_t>(i)], pg::gateway_migrations(), 10s);
                results[static_cast<std::size_t>(i)] = std::move(v);
                ++done;
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        r.ioc, [&] { return done == 3; }, 20s));
    const int latest = static_cast<int>(pg::gateway_migrations().size());
    for (const auto& res : results) {
        BOOST_TEST_REQUIRE(res->has_value(), res->error().sqlstate + " " + res->error().message);
        BOOST_TEST(**res == latest);
    }
    auto c = r.connect();
    BOOST_TEST(*r.query(*c, "SELECT count(*) FROM schema_version")->rows[0][0] == "1");
    BOOST_TEST(r.query(*c, "SELECT count(*) FROM credentials").has_value());
    // Again: nothing to do.
    const auto again = run_for(r.ioc, pg::migrate(*c, pg::gateway_migrations(), 10s));
    BOOST_TEST_REQUIRE(again.has_value());
    BOOST_TEST(*again == latest);
}

BOOST_AUTO_TEST_CASE(a_schema_newer_than_the_build_is_refused_and_a_failed_step_rolls_back)
{
    rig r;
    auto c = r.connect();
    BOOST_TEST_REQUIRE(run_for(r.ioc, pg::migrate(*c, pg::gateway_migrations(), 10s)).has_value());
    BOOST_TEST_REQUIRE(r.query(*c, "UPDATE schema_version SET version = 99").has_value());
    const auto newer = run_for(r.ioc, pg::migrate(*c, pg::gateway_migrations(), 10s));
    BOOST_TEST_REQUIRE(!newer.has_value());
    BOOST_TEST(newer.error().sqlstate == "TE001");
    BOOST_TEST(newer.error().message.find("newer than this build") != std::string::npos,
               newer.error().message);

    // A broken step leaves neither its tables nor a new version behind.
    auto fresh = r.connect();
    BOOST_TEST_REQUIRE(r.query(*fresh, "UPDATE schema_version SET version = 0").has_value());
    BOOST_TEST_REQUIRE(r.query(*fresh, "DROP TABLE credentials").has_value());
    const std::array<std::string_view, 1> broken{{"CREATE TABLE half_done(x int); SELEC 1;"}};
    const auto failed = run_for(r.ioc, pg::migrate(*fresh, broken, 10s));
    BOOST_TEST_REQUIRE(!failed.has_value());
    BOOST_TEST(failed.error().sqlstate == "42601");
    BOOST_TEST(*r.query(*fresh, "SELECT version FROM schema_version")->rows[0][0] == "0");
    BOOST_TEST(*r.query(*fresh, "SELECT to_regclass('half_done') IS NULL")->rows[0][0] == "t");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_pool_suite)

namespace {

struct pool_rig {
    database db;
    asio::io_context ioc;
    tether::test::log_capture logs;
    pg::pg_pool pool;

    explicit pool_rig(std::size_t size = 3, bool own_cluster = false,
                      std::chrono::milliseconds statement_timeout = 5s)
        : db(own_cluster),
          pool(
              ioc.get_executor(), options(size, statement_timeout), [] { return 0.5; }, logs.logger())
    {
    }
    pg::pool_options options(std::size_t size, std::chrono::milliseconds statement_timeout) const
    {
        pg::pool_options o;
        o.conninfo = db.conninfo;
        o.size = size;
        o.statement_timeout = statement_timeout;
        o.connect_timeout = 5s;
        o.reconnect = {100ms, 400ms};
        return o;
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_idle_connection_the_server_ended_is_remade_without_a_failure)
{
    pool_rig r(1);
    BOOST_TEST_REQUIRE(run_for(r.ioc, r.pool.query("SELECT 1", {})).has_value());
    // What a database restart does to idle pooled connections.
    rig admin;
    admin.db.conninfo = r.db.conninfo;
    auto c = admin.connect();
    const auto ended = admin.query(*c,
                                   "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    BOOST_TEST_REQUIRE(ended.has_value(), ended.error().message);
    BOOST_TEST(*ended->rows[0][0] == "1");
    std::this_thread::sleep_for(100ms);  // the goodbye reaches the idle socket
    const auto next = run_for(r.ioc, r.pool.query("SELECT 2", {}));
    BOOST_TEST(next.has_value(), (next ? "" : next.error().sqlstate + " " + next.error().message));
}

BOOST_AUTO_TEST_CASE(many_statements_share_a_few_connections)
{
    pool_rig r(3);
    int ok = 0, done = 0;
    std::size_t most = 0;
    for (int i = 0; i < 20; ++i)
        asio::co_spawn(
            r.ioc,
            [&r, &ok, &done, &most, i]() -> tether::awaitable<void> {
                std::vector<std::optional<std::string>> params{std::to_string(i)};
                auto res = co_await r.pool.query("SELECT $1::int + 0 FROM pg_sleep(0.05)", std::move(params));
                most = std::max(most, r.pool.in_use());
                if (res && *res->rows[0][0] == std::to_string(i)) ++ok;
                ++done;
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        r.ioc, [&] { return done == 20; }, 20s));
    BOOST_TEST(ok == 20);
    BOOST_TEST(most <= 3u);
    BOOST_TEST(r.pool.open() == 3u);
    BOOST_TEST(r.pool.in_use() == 0u);
}

BOOST_AUTO_TEST_CASE(a_server_that_refuses_each_new_connection_setup_is_not_stormed)
{
    // The connection is made, then the SET that bounds its statements is
    // refused (here: a statement_timeout above PostgreSQL's INT_MAX ms,
    // which the command line no longer lets through; a server in trouble
    // refuses it some other way). Each caller used to make a connection of
    // its own at once: a busy gateway opened hundreds a second.
    pool_rig r(2, false, std::chrono::hours(24 * 25));
    rig admin;
    admin.db.conninfo = r.db.conninfo;
    auto c = admin.connect();
    const auto sessions = [&] {
        // Counted when each backend ends; a fresh snapshot per read.
        (void)admin.query(*c, "SELECT pg_stat_clear_snapshot()");
        const auto n =
            admin.query(*c, "SELECT sessions FROM pg_stat_database WHERE datname = current_database()");
        BOOST_TEST_REQUIRE(n.has_value(), n.error().message);
        return std::stol(*n->rows[0][0]);
    };
    const auto before = sessions();

    const auto first = run_for(r.ioc, r.pool.query("SELECT 1", {}));
    BOOST_TEST_REQUIRE(!first.has_value());
    BOOST_TEST(first.error().sqlstate == "22023", first.error().sqlstate + " " + first.error().message);
    const auto second = run_for(r.ioc, r.pool.query("SELECT 1", {}));
    BOOST_TEST_REQUIRE(!second.has_value());
    BOOST_TEST(second.error().sqlstate == "08000", "tried again at once: " << second.error().message);

    int calls = 0;
    const auto until = std::chrono::steady_clock::now() + 1500ms;
    while (std::chrono::steady_clock::now() < until) {
        BOOST_TEST_REQUIRE(!run_for(r.ioc, r.pool.query("SELECT 1", {})).has_value());
        ++calls;
        std::this_thread::sleep_for(2ms);
    }
    std::this_thread::sleep_for(300ms);  // the last backends' stats are written as they end
    const auto made = sessions() - before;
    // Backoff with full jitter, the fake's 0.5: 50, 100, then 200 ms apart,
    // about nine in 1.5 s (and the admin's own session), against one per call.
    BOOST_TEST_MESSAGE(made << " connections for " << calls << " calls");
    BOOST_TEST(calls >= 20);
    BOOST_TEST(made >= 3, made << " connections: the pool gave up trying");
    BOOST_TEST(made <= 15, made << " connections for " << calls << " calls");
    const auto failed = r.logs.events("postgres.connect_failed");
    BOOST_TEST(!failed.empty());
    for (const auto& e : failed) BOOST_TEST(e.contains("retry_in_ms"), e);
}

BOOST_AUTO_TEST_CASE(an_outage_fails_fast_and_the_pool_comes_back_by_itself)
{
    pool_rig r(2, true);
    const auto one = [&r] {
        return run_for(r.ioc, r.pool.query("SELECT 1", {}));
    };
    BOOST_TEST_REQUIRE(one().has_value());
    r.db.server().stop();
    const auto started = std::chrono::steady_clock::now();
    BOOST_TEST(!one().has_value());  // the open connection broke
    BOOST_TEST(!one().has_value());  // a new one is refused
    const auto refused = one();      // within the backoff: refused without trying
    BOOST_TEST_REQUIRE(!refused.has_value());
    BOOST_TEST(refused.error().sqlstate == "08000");
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
    BOOST_TEST(r.logs.has("postgres.connect_failed"));
    r.db.server().start();
    BOOST_TEST(tether::test::poll_until(
        r.ioc,
        [&] {
            auto res = one();
            return res.has_value();
        },
        10s));
    BOOST_TEST(r.logs.has("postgres.connected"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_events_suite)

namespace {

struct replica {
    replica(asio::io_context& ioc, const std::string& conninfo, tether::test::log_capture& logs)
        : pool(
              ioc.get_executor(), options(conninfo), [] { return 0.5; }, logs.logger()),
          tail(
              pool, {conninfo, 500ms, 7, {50ms, 200ms}}, 0,
              [this](const std::vector<tether::gateway::event_record>& b) {
                  for (const auto& e : b) seen.push_back(e.id);
              },
              [] { return 0.5; }, logs.logger())
    {
    }
    static pg::pool_options options(const std::string& conninfo)
    {
        pg::pool_options o;
        o.conninfo = conninfo;
        o.size = 2;
        return o;
    }
    pg::pg_pool pool;
    pg::event_tail tail;
    std::vector<std::int64_t> seen;
    asio::cancellation_signal stop;
    bool ended = false;
};

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_publishes_reach_every_replica_in_id_order)
{
    database db;
    asio::io_context ioc;
    tether::test::log_capture logs;
    {
        pg::pg_connection c(ioc.get_executor());
        BOOST_TEST_REQUIRE(run_for(ioc, c.connect(db.conninfo, 5s)).has_value());
        BOOST_TEST_REQUIRE(run_for(ioc, pg::migrate(c, pg::gateway_migrations(), 10s)).has_value());
    }
    std::list<replica> replicas;
    for (int i = 0; i < 3; ++i) replicas.emplace_back(ioc, db.conninfo, logs);
    const auto every_replica = [&replicas](const std::function<bool(replica&)>& p) {
        return [&replicas, p] {
            return std::all_of(replicas.begin(), replicas.end(), p);
        };
    };
    for (auto& r : replicas)
        asio::co_spawn(
            ioc, r.tail.run(),
            asio::bind_cancellation_slot(r.stop.slot(), [&r](std::exception_ptr) { r.ended = true; }));
    BOOST_TEST_REQUIRE(
        tether::test::poll_until(ioc, every_replica([](replica& r) { return r.tail.listening(); }), 10s));
    // Every replica publishes 40 events at once, 4 coroutines each.
    std::vector<std::int64_t> published;
    int failures = 0, done = 0;
    for (auto& r : replicas)
        for (int w = 0; w < 4; ++w)
            asio::co_spawn(
                ioc,
                [&r, &published, &failures, &done]() -> tether::awaitable<void> {
                    for (int k = 0; k < 10; ++k) {
                        auto id = co_await pg::publish_event(r.pool, "acme", "config-updated", "{}");
                        if (id)
                            published.push_back(*id);
                        else
                            ++failures;
                    }
                    ++done;
                },
                [](std::exception_ptr e) {
                    if (e) std::rethrow_exception(e);
                });
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        ioc, [&] { return done == 12; }, 30s));
    BOOST_TEST(failures == 0);
    BOOST_TEST_REQUIRE(published.size() == 120u);
    std::sort(published.begin(), published.end());
    BOOST_TEST_REQUIRE(
        tether::test::poll_until(ioc, every_replica([](replica& r) { return r.seen.size() >= 120; }), 10s));
    for (auto& r : replicas) {
        BOOST_TEST(std::is_sorted(r.seen.begin(), r.seen.end()));
        BOOST_TEST((r.seen == published));  // all of them, each once, in id order
    }

    // The LISTEN connection of one replica is killed: the poll still brings
    // the next event, and the listener comes back.
    {
        pg::pg_connection admin(ioc.get_executor());
        BOOST_TEST_REQUIRE(run_for(ioc, admin.connect(db.conninfo, 5s)).has_value());
        const auto killed = run_for(
            ioc,
            admin.query(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
                {}, 5s));
        BOOST_TEST_REQUIRE(killed.has_value(), killed.error().message);
        BOOST_TEST(*killed->rows[0][0] == "3");
    }
    const auto id = run_for(ioc, pg::publish_event(replicas.front().pool, "acme", "config-updated", "{}"));
    BOOST_TEST_REQUIRE(id.has_value());
    BOOST_TEST(tether::test::poll_until(
        ioc, every_replica([&id](replica& r) { return !r.seen.empty() && r.seen.back() == *id; }), 5s));
    BOOST_TEST(
        tether::test::poll_until(ioc, every_replica([](replica& r) { return r.tail.listening(); }), 10s));

    for (auto& r : replicas) r.stop.emit(asio::cancellation_type::terminal);
    BOOST_TEST(tether::test::poll_until(ioc, every_replica([](replica& r) { return r.ended; }), 5s));
}

BOOST_AUTO_TEST_SUITE_END()
