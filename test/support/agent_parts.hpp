// The agent's long-lived pieces (session, config store, sync, dispatcher,
// metrics) wired as `tether run` wires them, against any gateway URL, so a
// test can run exactly the tasks it is about.
#pragma once

#include "app/agent/event_handlers.hpp"
#include "app/agent/metrics.hpp"
#include "app/agent/tasks/config_sync_task.hpp"
#include "app/agent/tasks/dispatch_task.hpp"
#include "app/agent/tasks/heartbeat_task.hpp"
#include "app/agent/tasks/realtime_task.hpp"
#include "app/common/supervisor.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "base/exceptions.hpp"
#include "settings/config_store.hpp"
#include "support/child_process.hpp"
#include "support/log_capture.hpp"
#include "support/run_for.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <list>

namespace tether::test {

struct agent_parts {
    /// `dispatch_retry` is the dispatch task's retry policy.
    agent_parts(asio::io_context& ioc, const net::url& server, auth::node_state st, secret key_pem,
                backoff::policy dispatch_retry = {std::chrono::seconds(1), std::chrono::seconds(60)})
        : ioc_(ioc),
          server_(server),
          paths{dir.path()},
          store(ioc.get_executor(), settings::load_config_file(paths.config_file(), logs.logger())),
          session(ioc.get_executor(), blocking.get_executor(), server, nullptr, paths, st, std::move(key_pem),
                  logs.logger()),
          sync({ioc.get_executor(), store, session, server, nullptr, paths, blocking.get_executor(), metrics,
                logs.logger(), rand}),
          dispatch({ioc.get_executor(), metrics.dispatch, logs.logger(), rand, 1024, dispatch_retry})
    {
        app::add_agent_handlers(dispatch, sync, st.node_id,
                                app::confirm_with_gateway(session, server, nullptr), logs.logger());
    }

    ~agent_parts()
    {
        stop();
        blocking.join();
    }

    /// Starts one task; `failure` gets what ended it (null on a clean end).
    void start(awaitable<void> task, std::string name = "task")
    {
        auto& t = tasks_.emplace_back();
        t.name = std::move(name);
        asio::co_spawn(ioc_, std::move(task),
                       asio::bind_cancellation_slot(t.stop.slot(), [&t](std::exception_ptr e) {
                           t.done = true;
                           t.error = tether::is_cancellation(e) ? nullptr : e;  // a stop is a clean end
                       }));
    }
    void start_sync() { start(sync.run(), "config-sync"); }
    void start_dispatcher() { start(dispatch.run(), "dispatcher"); }
    void start_realtime(net::sse_options opts)
    {
        if (opts.candidates.empty()) opts.candidates = app::realtime_candidates(server_, {});
        auto& t = realtime_.emplace_back(app::realtime_task::deps{
            std::move(opts), session, server_, nullptr, dispatch, sync, metrics, logs.logger(), rand});
        start(t.run(), "realtime");
    }
    /// `bounds` replaces the production clamp ([5 s, 1 h]) so a test can beat
    /// every few milliseconds.
    void start_heartbeats(std::chrono::milliseconds interval,
                          settings::interval_bounds bounds = settings::heartbeat_interval_bounds)
    {
        auto& t = heartbeats_.emplace_back(app::heartbeat_task::deps{session,
                                                                     server_,
                                                                     nullptr,
                                                                     store,
                                                                     sync,
                                                                     metrics,
                                                                     logs.logger(),
                                                                     rand,
                                                                     interval,
                                                                     "test",
                                                                     {},
                                                                     bounds});
        start(t.run(), "heartbeat");
    }

    /// The first exception a task ended with, if any.
    std::exception_ptr failure() const
    {
        for (const auto& t : tasks_)
            if (t.error) return t.error;
        return nullptr;
    }
    bool any_done() const
    {
        for (const auto& t : tasks_)
            if (t.done) return true;
        return false;
    }

    void stop()
    {
        for (auto& t : tasks_)
            if (!t.done) t.stop.emit(asio::cancellation_type::terminal);
        const bool stopped = poll_until(
            ioc_,
            [this] {
                for (const auto& t : tasks_)
                    if (!t.done) return false;
                return true;
            },
            std::chrono::seconds(10));
        if (!stopped) {
            std::string which;
            for (const auto& t : tasks_)
                if (!t.done) which += " " + t.name;
            BOOST_ERROR("agent tasks did not stop on cancellation:" + which + "\n" + logs.all());
        }
    }

    temp_dir dir;
    asio::thread_pool blocking{1};
    log_capture logs;
    app::agent_metrics metrics;
    tether::uniform01 rand = [] {
        return 0.01;
    };  // first beat and backoffs near their start

private:
    asio::io_context& ioc_;
    net::url server_;

public:
    auth::state_paths paths;
    settings::config_store store;
    auth::session_manager session;
    app::config_sync_task sync;
    app::dispatch_task dispatch;

private:
    struct running {
        asio::cancellation_signal stop;
        std::string name;
        bool done = false;
        std::exception_ptr error;
    };
    std::list<running> tasks_;
    // Tasks started by start_*: they outlive their coroutines (declared
    // after what they reference).
    std::list<app::heartbeat_task> heartbeats_;
    std::list<app::realtime_task> realtime_;
};

}  // namespace tether::test
