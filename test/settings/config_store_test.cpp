// The settings store: newer-only updates on its strand, one notification
// per applied change, snapshots readers can hold, the state file.
#include "settings/config_store.hpp"

#include "support/child_process.hpp"
#include "support/log_capture.hpp"
#include "support/run_for.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

namespace json = boost::json;
namespace settings = tether::settings;
using tether::awaitable;

namespace {

settings::config_ptr version(std::int64_t at, std::string_view doc = "{}")
{
    auto cfg = settings::decode_config(json::parse(doc), at);
    BOOST_TEST_REQUIRE(cfg.has_value());
    return std::make_shared<const settings::runtime_config>(std::move(*cfg));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config_store)

BOOST_AUTO_TEST_CASE(only_newer_versions_apply_and_notify_once)
{
    boost::asio::io_context ioc;
    settings::config_store store(ioc.get_executor(), nullptr);
    BOOST_TEST(store.updated_at() == 0);
    std::vector<std::int64_t> seen;
    store.subscribe([&](const settings::config_ptr& c) { seen.push_back(c->updated_at); });

    const auto held = store.current();  // a reader's snapshot stays valid
    BOOST_TEST(tether::test::run_for(ioc, store.update(version(10, R"({"flags": {"a": true}})"))));
    BOOST_TEST(!tether::test::run_for(ioc, store.update(version(10))));  // equal
    BOOST_TEST(!tether::test::run_for(ioc, store.update(version(9))));   // older
    BOOST_TEST(tether::test::run_for(ioc, store.update(version(11))));
    BOOST_TEST((seen == std::vector<std::int64_t>{10, 11}));
    BOOST_TEST(store.updated_at() == 11);
    BOOST_TEST(held->updated_at == 0);
}

BOOST_AUTO_TEST_CASE(concurrent_updates_from_many_threads_apply_in_order)
{
    // Updates race from a thread pool; readers run alongside. The store
    // must end on the newest version, and notifications must be increasing.
    boost::asio::thread_pool pool(4);
    settings::config_store store(pool.get_executor(), nullptr);
    std::vector<std::int64_t> seen;  // written on the store's strand only
    store.subscribe([&](const settings::config_ptr& c) { seen.push_back(c->updated_at); });
    std::atomic<int> done{0};
    for (int i = 1; i <= 200; ++i) {
        boost::asio::co_spawn(pool, store.update(version(i)), [&](std::exception_ptr, bool) { ++done; });
        boost::asio::post(pool, [&] { BOOST_CHECK(store.current() != nullptr); });
    }
    pool.join();
    BOOST_TEST(done.load() == 200);
    BOOST_TEST(store.updated_at() == 200);
    BOOST_TEST(std::is_sorted(seen.begin(), seen.end()));
    BOOST_TEST((std::adjacent_find(seen.begin(), seen.end()) == seen.end()));
}

BOOST_AUTO_TEST_CASE(the_last_good_file_loads_and_a_bad_one_is_ignored)
{
    tether::test::temp_dir dir;
    tether::test::log_capture logs;
    const auto file = dir.path() / "config.json";
    BOOST_TEST(settings::load_config_file(file, logs.logger())->updated_at == 0);  // none yet
    {
        std::ofstream out(file);
        out << settings::encode_config_file(*version(77, R"({"blockedIps": ["10.0.0.0/8"]})"));
    }
    const auto loaded = settings::load_config_file(file, logs.logger());
    BOOST_TEST(loaded->updated_at == 77);
    BOOST_TEST(loaded->blocked_ips.size() == 1u);
    {
        std::ofstream out(file);
        out << R"({"configUpdatedAt": "78", "config": {"blockedIps": ["nope"]}})";
    }
    BOOST_TEST(settings::load_config_file(file, logs.logger())->updated_at == 0);
    BOOST_TEST(logs.events("config.local_unreadable").size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
