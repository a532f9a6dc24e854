// Hands stream events to the handlers registered for their type, in arrival
// order, on one strand; retries a failed handler alone, by due time, and
// drops a retry that a newer success of the same handler made stale.
#pragma once

#include "app/agent/metrics.hpp"
#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "base/log.hpp"
#include "net/sse_parser.hpp"

#include <boost/asio/experimental/concurrent_channel.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tether::app {

class dispatch_task {
public:
    struct deps {
        asio::any_io_executor ex;
        dispatch_stats& stats;
        const log::logger& log;
        uniform01 rand;
        std::size_t capacity = 1024;  ///< queued events; overflow drops the oldest
        /// Retry n of a handler waits min(cap, base * 2^(n-1)) scaled by a
        /// random factor in [0.5, 1): jittered, never a hot loop.
        backoff::policy retry{std::chrono::seconds(1), std::chrono::seconds(60)};
    };

    /// A failed handler returns an error (or throws anything but fatal_exit,
    /// which ends the process as usual).
    using handler = std::function<awaitable<error_code>(const net::sse_event&)>;

    explicit dispatch_task(deps d);

    /// Before `run` only. Handlers of one type run in registration order.
    void on(std::string type, std::string name, handler h);

    /// Thread-safe; never blocks on handlers.
    void post(net::sse_event e);

    /// Runs until cancelled.
    awaitable<void> run();

private:
    using clock = std::chrono::steady_clock;
    struct registered {
        std::string type;
        std::string name;
        handler fn;
        std::uint64_t last_success_seq = 0;
    };
    struct queued {
        std::uint64_t seq = 0;
        net::sse_event event;
    };
    struct retry {
        std::size_t handler = 0;
        unsigned attempt = 0;
        queued item;
    };

    awaitable<bool> invoke(registered& h, const queued& q);
    void schedule_retry(std::size_t index, unsigned attempt, const queued& q);
    std::chrono::milliseconds retry_delay(unsigned attempt);

    deps d_;
    std::vector<registered> handlers_;

    std::mutex mutex_;  // guards queue_ and next_seq_ (post may come from any thread)
    std::deque<queued> queue_;
    std::uint64_t next_seq_ = 1;
    // One pending wake-up is enough: the loop drains the whole queue.
    asio::experimental::concurrent_channel<void(error_code)> wake_;

    std::multimap<clock::time_point, retry> retries_;  // dispatcher strand only
};

}  // namespace tether::app
