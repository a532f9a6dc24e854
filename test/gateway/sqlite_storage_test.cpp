// The gateway's SQLite storage on a disk that fills, for real (a small
// tmpfs): a write fails with the error that says so, what was committed
// stays, and the same connection writes again once there is space.
#include "gateway/sqlite_storage.hpp"

#include "support/child_process.hpp"
#include "support/small_disk.hpp"
#include "support/text.hpp"
#include "support/thrown.hpp"

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace t = tether::test;
using namespace std::chrono_literals;
using tether::gateway::sqlite_storage;

namespace {

/// Another process (python3's sqlite3, as an operator's shell would) holding
/// the database's write lock for `seconds`, from when it prints "locked".
std::unique_ptr<t::child_process> lock_elsewhere(const std::filesystem::path& db, double seconds)
{
    auto p = std::make_unique<t::child_process>(
        "/usr/bin/python3",
        std::vector<std::string>{"-c",
                                 "import sqlite3, sys, time\n"
                                 "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                                 "c.execute('BEGIN IMMEDIATE')\n"
                                 "print('locked', flush=True)\n"
                                 "time.sleep(float(sys.argv[2]))\n"
                                 "c.execute('COMMIT')\n",
                                 db.string(), std::to_string(seconds)});
    BOOST_TEST_REQUIRE(
        p->wait_output([](const std::string& out) { return t::contains(out, "locked"); }, 10s, true),
        p->err_when_printed());
    return p;
}

std::chrono::milliseconds time_of(const std::function<void()>& f)
{
    const auto started = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sqlite_storage_suite)

BOOST_AUTO_TEST_CASE(a_writer_elsewhere_holds_up_one_write_not_every_call)
{
    // Every storage call runs on one thread, so a write waiting 5 s for a
    // lock held elsewhere (someone's sqlite3 shell left in a transaction)
    // held up every call queued behind it, reads included: a fleet's
    // heartbeats 5 s apart each. The first write waits its 5 s; while the
    // lock lasts, the next writes give up at once and reads go on.
    t::temp_dir dir;
    const auto file = dir.path() / "tether.db";
    sqlite_storage db(file);
    const auto first = db.publish_config("acme", R"({"flags":{"a":true}})", 1000, std::nullopt).updated_at;
    auto holder = lock_elsewhere(file, 8);

    std::string why;
    const auto waited =
        time_of([&] { why = t::what_thrown([&] { db.publish_config("acme", "{}", 2000, std::nullopt); }); });
    BOOST_TEST(t::contains(why, "database is locked"), why);
    BOOST_TEST(waited.count() >= 4000, waited.count() << " ms: the first write should wait for the lock");
    for (int i = 0; i < 3; ++i) {
        const auto again = time_of(
            [&] { why = t::what_thrown([&] { db.append_event("acme", "config-updated", "{}", 100); }); });
        BOOST_TEST(t::contains(why, "database is locked"), why);
        BOOST_TEST(again.count() < 1000, again.count()
                                             << " ms for a write while the lock is known to be held");
        const auto read = time_of([&] { BOOST_TEST(db.latest_config("acme")->updated_at == first); });
        BOOST_TEST(read.count() < 1000, read.count() << " ms for a read");
    }

    // The lock goes: the next write goes through, and a later lock held
    // briefly is waited out in full again.
    BOOST_TEST(holder->wait_for(15s).value_or(-1) == 0, holder->err_when_printed());
    const auto second = db.publish_config("acme", "{}", 3000, std::nullopt).updated_at;
    BOOST_TEST(second > first);
    auto brief = lock_elsewhere(file, 1.5);
    std::int64_t third = 0;
    const auto outwaited =
        time_of([&] { third = db.publish_config("acme", "{}", 4000, std::nullopt).updated_at; });
    BOOST_TEST(third > second);
    BOOST_TEST(outwaited.count() >= 1000, outwaited.count()
                                              << " ms: the write should have waited for the lock");
    BOOST_TEST(brief->wait_for(10s).value_or(-1) == 0, brief->err_when_printed());
}

BOOST_AUTO_TEST_CASE(a_full_disk_fails_writes_with_their_own_error_and_loses_nothing)
{
    if (!t::can_mount()) return;
    t::temp_dir dir;
    const t::small_disk disk(dir.path() / "disk", "1m");
    sqlite_storage db(disk.at / "tether.db");
    const auto first = db.publish_config("acme", R"({"flags":{"a":true}})", 1000, std::nullopt).updated_at;
    const auto event = db.append_event("acme", "config-updated", "{}", 100);
    BOOST_TEST_REQUIRE(t::fill_up(disk.at / "filler") == ENOSPC);

    // Larger than anything the WAL has room for: each needs new pages.
    const std::string big = R"({"blob":")" + std::string(256 * 1024, 'x') + R"("})";
    for (const auto& why : {t::what_thrown([&] { db.publish_config("acme", big, 2000, std::nullopt); }),
                            t::what_thrown([&] { db.append_event("acme", "config-updated", big, 100); })}) {
        BOOST_TEST(t::contains(why, "database or disk is full"), why);
        // SQLite rolls such a transaction back itself; rolling back again
        // used to fail and replace the cause with "no transaction is active".
        BOOST_TEST(!t::contains(why, "transaction"), why);
    }
    BOOST_TEST(db.latest_config("acme")->updated_at == first);
    BOOST_TEST(db.events_after("acme", 0).size() == 1U);
    BOOST_TEST(db.events_after("acme", 0).front().id == event);

    std::filesystem::remove(disk.at / "filler");
    const auto next = db.publish_config("acme", big, 3000, std::nullopt).updated_at;
    BOOST_TEST(next > first);
    BOOST_TEST(db.latest_config("acme")->document == big);
    BOOST_TEST(db.append_event("acme", "config-updated", "{}", 100) > event);
}

BOOST_AUTO_TEST_SUITE_END()
