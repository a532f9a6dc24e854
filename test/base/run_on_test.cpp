// Coroutines and calls run on another executor: run_on (a strand of a pool,
// as pg_store's) and blocking_call (a storage thread). Results and failures
// come back on the caller's thread; run_on passes the caller's cancellation
// on, blocking_call lets the call finish and the caller stop at its next
// wait. Under ASan, nothing is touched after it is freed.
#include "base/run_on.hpp"

#include "base/blocking_call.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace tether;  // NOLINT(google-build-using-namespace): asio, awaitable, timer

namespace {

using namespace std::chrono_literals;

/// A caller's event loop on this thread and one pool thread to run on.
struct caller_and_pool {
    asio::io_context ioc;
    asio::thread_pool pool{1};
    asio::any_io_executor strand = asio::make_strand(pool.get_executor());

    /// Runs `body` as the caller until everything is done.
    void run(awaitable<void> body)
    {
        asio::co_spawn(ioc, std::move(body), [](const std::exception_ptr& e) {
            if (e) std::rethrow_exception(e);
        });
        ioc.run();
        pool.join();
    }
};

awaitable<int> where_and_what(std::thread::id& ran_on)
{
    ran_on = std::this_thread::get_id();
    co_return 42;
}

awaitable<int> failing()
{
    throw std::runtime_error("connection lost");
    co_return 0;
}

/// A wait on its own executor that ends early only when cancelled.
awaitable<void> wait_long(bool& cancelled_there)
{
    timer t(co_await asio::this_coro::executor, 30s);
    auto [ec] = co_await t.async_wait();
    cancelled_there = ec == asio::error::operation_aborted;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(run_on_suite)

BOOST_AUTO_TEST_CASE(results_come_back_on_the_callers_thread)
{
    caller_and_pool c;
    std::thread::id ran_on, resumed_on, work_ran_on, work_resumed_on;
    int got = 0, work_got = 0;
    c.run([&]() -> awaitable<void> {
        got = co_await run_on(c.strand, where_and_what(ran_on));
        resumed_on = std::this_thread::get_id();
        std::function<int()> work = [&] {
            work_ran_on = std::this_thread::get_id();
            return 7;
        };
        work_got = co_await blocking_call(c.pool.get_executor(), std::move(work));
        work_resumed_on = std::this_thread::get_id();
    }());
    BOOST_TEST(got == 42);
    BOOST_TEST(work_got == 7);
    BOOST_TEST((ran_on != std::this_thread::get_id()));
    BOOST_TEST((work_ran_on != std::this_thread::get_id()));
    BOOST_TEST((resumed_on == std::this_thread::get_id()));
    BOOST_TEST((work_resumed_on == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(exceptions_reach_the_caller)
{
    caller_and_pool c;
    std::vector<std::string> caught;
    c.run([&]() -> awaitable<void> {
        try {
            (void)co_await run_on(c.strand, failing());
        } catch (const std::runtime_error& e) {
            caught.emplace_back(e.what());
        }
        std::function<int()> work = []() -> int {
            throw std::runtime_error("disk full");
        };
        try {
            (void)co_await blocking_call(c.pool.get_executor(), std::move(work));
        } catch (const std::runtime_error& e) {
            caught.emplace_back(e.what());
        }
    }());
    BOOST_TEST((caught == std::vector<std::string>{"connection lost", "disk full"}));
}

BOOST_AUTO_TEST_CASE(the_callers_cancellation_ends_a_wait_on_the_other_executor)
{
    // What stops pg_store's LISTEN tail when the gateway stops.
    caller_and_pool c;
    asio::cancellation_signal stop;
    bool cancelled_there = false;
    bool finished = false;
    asio::co_spawn(
        c.ioc, run_on(c.strand, wait_long(cancelled_there)),
        asio::bind_cancellation_slot(stop.slot(), [&](const std::exception_ptr&) { finished = true; }));
    timer kick(c.ioc, 50ms);
    kick.async_wait([&](auto...) { stop.emit(asio::cancellation_type::terminal); });
    const auto t0 = std::chrono::steady_clock::now();
    c.ioc.run();
    c.pool.join();
    BOOST_TEST(finished);
    BOOST_TEST(cancelled_there);
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 10s));  // not the 30 s wait
}

BOOST_AUTO_TEST_CASE(a_caller_cancelled_during_a_blocking_call_gets_its_result_then_stops)
{
    // The supervisor's stop reaching a task inside a SQLite call: the call
    // finishes (nothing is left half-written), the task gets its result and
    // meets the cancellation at its next wait.
    caller_and_pool c;
    asio::cancellation_signal stop;
    int got = 0;
    asio::co_spawn(
        c.ioc,
        [&]() -> awaitable<void> {
            std::function<int()> work = [&] {
                asio::post(c.ioc, [&] { stop.emit(asio::cancellation_type::terminal); });
                std::this_thread::sleep_for(50ms);  // the emit happens meanwhile
                return 7;
            };
            got = co_await blocking_call(c.pool.get_executor(), std::move(work));
            timer t(co_await asio::this_coro::executor, 30s);
            (void)co_await t.async_wait();  // throws: cancelled before it began
        },
        asio::bind_cancellation_slot(stop.slot(), [](const std::exception_ptr& e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const boost::system::system_error& s) {
                if (s.code() != asio::error::operation_aborted) throw;
            }
        }));
    const auto t0 = std::chrono::steady_clock::now();
    c.ioc.run();
    c.pool.join();
    BOOST_TEST(got == 7);
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 10s));  // not the 30 s wait
}

BOOST_AUTO_TEST_CASE(many_calls_cancelled_as_they_complete_leave_nothing_behind)
{
    // Cancellations that cross completions on the other thread, many times
    // over: every call completes once (a lost one hangs run() or join()),
    // and under ASan nothing is touched after it is freed. (This order did
    // not make plain co_spawn fail here: its race needs the caller to
    // resume between the dispatch of an emit and its run on the pool.)
    caller_and_pool c;
    int done = 0;
    constexpr int rounds = 500;
    std::vector<std::unique_ptr<asio::cancellation_signal>> stops;
    for (int i = 0; i < rounds; ++i) {
        stops.push_back(std::make_unique<asio::cancellation_signal>());
        asio::co_spawn(
            c.ioc,
            [&c, i]() -> awaitable<void> {
                std::thread::id ignored;
                if (i % 2 == 0) {
                    (void)co_await run_on(c.strand, where_and_what(ignored));
                } else {
                    std::function<int()> work = [] {
                        return 1;
                    };
                    (void)co_await blocking_call(c.pool.get_executor(), std::move(work));
                }
            },
            asio::bind_cancellation_slot(stops.back()->slot(),
                                         [&done](const std::exception_ptr&) { ++done; }));
        asio::post(c.ioc, [s = stops.back().get()] { s->emit(asio::cancellation_type::terminal); });
    }
    c.ioc.run();
    c.pool.join();
    BOOST_TEST(done == rounds);
}

BOOST_AUTO_TEST_SUITE_END()
