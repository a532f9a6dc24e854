// The event dispatcher: arrival order, a failed handler retried alone, by
// due time, stale retries dropped, a bounded queue dropping the oldest.
#include "app/agent/tasks/dispatch_task.hpp"
#include "app/common/exit_status.hpp"
#include "support/log_capture.hpp"
#include "support/run_for.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <map>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace app = tether::app;
namespace net = tether::net;
using tether::awaitable;
using tether::error_code;

namespace {

/// A dispatcher running in the test's io_context, with handlers that record
/// calls and fail as scripted ("fail the first n calls for this data").
struct harness {
    explicit harness(std::size_t capacity = 64)
        : dispatch({ioc.get_executor(), stats, logs.logger(), [] { return 0.999; }, capacity, {100ms, 2s}})
    {
    }
    ~harness() { stop(); }

    void add(const std::string& type, const std::string& name)
    {
        dispatch.on(type, name, [this, name](const net::sse_event& e) -> awaitable<error_code> {
            calls.push_back(name + ":" + e.data);
            auto& left = failures[name + ":" + e.data];
            if (left > 0) {
                --left;
                co_return make_error_code(boost::system::errc::resource_unavailable_try_again);
            }
            co_return error_code{};
        });
    }
    void post(const std::string& type, const std::string& data) { dispatch.post({type, data, {}}); }
    void start()
    {
        asio::co_spawn(ioc, dispatch.run(),
                       asio::bind_cancellation_slot(stop_.slot(), [this](std::exception_ptr e) {
                           done = true;
                           error = e;
                       }));
    }
    void stop()
    {
        if (done) return;
        stop_.emit(asio::cancellation_type::terminal);
        BOOST_TEST(tether::test::poll_until(
                       ioc, [this] { return done; }, 5s),
                   "dispatcher did not stop");
    }
    std::size_t count(const std::string& call) const
    {
        return static_cast<std::size_t>(std::count(calls.begin(), calls.end(), call));
    }

    asio::io_context ioc;
    tether::test::log_capture logs;
    app::dispatch_stats stats;
    app::dispatch_task dispatch;
    std::vector<std::string> calls;
    std::map<std::string, int> failures;
    asio::cancellation_signal stop_;
    bool done = false;
    std::exception_ptr error;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(dispatcher)

BOOST_AUTO_TEST_CASE(handlers_run_in_arrival_and_registration_order)
{
    harness h;
    h.add("a", "first");
    h.add("a", "second");
    h.add("b", "other");
    h.start();
    h.post("a", "1");
    h.post("b", "2");
    h.post("unknown", "3");
    h.post("a", "4");
    BOOST_TEST(tether::test::poll_until(
        h.ioc, [&] { return h.calls.size() == 5; }, 5s));
    BOOST_TEST(
        (h.calls == std::vector<std::string>{"first:1", "second:1", "other:2", "first:4", "second:4"}));
    BOOST_TEST(h.stats.handled.load() == 4);  // the unknown type is consumed too
    BOOST_TEST(h.stats.depth.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_failed_handler_is_retried_alone)
{
    harness h;
    h.add("a", "flaky");
    h.add("a", "steady");
    h.failures["flaky:1"] = 1;
    h.start();
    h.post("a", "1");
    BOOST_TEST(tether::test::poll_until(
        h.ioc, [&] { return h.count("flaky:1") == 2; }, 5s));
    tether::test::pump_for(h.ioc, 300ms);
    BOOST_TEST(h.count("flaky:1") == 2u);
    BOOST_TEST(h.count("steady:1") == 1u);  // not replayed with the retry
    BOOST_TEST(h.stats.retries.load() == 1);
    BOOST_TEST(h.stats.failures.load() == 1);
    BOOST_TEST(h.logs.events("dispatch.retry_scheduled").size() == 1u);
}

BOOST_AUTO_TEST_CASE(retries_run_by_due_time_not_by_scheduling_order)
{
    // "slow" fails 3 times: its retries wait ~100, ~200, ~400 ms (rand is
    // 0.999, so each delay is just under its ceiling). "quick" fails once,
    // ~350 ms in, so its retry is due ~100 ms later: before slow's third.
    harness h;
    h.add("a", "slow");
    h.add("b", "quick");
    h.failures["slow:x"] = 3;
    h.failures["quick:y"] = 1;
    h.start();
    h.post("a", "x");
    tether::test::pump_for(h.ioc, 350ms);
    h.post("b", "y");
    BOOST_TEST(tether::test::poll_until(
        h.ioc, [&] { return h.count("slow:x") == 4 && h.count("quick:y") == 2; }, 5s));
    const auto last_quick = std::find(h.calls.rbegin(), h.calls.rend(), "quick:y");
    const auto last_slow = std::find(h.calls.rbegin(), h.calls.rend(), "slow:x");
    BOOST_TEST((last_quick > last_slow), "quick's retry waited behind slow's longer one");
}

BOOST_AUTO_TEST_CASE(a_newer_success_drops_the_stale_retry)
{
    harness h;
    h.add("config", "apply");
    h.failures["apply:old"] = 5;
    h.start();
    h.post("config", "old");
    BOOST_TEST(tether::test::poll_until(
        h.ioc, [&] { return h.count("apply:old") == 1; }, 5s));
    h.post("config", "new");  // succeeds before old's retry is due
    tether::test::pump_for(h.ioc, 600ms);
    BOOST_TEST(h.count("apply:old") == 1u);  // never replayed over the newer one
    BOOST_TEST(h.count("apply:new") == 1u);
    BOOST_TEST(h.stats.stale_retries_dropped.load() == 1);
    BOOST_TEST(h.stats.retries.load() == 0);
}

BOOST_AUTO_TEST_CASE(overflow_drops_the_oldest_and_counts)
{
    harness h(3);
    h.add("a", "h");
    for (int i = 1; i <= 5; ++i) h.post("a", std::to_string(i));  // before the task runs
    BOOST_TEST(h.stats.overflow_dropped.load() == 2);
    BOOST_TEST(h.stats.depth.load() == 3);
    BOOST_TEST(h.logs.events("dispatch.overflow").size() == 1u);
    h.start();
    BOOST_TEST(tether::test::poll_until(
        h.ioc, [&] { return h.calls.size() == 3; }, 5s));
    BOOST_TEST((h.calls == std::vector<std::string>{"h:3", "h:4", "h:5"}));
}

BOOST_AUTO_TEST_CASE(fatal_exit_from_a_handler_ends_the_task)
{
    harness h;
    h.dispatch.on("node-revoked", "revocation", [](const net::sse_event&) -> awaitable<error_code> {
        throw app::fatal_exit(app::exit_status::permanent_auth, "revoked");
        co_return error_code{};
    });
    h.start();
    h.post("node-revoked", "{}");
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        h.ioc, [&] { return h.done; }, 5s));
    // rethrow_exception of a null pointer is undefined: a clean end must fail, not crash.
    BOOST_TEST_REQUIRE(static_cast<bool>(h.error), "the dispatcher ended without an exception");
    BOOST_CHECK_THROW(std::rethrow_exception(h.error), app::fatal_exit);
}

BOOST_AUTO_TEST_SUITE_END()
