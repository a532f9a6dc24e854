#include "app/agent/tasks/reaper_task.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <sys/wait.h>

#include <csignal>

namespace tether::app {

int reap_exited(pid_t keep) noexcept
{
    int reaped = 0;
    for (;;) {
        // Peek first (WNOWAIT): reaping `keep` here would steal the status
        // its owner waits for.
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return reaped;
        if (info.si_pid == keep) {
            // Only `keep` is ready; others may follow. Look at the rest by pid is
            // not possible with P_ALL, so stop here: its owner reaps it and the
            // next SIGCHLD brings us back.
            return reaped;
        }
        int status = 0;
        if (::waitpid(info.si_pid, &status, WNOHANG) > 0) ++reaped;
    }
}

awaitable<void> reaper_task::run()
{
    const auto ex = co_await asio::this_coro::executor;
    asio::signal_set chld(ex, SIGCHLD);
    for (;;) {
        if (const int n = reap_exited(d_.keep_now ? d_.keep_now() : d_.keep); n > 0)
            d_.log.debug("reaper.reaped", {{"count", n}});
        co_await chld.async_wait(use_awaitable);  // cancellation ends the task here
    }
}

}  // namespace tether::app
