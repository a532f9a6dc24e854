// A supervised process whose one task blocks its event-loop thread once it
// is asked to stop, so the drain timer can never fire: only the hard-exit
// watchdog can end it (test/app/supervisor_test.cpp sends the SIGTERM).
//   blocking_task            prints "ready" once its task waits
#include "app/common/supervisor.hpp"

#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main()
{
    using namespace std::chrono_literals;
    const tether::log::logger log(tether::log::level::info, tether::log::format::json);
    tether::app::supervisor_options opts;
    opts.drain = 200ms;
    opts.hard_exit_grace = 300ms;
    tether::app::supervisor sup(log, opts);
    sup.add("blocker", []() -> tether::awaitable<void> {
        const auto ex = co_await boost::asio::this_coro::executor;
        tether::timer t{ex, std::chrono::hours(1)};
        std::puts("ready");
        std::fflush(stdout);
        auto [ec] = co_await t.async_wait();
        (void)ec;
        std::this_thread::sleep_for(30s);  // the defect the watchdog exists for
    });
    return sup.run();
}
