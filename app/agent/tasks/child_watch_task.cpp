#include "app/agent/tasks/child_watch_task.hpp"

#include "app/agent/child_process.hpp"
#include "app/agent/tasks/reaper_task.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <functional>
#include <system_error>

namespace tether::app {

awaitable<void> child_watch_task::run()
{
    const pid_t pid = d_.pid;
    const auto& log = d_.log;
    const auto ex = co_await asio::this_coro::executor;
    const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0) throw std::system_error(errno, std::generic_category(), "pidfd_open");
    asio::posix::stream_descriptor exited(ex, pfd);
    asio::signal_set signals(ex, SIGINT, SIGTERM);
    signals.add(SIGHUP);
    signals.add(SIGQUIT);
    std::function<void(error_code, int)> forward = [&](error_code ec, int signo) {
        if (ec) return;
        log.info("exec.forward_signal", {{"signal", signo}, {"pid", pid}});
        ::kill(pid, signo);
        signals.async_wait(forward);
    };
    signals.async_wait(forward);
    // Blocked since before the spawn; one that came meanwhile is pending and
    // arrives now, at the handler above.
    const sigset_t forwarded = forwarded_signals();
    ::pthread_sigmask(SIG_UNBLOCK, &forwarded, nullptr);
    auto [ec] = co_await exited.async_wait(asio::posix::stream_descriptor::wait_read, nothrow);
    signals.cancel();
    if (ec) {
        // Cancelled (drain): the child outlives us only if it ignores this.
        ::kill(pid, SIGTERM);
        co_return;
    }
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {}
    d_.exit_code = status_code(wstatus);
    reap_exited(-1);
    log.info("exec.child_exited", {{"pid", pid}, {"status", *d_.exit_code}});
    d_.sup.request_stop(exit_status::ok, "the child exited");
}

}  // namespace tether::app
