#include "app/agent/tasks/child_watch_task.hpp"

#include "app/agent/child_process.hpp"
#include "app/agent/tasks/reaper_task.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace tether::app {

bool child_watch_task::signal_child(int signo) noexcept
{
    // A child that exited stays a zombie, its pid not reused, until run()
    // reaps it, and run() clears pid_ first.
    const pid_t pid = pid_.load();
    return pid > 0 && ::kill(pid, signo) == 0;
}

awaitable<void> child_watch_task::run()
{
    using namespace asio::experimental::awaitable_operators;
    const auto& log = d_.log;
    const auto ex = co_await asio::this_coro::executor;
    const auto cs = co_await asio::this_coro::cancellation_state;
    asio::signal_set signals(ex, SIGINT, SIGTERM);
    signals.add(SIGHUP);
    signals.add(SIGQUIT);
    std::function<void(error_code, int)> forward = [&](error_code ec, int signo) {
        if (ec) return;
        if (signal_child(signo)) {
            log.info("exec.forward_signal", {{"signal", signo}, {"pid", pid_.load()}});
        } else if (signo != SIGHUP) {
            // Nothing to pass it on to (still waiting for a config): a stop.
            d_.sup.request_stop(exit_status::ok, "signal " + std::to_string(signo) + " before the child ran");
        }
        signals.async_wait(forward);
    };
    signals.async_wait(forward);
    // Blocked since before the supervisor's threads started; one that came
    // meanwhile is pending and arrives now, at the handler above.
    const sigset_t forwarded = forwarded_signals();
    ::pthread_sigmask(SIG_UNBLOCK, &forwarded, nullptr);
    if (d_.before_start) {
        co_await d_.before_start();
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
    }
    for (bool first = true;; first = false) {
        const pid_t pid = first && d_.first > 0 ? d_.first : d_.spawn();
        const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        if (pfd < 0) throw std::system_error(errno, std::generic_category(), "pidfd_open");
        asio::posix::stream_descriptor exited(ex, pfd);
        collecting_ = pid;
        pid_ = pid;
        const auto woke = co_await (exited.async_wait(asio::posix::stream_descriptor::wait_read, nothrow) ||
                                    restart_.async_receive(nothrow));
        if (cs.cancelled() != asio::cancellation_type::none) {
            // A drain: the child outlives us only if it ignores this.
            ::kill(pid, SIGTERM);
            signals.cancel();
            co_return;
        }
        if (woke.index() == 1) {
            // Restart: ask, then insist.
            log.info("exec.child_stopping", {{"pid", pid}, {"signal", d_.kill_signal}});
            ::kill(pid, d_.kill_signal);
            timer patience{ex, d_.kill_timeout};
            const auto gone =
                co_await (exited.async_wait(asio::posix::stream_descriptor::wait_read, nothrow) ||
                          patience.async_wait(nothrow));
            if (gone.index() == 1) {
                log.warn("exec.child_killed", {{"pid", pid}, {"after_ms", d_.kill_timeout.count()}});
                ::kill(pid, SIGKILL);
                co_await exited.async_wait(asio::posix::stream_descriptor::wait_read, nothrow);
            }
        }
        pid_ = -1;
        int wstatus = 0;
        while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {}
        collecting_ = -1;
        if (woke.index() == 1 && cs.cancelled() == asio::cancellation_type::none) {
            ++restarts_;
            log.info("exec.child_restarting", {{"pid", pid}, {"status", status_code(wstatus)}});
            continue;
        }
        signals.cancel();
        d_.exit_code = status_code(wstatus);
        reap_exited(-1);
        log.info("exec.child_exited", {{"pid", pid}, {"status", *d_.exit_code}});
        d_.sup.request_stop(exit_status::ok, "the child exited");
        co_return;
    }
}

}  // namespace tether::app
