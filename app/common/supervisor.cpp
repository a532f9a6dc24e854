#include "app/common/supervisor.hpp"

#include "base/exceptions.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/array.hpp>

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace tether::app {

namespace {

const char* signal_name(int signo)
{
    switch (signo) {
        case SIGINT:
            return "SIGINT";
        case SIGTERM:
            return "SIGTERM";
        default:
            return "signal";
    }
}

}  // namespace

struct supervisor::watchdog {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread thread;
};

supervisor::supervisor(const log::logger& log, supervisor_options opts)
    : ioc_(static_cast<int>(opts.threads == 0 ? 1 : opts.threads)),
      log_(log),
      opts_(opts),
      strand_(asio::make_strand(ioc_)),
      signals_(ioc_),
      drain_timer_(ioc_),
      timer_floor_(ioc_)
{
    if (opts_.threads == 0) opts_.threads = 1;
    // Installed at construction, before any task can block, so a signal that
    // arrives during start-up is a stop request rather than a default kill.
    if (opts_.handle_signals) {
        signals_.add(SIGINT);
        signals_.add(SIGTERM);
    }
}

supervisor::~supervisor()
{
    if (watchdog_) {
        {
            const std::lock_guard lock(watchdog_->m);
            watchdog_->done = true;
        }
        watchdog_->cv.notify_all();
        if (watchdog_->thread.joinable()) watchdog_->thread.join();
    }
    ioc_.shutdown();
}

void supervisor::add(std::string name, task_body body, task_policy policy)
{
    tasks_.emplace_back(std::move(name), std::move(body), policy, asio::make_strand(ioc_));
}

int supervisor::run()
{
    if (opts_.handle_signals) {
        signals_.async_wait(asio::bind_executor(strand_, [this](error_code ec, int signo) {
            if (ec) return;
            log_.info("supervisor.signal", {{"signal", signal_name(signo)}});
            stop_on_strand(exit_status::ok, signal_name(signo));
        }));
    }
    asio::post(strand_, [this] {
        boost::json::array names;
        for (auto& t : tasks_) names.emplace_back(t.name);
        log_.debug("supervisor.start", {{"tasks", names}, {"threads", opts_.threads}});
        // A stop requested before run() means nothing starts at all.
        if (!stopping_)
            for (auto& t : tasks_) start(t);
        arm_timer_floor();
        finish_if_idle();
    });

    std::vector<std::thread> extra;
    for (unsigned i = 1; i < opts_.threads; ++i) extra.emplace_back([this] { ioc_.run(); });
    ioc_.run();
    for (auto& th : extra) th.join();
    if (opts_.handle_signals) {
        // The process is on its way out (closing stores, flushing the log).
        // A terminal's Ctrl-C reaches every process of its group and a
        // script around us often follows it with SIGTERM: the signal_set
        // letting go would give that second signal its default action, and
        // a clean drain would end as "killed by SIGTERM" (143). Ignored from
        // here to the end; children are always spawned with both reset.
        error_code ignored;
        signals_.clear(ignored);
        std::signal(SIGINT, SIG_IGN);
        std::signal(SIGTERM, SIG_IGN);
    }
    if (watchdog_) {
        const std::lock_guard lock(watchdog_->m);
        watchdog_->done = true;
        watchdog_->cv.notify_all();
    }
    return to_int(status_.value_or(exit_status::ok));
}

void supervisor::request_stop(exit_status status, std::string reason)
{
    asio::post(strand_, [this, status, reason = std::move(reason)]() mutable {
        stop_on_strand(status, std::move(reason));
    });
}

void supervisor::start(task& t)
{
    t.running = true;
    // The completion is bound to the task's own strand: co_spawn dispatches
    // cancellation to the completion's executor, and it must land where the
    // task runs. Bookkeeping then hops to the supervisor strand.
    asio::co_spawn(t.strand, supervise(t),
                   asio::bind_cancellation_slot(
                       t.cancel.slot(), asio::bind_executor(t.strand, [this, &t](std::exception_ptr e) {
                           asio::post(strand_, [this, &t, e] { on_task_done(t, e); });
                       })));
}

awaitable<void> supervisor::supervise(task& t)
{
    auto cs = co_await asio::this_coro::cancellation_state;
    backoff delays{t.policy.restart_backoff, random_};
    for (;;) {
        std::exception_ptr failure;
        try {
            co_await t.body();
            co_return;
        } catch (const fatal_exit&) {
            throw;
        } catch (...) {
            failure = std::current_exception();
        }
        if (t.policy.failure != task_policy::on_failure::restart ||
            cs.cancelled() != asio::cancellation_type::none)
            std::rethrow_exception(failure);
        const auto delay = delays.next();
        log_.warn("task.restart",
                  {{"task", t.name}, {"error", describe(failure)}, {"delay_ms", delay.count()}});
        const auto ex_pause =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        timer pause{ex_pause, delay};
        co_await pause.async_wait();
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
    }
}

void supervisor::on_task_done(task& t, std::exception_ptr e)
{
    t.running = false;
    if (!e) {
        log_.info("task.finished", {{"task", t.name}});
        if (!stopping_ && t.policy.returned == task_policy::on_return::stop_process)
            stop_on_strand(exit_status::ok, "task " + t.name + " finished");
    } else {
        try {
            std::rethrow_exception(e);
        } catch (const fatal_exit& f) {
            const auto lvl = f.status == exit_status::ok ? log::level::info : log::level::error;
            log_.write(lvl, "task.exit",
                       {{"task", t.name}, {"status", to_int(f.status)}, {"reason", f.what()}});
            stop_on_strand(f.status, f.what());
        } catch (...) {
            if (stopping_ && is_cancellation(e)) {
                log_.info("task.stopped", {{"task", t.name}});
            } else if (stopping_) {
                log_.warn("task.failed_while_stopping", {{"task", t.name}, {"error", describe(e)}});
            } else {
                log_.error("task.failed", {{"task", t.name}, {"error", describe(e)}});
                stop_on_strand(exit_status::failure, "task " + t.name + " failed");
            }
        }
    }
    finish_if_idle();
}

void supervisor::stop_on_strand(exit_status status, std::string reason)
{
    if (!status_) status_ = status;
    if (stopping_) return;
    stopping_ = true;
    log_.info("supervisor.stop", {{"reason", reason}, {"drain_ms", opts_.drain.count()}});
    signals_.cancel();
    for (auto& t : tasks_) {
        if (!t.running) continue;
        asio::post(t.strand, [&t] { t.cancel.emit(asio::cancellation_type::terminal); });
    }
    drain_timer_.expires_after(opts_.drain);
    drain_timer_.async_wait(asio::bind_executor(strand_, [this](error_code ec) {
        if (ec) return;
        boost::json::array stuck;
        for (const auto& t : tasks_)
            if (t.running) stuck.emplace_back(t.name);
        if (stuck.empty()) return;
        log_.error("supervisor.drain_timeout", {{"tasks", stuck}, {"drain_ms", opts_.drain.count()}});
        if (status_ == exit_status::ok) status_ = exit_status::failure;
        ioc_.stop();  // abandon them: their frames die with the io_context
    }));
    start_watchdog();
    finish_if_idle();
}

void supervisor::finish_if_idle()
{
    for (const auto& t : tasks_)
        if (t.running) return;
    if (!stopping_) {
        stopping_ = true;
        if (!status_) status_ = exit_status::ok;
    }
    // Nothing left to wait for: dropping these leaves the io_context without
    // work, so run() returns on its own (no io_context::stop on this path).
    signals_.cancel();
    drain_timer_.cancel();
    idle_ = true;
    timer_floor_.cancel();
}

// Asio's epoll reactor calls timerfd_settime whenever a timer it is given
// is the earliest it has. Operations with a timeout arm one each (Beast's
// stream expiry, the broker's upstream wait): deadlines 10-30 s ahead, and
// when nothing shorter is pending every one of them is the earliest, so a
// brokered request paid four timerfd_settime calls. With this timer always
// pending less than a second ahead, none of those is ever the earliest: a
// few calls a second in all (bench/broker, docs/benchmarks.md).
void supervisor::arm_timer_floor()
{
    if (idle_) return;
    timer_floor_.expires_after(std::chrono::seconds(1));
    timer_floor_.async_wait(asio::bind_executor(strand_, [this](error_code ec) {
        if (!ec) arm_timer_floor();
    }));
}

void supervisor::start_watchdog()
{
    if (!opts_.hard_exit_watchdog || watchdog_) return;
    watchdog_ = std::make_unique<watchdog>();
    const auto deadline = std::chrono::steady_clock::now() + opts_.drain + opts_.hard_exit_grace;
    const int code = to_int(status_ == exit_status::ok ? exit_status::failure : *status_);
    watchdog_->thread = std::thread([w = watchdog_.get(), deadline, code, &log = log_] {
        std::unique_lock lock(w->m);
        if (w->cv.wait_until(lock, deadline, [w] { return w->done; })) return;
        log.error("supervisor.hard_exit",
                  {{"reason", "the event loop did not return after the drain; a task blocks its thread"}});
        log.flush(std::chrono::milliseconds(500));
        std::_Exit(code);
    });
}

}  // namespace tether::app
