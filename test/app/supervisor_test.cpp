#include "app/common/supervisor.hpp"

#include "support/child_process.hpp"
#include "support/log_capture.hpp"
#include "support/run_for.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

using namespace std::chrono_literals;
using tether::awaitable;
using tether::timer;
using tether::app::exit_status;
using tether::app::supervisor;
using tether::app::supervisor_options;
using tether::app::task_policy;
namespace asio = boost::asio;

namespace {

supervisor_options quiet(std::chrono::milliseconds drain = 2s)
{
    supervisor_options o;
    o.drain = drain;
    o.handle_signals = false;
    o.hard_exit_watchdog = false;
    return o;
}

/// Waits until cancelled; records that it saw the cancellation.
awaitable<void> wait_forever(std::atomic<int>& cancelled)
{
    const auto ex_t = co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
    timer t{ex_t, std::chrono::hours(1)};
    auto [ec] = co_await t.async_wait();
    if (ec == asio::error::operation_aborted) ++cancelled;
}

/// Filters out every cancellation: the task a drain deadline exists for.
awaitable<void> stubborn()
{
    co_await asio::this_coro::reset_cancellation_state(
        [](asio::cancellation_type) { return asio::cancellation_type::none; });
    for (;;) {
        const auto ex_t = co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        timer t{ex_t, 20ms};
        co_await t.async_wait();
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(supervisor_suite)

BOOST_AUTO_TEST_CASE(sigterm_cancels_every_task_and_exits_zero)
{
    tether::test::log_capture logs;
    supervisor_options o = quiet();
    o.handle_signals = true;
    std::atomic<int> cancelled{0};
    int status = -1;
    {
        supervisor sup(logs.logger(), o);
        sup.add("one", [&] { return wait_forever(cancelled); });
        sup.add("two", [&] { return wait_forever(cancelled); });
        sup.add("raiser", []() -> awaitable<void> {
            co_await tether::test::sleep_for(50ms);
            std::raise(SIGTERM);
        });
        status = sup.run();
    }
    BOOST_TEST(status == 0);
    BOOST_TEST(cancelled.load() == 2);
    BOOST_TEST_REQUIRE(logs.events("supervisor.signal").size() == 1u);
    BOOST_TEST(logs.events("supervisor.signal")[0].at("signal").as_string() == "SIGTERM");
    BOOST_TEST(!logs.has("supervisor.drain_timeout"));
}

// Ctrl-C in a terminal reaches every process of the group, and the script
// around it often sends SIGTERM next: that second signal, arriving while the
// process exits after its drain, must not turn exit 0 into "killed" (143).
// In a child process, since failing means dying.
BOOST_AUTO_TEST_CASE(a_second_signal_during_the_exit_does_not_kill_the_process)
{
    const pid_t pid = ::fork();
    BOOST_TEST_REQUIRE(pid >= 0);
    if (pid == 0) {
        int status = 9;
        {
            tether::test::log_capture logs;
            supervisor_options o = quiet();
            o.handle_signals = true;
            supervisor sup(logs.logger(), o);
            sup.add("raiser", []() -> awaitable<void> {
                std::raise(SIGINT);
                co_return;
            });
            status = sup.run();
            std::raise(SIGTERM);  // run() returned: the exit has begun
        }
        std::raise(SIGINT);  // the supervisor is gone too
        ::_exit(status);
    }
    int ws = 0;
    BOOST_TEST_REQUIRE(::waitpid(pid, &ws, 0) == pid);
    BOOST_TEST(WIFEXITED(ws), "killed by signal " << (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0));
    BOOST_TEST(WEXITSTATUS(ws) == 0);
}

BOOST_AUTO_TEST_CASE(task_ignoring_cancellation_is_abandoned_after_the_drain)
{
    tether::test::log_capture logs;
    std::atomic<int> cancelled{0};
    int status = -1;
    const auto started = std::chrono::steady_clock::now();
    {
        supervisor sup(logs.logger(), quiet(300ms));
        sup.add("polite", [&] { return wait_forever(cancelled); });
        sup.add("stubborn", [] { return stubborn(); });
        sup.add("stopper", [&]() -> awaitable<void> {
            co_await tether::test::sleep_for(10ms);
            sup.request_stop(exit_status::ok, "test");
        });
        status = sup.run();
    }
    const auto took = std::chrono::steady_clock::now() - started;
    BOOST_TEST(status == 1);  // a stop that could not drain is not a clean exit
    BOOST_TEST(cancelled.load() == 1);
    BOOST_TEST(took >= 300ms);
    const auto timeouts = logs.events("supervisor.drain_timeout");
    BOOST_TEST_REQUIRE(timeouts.size() == 1u);
    BOOST_TEST(timeouts[0].at("level").as_string() == "error");
    const auto& stuck = timeouts[0].at("tasks").as_array();
    BOOST_TEST_REQUIRE(stuck.size() == 1u);
    BOOST_TEST(stuck[0].as_string() == "stubborn");
}

BOOST_AUTO_TEST_CASE(a_task_blocking_its_thread_is_ended_by_the_hard_exit_watchdog)
{
    // In a child process: the watchdog ends the whole process.
    tether::test::child_process p(TETHER_BLOCKING_TASK, {});
    BOOST_TEST_REQUIRE(
        p.wait_output([](const std::string& o) { return o.find("ready") != std::string::npos; }, 10s, true));
    const auto signalled = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    const auto status = p.wait_for(10s);
    const auto took = std::chrono::steady_clock::now() - signalled;
    BOOST_TEST_REQUIRE(status.has_value(), "still running 10 s after SIGTERM:\n" << p.err_when_printed());
    BOOST_TEST(*status == 1);     // not a clean stop
    BOOST_TEST((took >= 500ms));  // drain 200 ms + grace 300 ms, not earlier
    BOOST_TEST(p.err().find("supervisor.hard_exit") != std::string::npos, p.err_when_printed());
    BOOST_TEST(p.err().find("supervisor.drain_timeout") == std::string::npos);  // its timer never ran
}

BOOST_AUTO_TEST_CASE(fatal_exit_stops_the_others_with_its_status)
{
    tether::test::log_capture logs;
    std::atomic<int> cancelled{0};
    supervisor sup(logs.logger(), quiet());
    sup.add("waiter", [&] { return wait_forever(cancelled); });
    sup.add("auth", []() -> awaitable<void> {
        co_await tether::test::sleep_for(10ms);
        throw tether::app::fatal_exit(exit_status::permanent_auth, "node revoked");
    });
    BOOST_TEST(sup.run() == 3);
    BOOST_TEST(cancelled.load() == 1);
    const auto exits = logs.events("task.exit");
    BOOST_TEST_REQUIRE(exits.size() == 1u);
    BOOST_TEST(exits[0].at("task").as_string() == "auth");
    BOOST_TEST(exits[0].at("reason").as_string() == "node revoked");
}

BOOST_AUTO_TEST_CASE(failing_task_is_logged_by_name_and_exits_one)
{
    tether::test::log_capture logs;
    std::atomic<int> cancelled{0};
    supervisor sup(logs.logger(), quiet());
    sup.add("waiter", [&] { return wait_forever(cancelled); });
    sup.add("broken", []() -> awaitable<void> {
        co_await tether::test::sleep_for(1ms);
        throw std::runtime_error("disk on fire");
    });
    BOOST_TEST(sup.run() == 1);
    BOOST_TEST(cancelled.load() == 1);
    const auto failed = logs.events("task.failed");
    BOOST_TEST_REQUIRE(failed.size() == 1u);
    BOOST_TEST(failed[0].at("task").as_string() == "broken");
    BOOST_TEST(failed[0].at("error").as_string() == "disk on fire");
}

BOOST_AUTO_TEST_CASE(restart_policy_retries_with_backoff)
{
    tether::test::log_capture logs;
    int runs = 0;
    task_policy policy;
    policy.failure = task_policy::on_failure::restart;
    policy.returned = task_policy::on_return::stop_process;
    policy.restart_backoff = {.base = 1ms, .cap = 5ms};
    supervisor sup(logs.logger(), quiet());
    sup.add(
        "flaky",
        [&]() -> awaitable<void> {
            ++runs;
            co_await tether::test::sleep_for(1ms);
            if (runs < 3) throw std::runtime_error("try again");
        },
        policy);
    BOOST_TEST(sup.run() == 0);
    BOOST_TEST(runs == 3);
    BOOST_TEST(logs.events("task.restart").size() == 2u);
}

BOOST_AUTO_TEST_CASE(cancellation_during_restart_backoff_stops_promptly)
{
    tether::test::log_capture logs;
    task_policy policy;
    policy.failure = task_policy::on_failure::restart;
    policy.restart_backoff = {.base = std::chrono::hours(1), .cap = std::chrono::hours(1)};
    supervisor sup(logs.logger(), quiet(5s));
    sup.add(
        "flaky",
        []() -> awaitable<void> {
            throw std::runtime_error("always");
            co_return;
        },
        policy);
    sup.add("stopper", [&]() -> awaitable<void> {
        co_await tether::test::sleep_for(50ms);
        sup.request_stop(exit_status::ok, "test");
    });
    const auto started = std::chrono::steady_clock::now();
    BOOST_TEST(sup.run() == 0);
    BOOST_TEST((std::chrono::steady_clock::now() - started) < 3s);
}

BOOST_AUTO_TEST_CASE(stop_before_run_starts_nothing)
{
    tether::test::log_capture logs;
    bool ran = false;
    supervisor sup(logs.logger(), quiet());
    sup.add("never", [&]() -> awaitable<void> {
        ran = true;
        co_return;
    });
    sup.request_stop(exit_status::permanent_auth, "test");
    BOOST_TEST(sup.run() == 3);
    BOOST_TEST(!ran);
}

BOOST_AUTO_TEST_CASE(all_tasks_returning_exits_zero_without_a_stop)
{
    tether::test::log_capture logs;
    supervisor sup(logs.logger(), quiet());
    sup.add("a", [] { return tether::test::sleep_for(5ms); });
    sup.add("b", [] { return tether::test::sleep_for(10ms); });
    BOOST_TEST(sup.run() == 0);
    BOOST_TEST(logs.events("task.finished").size() == 2u);
}

BOOST_AUTO_TEST_CASE(multi_threaded_context_drains_too)
{
    tether::test::log_capture logs;
    supervisor_options o = quiet();
    o.threads = 2;
    std::atomic<int> cancelled{0};
    supervisor sup(logs.logger(), o);
    for (int i = 0; i < 8; ++i) sup.add("w" + std::to_string(i), [&] { return wait_forever(cancelled); });
    sup.add("stopper", [&]() -> awaitable<void> {
        co_await tether::test::sleep_for(20ms);
        sup.request_stop(exit_status::ok, "test");
    });
    BOOST_TEST(sup.run() == 0);
    BOOST_TEST(cancelled.load() == 8);
}

BOOST_AUTO_TEST_SUITE_END()
