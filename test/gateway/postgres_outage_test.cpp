// PostgreSQL only: the database goes away under a running gateway and comes
// back. The cases both backends pass are gateway_test.cpp's.
#include "gateway/postgres/pg_store.hpp"
#include "support/gateway_fixture.hpp"
#include "support/postgres_fixture_backend.hpp"
#include "support/small_disk.hpp"

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using tether::test::gateway_fixture;
namespace net = tether::net;
using code = net::connect::code;
using tether::test::code_of;

namespace {

/// A psql session on `database`, named `name` in pg_stat_activity, fed
/// `script` on standard input: each statement's result is printed as it
/// runs (`psql -c` would print nothing until the last).
std::unique_ptr<tether::test::child_process> psql_session(tether::test::postgres_server& pg,
                                                          const std::string& database,
                                                          const std::string& name, std::string script)
{
    tether::test::child_process::options o;
    o.stdin_data = std::move(script);
    return std::make_unique<tether::test::child_process>(
        "/usr/lib/postgresql/15/bin/psql",
        std::vector<std::string>{"-d", pg.conninfo(database) + " application_name=" + name, "-v",
                                 "ON_ERROR_STOP=1", "-qAt"},
        o);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gateway_rpc_suite)

BOOST_AUTO_TEST_CASE(a_real_database_outage_fails_fast_keeps_streams_and_recovers)
{
    // A cluster of its own: this test stops it.
    tether::test::postgres_server own;
    const tether::test::own_cluster on(own);
    gateway_fixture g;
    const auto ready = [&] {
        return g.get("/readyz").status;
    };
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    auto [status, stream] = g.open_stream(g.stream_token(s), "0");
    BOOST_TEST_REQUIRE(status == 200u);
    g.publish("acme", {{"flags", {{"before", true}}}});
    BOOST_TEST(g.read_events(*stream, 1).size() == 1u);

    own.stop("fast");  // the database goes away; what it committed stays
    const auto started = std::chrono::steady_clock::now();
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::unavailable));
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::unavailable));
    const auto took = std::chrono::steady_clock::now() - started;
    BOOST_TEST((took < 2s), "two calls took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms");
    BOOST_TEST(tether::test::poll_until(
        g.ioc, [&] { return ready() == 503u; }, 5s));
    // The open stream stays open through the outage.
    tether::test::pump_for(g.ioc, 1500ms);
    BOOST_TEST(g.service().hub().connections() == 1u);
    BOOST_TEST((g.logs.has("postgres.listen_lost") || g.logs.has("postgres.tail_failed")), g.logs.all());

    own.start();
    BOOST_TEST(tether::test::poll_until(
        g.ioc, [&] { return ready() == 200u; }, 15s));
    // The same session works again.
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST(g.node("GetRuntimeConfig", {}, s).has_value());
    // The stream that stayed open gets what is published after the outage.
    const auto at = g.publish("acme", {{"flags", {{"after", true}}}});
    const auto events = g.read_events(*stream, 1, 5s);
    BOOST_TEST_REQUIRE(!events.empty(), g.logs.all());
    BOOST_TEST(events.back().data.find(std::to_string(at)) != std::string::npos, events.back().data);
    stream.reset();
    g.stop();
}

