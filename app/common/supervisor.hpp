// The task runtime: one io_context, named coroutine tasks on strands, one
// cancellation path wired to SIGINT/SIGTERM, a bounded drain.
#pragma once

#include "app/common/exit_status.hpp"
#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "base/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <list>
#include <optional>
#include <string>

namespace tether::app {

/// What the supervisor does when a task ends.
struct task_policy {
    /// When the task throws (anything but `fatal_exit`, which always stops
    /// the process with its status).
    enum class on_failure { stop_process, restart } failure = on_failure::stop_process;
    /// When the task returns normally before a stop was requested.
    enum class on_return { keep_others, stop_process } returned = on_return::keep_others;
    /// Restart delays (full jitter) for on_failure::restart.
    backoff::policy restart_backoff{};
};

struct supervisor_options {
    unsigned threads = 1;
    std::chrono::milliseconds drain{10'000};
    /// Signals that mean "stop": SIGINT and SIGTERM in production. Tests that
    /// drive `request_stop` directly may turn them off.
    bool handle_signals = true;
    /// If a task keeps the io_context thread itself blocked past the drain,
    /// nothing inside the loop can run; a watchdog thread then ends the
    /// process with _Exit after `drain + hard_exit_grace`.
    bool hard_exit_watchdog = true;
    std::chrono::milliseconds hard_exit_grace{2'000};
};

/// Owns the io_context and every long-lived task.
///
/// Usage: construct, `add` tasks, `run()` (blocks, returns the exit status).
/// Objects the tasks reference must be declared before the supervisor so
/// they outlive the io_context, whose destructor destroys abandoned frames.
///
/// Each task runs on its own strand with its own cancellation signal; a stop
/// (signal, `request_stop`, a `fatal_exit`, a failing stop_process task)
/// emits terminal cancellation to every task on that task's strand, then
/// waits at most `drain` for them to finish. Tasks that are still running
/// then are named in a `supervisor.drain_timeout` error log line, abandoned,
/// and the process status becomes `failure`.
///
/// Thread safety: `add` before `run` only; `request_stop` from anywhere.
class supervisor {
public:
    using task_body = std::function<awaitable<void>()>;

    supervisor(const log::logger& log, supervisor_options opts = {});
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;
    ~supervisor();

    [[nodiscard]] asio::io_context& context() noexcept { return ioc_; }

    /// Registers a task; it starts when `run` is called. `body` is called again
    /// for each restart, so it must not capture state a previous run consumed.
    void add(std::string name, task_body body, task_policy policy = {});

    /// Runs until every task ended or a stop has drained; returns the status.
    int run();

    /// Asks every task to stop; the first status requested wins.
    void request_stop(exit_status status, std::string reason);

private:
    struct task {
        task(std::string n, task_body b, task_policy p, asio::strand<asio::io_context::executor_type> s)
            : name(std::move(n)), body(std::move(b)), policy(p), strand(std::move(s))
        {
        }
        std::string name;
        task_body body;
        task_policy policy;
        asio::strand<asio::io_context::executor_type> strand;
        asio::cancellation_signal cancel;
        bool running = false;
    };

    void start(task& t);
    void on_task_done(task& t, std::exception_ptr e);
    void stop_on_strand(exit_status status, std::string reason);
    void finish_if_idle();
    awaitable<void> supervise(task& t);
    void start_watchdog();
    void arm_timer_floor();

    // Exposes execution_context::shutdown so the destructor can destroy
    // abandoned coroutine frames while the strands and cancellation signals
    // they point at still exist.
    struct owned_context : asio::io_context {
        using asio::io_context::io_context;
        using asio::io_context::shutdown;
    };

    // Declared first, destroyed last: strands and timers must die before it.
    owned_context ioc_;
    const log::logger& log_;
    supervisor_options opts_;
    asio::strand<asio::io_context::executor_type> strand_;
    asio::signal_set signals_;
    asio::steady_timer drain_timer_;
    // Always pending, at most a second ahead: see arm_timer_floor.
    asio::steady_timer timer_floor_;
    bool idle_ = false;
    std::list<task> tasks_;  // std::list: cancellation signals must never move
    uniform01 random_ = process_random();

    bool stopping_ = false;
    std::optional<exit_status> status_;

    struct watchdog;
    std::unique_ptr<watchdog> watchdog_;
};

}  // namespace tether::app
