// The gateway's SQLite storage on a disk that fills, for real (a small
// tmpfs): a write fails with the error that says so, what was committed
// stays, and the same connection writes again once there is space.
#include "gateway/sqlite_storage.hpp"

#include "support/child_process.hpp"
#include "support/small_disk.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <functional>
#include <stdexcept>
#include <string>

namespace t = tether::test;
using tether::gateway::sqlite_storage;

namespace {

/// What `write` threw; empty when it did not.
std::string failure_of(const std::function<void()>& write)
{
    try {
        write();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sqlite_storage_suite)

BOOST_AUTO_TEST_CASE(a_full_disk_fails_writes_with_their_own_error_and_loses_nothing)
{
    if (!t::can_mount()) return;
    t::temp_dir dir;
    const t::small_disk disk(dir.path() / "disk", "1m");
    sqlite_storage db(disk.at / "tether.db");
    const auto first = db.publish_config("acme", R"({"flags":{"a":true}})", 1000);
    const auto event = db.append_event("acme", "config-updated", "{}", 100);
    BOOST_TEST_REQUIRE(t::fill_up(disk.at / "filler") == ENOSPC);

    // Larger than anything the WAL has room for: each needs new pages.
    const std::string big = R"({"blob":")" + std::string(256 * 1024, 'x') + R"("})";
    for (const auto& why : {failure_of([&] { db.publish_config("acme", big, 2000); }),
                            failure_of([&] { db.append_event("acme", "config-updated", big, 100); })}) {
        BOOST_TEST(t::contains(why, "database or disk is full"), why);
        // SQLite rolls such a transaction back itself; rolling back again
        // used to fail and replace the cause with "no transaction is active".
        BOOST_TEST(!t::contains(why, "transaction"), why);
    }
    BOOST_TEST(db.latest_config("acme")->updated_at == first);
    BOOST_TEST(db.events_after("acme", 0).size() == 1U);
    BOOST_TEST(db.events_after("acme", 0).front().id == event);

    std::filesystem::remove(disk.at / "filler");
    const auto next = db.publish_config("acme", big, 3000);
    BOOST_TEST(next > first);
    BOOST_TEST(db.latest_config("acme")->document == big);
    BOOST_TEST(db.append_event("acme", "config-updated", "{}", 100) > event);
}

BOOST_AUTO_TEST_SUITE_END()