namespace {

/// `n` hex digits no two publishes share and PostgreSQL cannot compress
/// (its pglz finds no repeats in them): every publish needs new pages.
std::string incompressible(std::size_t n, std::uint64_t seed)
{
    std::string out;
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    while (out.size() < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out += "0123456789abcdef"[x & 15];
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_full_database_disk_refuses_writes_keeps_what_committed_and_recovers)
{
    // The databases' files on a small disk of their own; the write-ahead log
    // elsewhere, so PostgreSQL fails statements ("could not extend file")
    // and stays up. (A full write-ahead log stops the server itself: that
    // is the outage above.)
    if (!tether::test::can_mount()) return;
    tether::test::temp_dir where;
    // The server's user must reach its data directory through this one.
    std::filesystem::permissions(where.path(), std::filesystem::perms::others_exec,
                                 std::filesystem::perm_options::add);
    tether::test::small_disk disk(where.path() / "disk", "64m");
    tether::test::postgres_server own(disk.at / "data");
    const tether::test::own_cluster on(own);
    gateway_fixture g;

    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    auto [status, stream] = g.open_stream(g.stream_token(s), "0");
    BOOST_TEST_REQUIRE(status == 200u);
    const auto first = g.publish("acme", {{"payload", incompressible(6000, 0)}});
    BOOST_TEST_REQUIRE(g.read_events(*stream, 1).size() == 1u);

    BOOST_TEST_REQUIRE(tether::test::fill_up(disk.at / "filler") == ENOSPC);
    // Pages with room left may take a publish or two; one of these must be
    // refused, as unavailable (a retry later may work), not as a 500.
    std::vector<std::int64_t> committed;
    std::optional<net::connect::error> refused;
    for (int i = 1; i <= 64 && !refused; ++i) {
        auto r = g.admin_call("PublishConfig",
                              {{"orgId", "acme"}, {"config", {{"payload", incompressible(6000, i)}}}});
        if (r)
            committed.push_back(std::stoll(std::string(r->at("configUpdatedAt").as_string())));
        else
            refused = r.error();
    }
    BOOST_TEST_REQUIRE(refused.has_value(), "64 publishes of 6 KB fit on a full disk");
    BOOST_TEST_MESSAGE(committed.size() << " publishes committed on the full disk before one was refused");
    BOOST_TEST((refused->c == code::unavailable), refused->message);
    const auto failed = g.logs.events("gateway.storage_failed");
    BOOST_TEST_REQUIRE(!failed.empty(), g.logs.all());
    const std::string why(failed.back().at("error").as_string());
    BOOST_TEST(why.find("53100") != std::string::npos, why);  // disk_full
    BOOST_TEST(why.find("No space left on device") != std::string::npos, why);

    // Reads go on: the node's config is the last one that committed, and
    // the gateway is ready.
    const auto last = committed.empty() ? first : committed.back();
    auto cfg = g.node("GetRuntimeConfig", {}, s);
    BOOST_TEST_REQUIRE(cfg.has_value(), cfg.error().message);
    BOOST_TEST(std::string(cfg->at("configUpdatedAt").as_string()) == std::to_string(last));
    BOOST_TEST(g.get("/readyz").status == 200u);

    // Room again: the same gateway, connections and session write at once.
    std::filesystem::remove(disk.at / "filler");
    const auto after = g.publish("acme", {{"payload", incompressible(6000, 1000)}});
    BOOST_TEST(after > last);
    committed.push_back(after);
    // The stream that stayed open has every publish that committed, in
    // order, and nothing of the refused one.
    const auto events = g.read_events(*stream, committed.size(), 5s);
    BOOST_TEST_REQUIRE(events.size() == committed.size(), g.logs.all());
    for (std::size_t i = 0; i < committed.size(); ++i)
        BOOST_TEST(events[i].data.find(std::to_string(committed[i])) != std::string::npos, events[i].data);
    BOOST_TEST(g.service().hub().connections() == 1u);
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    // No connection was dropped for it: a full disk is not a lost database.
    BOOST_TEST(!g.logs.has("postgres.connection_lost"), g.logs.all());
    stream.reset();
    g.stop();
}

BOOST_AUTO_TEST_CASE(a_lock_held_elsewhere_times_calls_out_and_leaves_nothing_running_behind)
{
    // Someone holds a lock the gateway's statements wait for (a migration
    // by hand, a psql session left in a transaction). Calls must answer
    // unavailable at the timeout, and what was given up must stop: not
    // wait on in the server for the lock, holding a connection slot each,
    // and then commit what the caller was told had failed.
    tether::test::postgres_server own;
    const tether::test::own_cluster on(own, 1s);
    gateway_fixture g;
    const std::string database = "t1";  // the fixture's, on a cluster of its own
    // A code for two nodes. The first enrolls now, so the gateway's
    // connection has the statement prepared: given up later, it would be
    // the execution, not the preparation, that waits for the lock.
    const auto made = g.admin_call("CreateEnrollmentCode", {{"orgId", "acme"}, {"maxUses", 2}});
    BOOST_TEST_REQUIRE(made.has_value(), made.error().message);
    const std::string code_text(made->at("code").as_string());
    const auto first_key = tether::auth::generate_key();
    const auto first = g.node("Enroll", {{"enrollmentCode", code_text},
                                         {"nodeName", "first"},
                                         {"publicKey", net::protojson::base64_encode(first_key.public_raw)},
                                         {"capabilities", boost::json::array{"heartbeat"}}});
    BOOST_TEST_REQUIRE(first.has_value(), first.error().message);
    const auto backends = [&] {
        const auto r = own.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = '" +
                                                database + "' AND pid <> pg_backend_pid()");
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
        return std::stoi(r.out);
    };
    const int before = backends();

    const auto locker = psql_session(
        own, database, "locker",
        "BEGIN;\nLOCK TABLE nodes IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\nSELECT pg_sleep(60);\n");
    BOOST_TEST_REQUIRE(
        locker->wait_output([](const std::string& out) { return out.find("locked") != std::string::npos; },
                            10s, true),
        locker->err_when_printed());

    const auto key = tether::auth::generate_key();
    const boost::json::object enroll{{"enrollmentCode", code_text},
                                     {"nodeName", "late"},
                                     {"publicKey", net::protojson::base64_encode(key.public_raw)},
                                     {"capabilities", boost::json::array{"heartbeat"}}};
    for (int i = 0; i < 6; ++i) {
        const auto started = std::chrono::steady_clock::now();
        BOOST_TEST((code_of(g.node("Enroll", enroll)) == code::unavailable));
        BOOST_TEST((std::chrono::steady_clock::now() - started < 3s));
    }
    // What was given up is not still waiting in the server: besides the
    // locker, at most the rest of the pool, not one more per call.
    BOOST_TEST(tether::test::poll_until(
                   g.ioc, [&] { return backends() <= before + 1 + 3; }, 3s),
               backends() << " backends for the gateway's database (" << before << " before the lock)");

    // The server cancelled each statement; the connections stay.
    BOOST_TEST(!g.logs.has("postgres.connection_lost"), g.logs.all());

    // The lock goes, and anything still waiting for it in the server gets
    // its moment. None of the six enrollments happened after all, so the
    // code's second use still enrolls the node, once.
    const auto ended = own.psql("postgres",
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                                "application_name = 'locker'");
    BOOST_TEST_REQUIRE(ended.status == 0, ended.err);
    BOOST_TEST(locker->wait_for(5s).has_value());
    tether::test::pump_for(g.ioc, 500ms);
    auto r = g.node("Enroll", enroll);
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
    BOOST_TEST(own.psql(database, "SELECT count(*) FROM nodes").out == "2\n");
    g.stop();
}

BOOST_AUTO_TEST_CASE(a_first_use_that_waits_for_two_locks_answers_what_the_database_did)
{
    // A statement's first use on a connection is two exchanges, Prepare and
    // Execute, and the server's statement_timeout bounds each on its own.
    // Here both wait: the Prepare for a lock held in one psql session, the
    // Execute for a second session that takes the lock between them. The
    // gateway must wait for the server as long as the server may take, or
    // it answers unavailable and the server enrolls the node regardless.
    tether::test::postgres_server own;
    const tether::test::own_cluster on(own);
    gateway_fixture g;                          // --db-timeout 5 s: the server's statement_timeout
    const std::string database = "t1";          // the fixture's, on a cluster of its own
    const auto code_text = g.new_code("acme");  // no Enroll yet: its first use prepares
    // Seconds from the first lock: the first session holds it until 3; the
    // second asks at 1, behind the gateway's Prepare, and holds it from 3
    // to 7. The Prepare runs at 3 and its Execute then waits until 7: past
    // 6, where one bound for both exchanges ran out, and short of 8, where
    // the server cancels the Execute.
    auto first = psql_session(own, database, "first_locker",
                              "BEGIN;\nLOCK TABLE nodes IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n"
                              "SELECT pg_sleep(3);\nCOMMIT;\n");
    BOOST_TEST_REQUIRE(
        first->wait_output([](const std::string& out) { return out.find("locked") != std::string::npos; },
                           10s, true),
        first->err_when_printed());
    auto second = psql_session(own, database, "second_locker",
                               "SELECT pg_sleep(1);\nBEGIN;\nLOCK TABLE nodes IN ACCESS EXCLUSIVE MODE;\n"
                               "SELECT pg_sleep(4);\nCOMMIT;\n");

    const auto key = tether::auth::generate_key();
    const auto started = std::chrono::steady_clock::now();
    const auto r = g.node("Enroll", {{"enrollmentCode", code_text},
                                     {"nodeName", "waited"},
                                     {"publicKey", net::protojson::base64_encode(key.public_raw)},
                                     {"capabilities", boost::json::array{"heartbeat"}}});
    const auto took = std::chrono::steady_clock::now() - started;
    BOOST_TEST(first->wait_for(5s).value_or(-1) == 0, first->err_when_printed());
    BOOST_TEST(second->wait_for(5s).value_or(-1) == 0, second->err_when_printed());
    // Without the second session between the exchanges the call would end
    // at 3 s, and this case would test nothing.
    BOOST_TEST((took > 5s), "the call took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms: the second lock did not come between the two exchanges");
    BOOST_TEST(r.has_value(), (r ? "" : r.error().message));
    BOOST_TEST(own.psql(database, "SELECT count(*) FROM nodes WHERE node_name = 'waited'").out == "1\n");
    BOOST_TEST(!g.logs.has("postgres.connection_lost"), g.logs.all());
    g.stop();
}

BOOST_AUTO_TEST_CASE(a_backlog_of_expired_credentials_goes_in_batches_in_one_round)
{
    // One DELETE of a large backlog could outlast statement_timeout and be
    // cancelled every round; in batches, one round takes it all.
    tether::test::postgres_server own;
    const tether::test::own_cluster on(own);
    gateway_fixture g;
    const std::string database = "t1";  // the fixture's, on a cluster of its own
    const auto n = g.enroll("acme");
    const auto s = g.session(n);  // a live credential, which stays
    const auto backlog = 2 * tether::gateway::postgres::pg_store::prune_batch_rows + 5'000;
    const auto made = own.psql(database,
                               "INSERT INTO credentials(kind, token_hash, node_id, org_id, expires_ms) "
                               "SELECT 2, 'expired-' || g, 'gone', 'acme', 1 FROM generate_series(1, " +
                                   std::to_string(backlog) + ") g");
    BOOST_TEST_REQUIRE(made.status == 0, made.err);
    const auto count = [&] {
        return std::stoll(own.psql(database, "SELECT count(*) FROM credentials").out);
    };
    const auto before = count();
    BOOST_TEST(before > backlog);

    tether::test::run_for(g.ioc, g.store().prune_credentials(g.now.load()));
    BOOST_TEST(count() == before - backlog);
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    g.stop();
}

BOOST_AUTO_TEST_SUITE_END()
