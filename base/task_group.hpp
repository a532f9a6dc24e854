// Child coroutines that end together: each runs on an executor of its own
// (a connection's strand) with its own cancellation signal; `stop` cancels
// them all and `join` waits for the last. The HTTP server's connections and
// the credential broker's streams are both one.
#pragma once

#include "base/asio.hpp"

#include <boost/asio/cancellation_signal.hpp>

#include <exception>
#include <functional>
#include <list>
#include <memory>

namespace tether {

/// Thread safety: every member function is called on the group's executor
/// (the owner's strand); members run wherever they were spawned. The group
/// must outlive its members: `join` before destroying it.
class task_group {
public:
    using on_end = std::function<void(std::exception_ptr)>;

    explicit task_group(asio::any_io_executor home);
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// Starts `op` on `ex`. `done` runs on the group's executor once `op` has
    /// ended, with what it threw (null when it returned).
    void spawn(asio::any_io_executor ex, awaitable<void> op, on_end done = {});

    [[nodiscard]] std::size_t size() const noexcept { return members_.size(); }

    /// Terminal cancellation to every running member, on its own executor.
    void stop();

    /// Returns once no member is running.
    awaitable<void> join();

private:
    struct member {
        explicit member(asio::any_io_executor e) : ex(std::move(e)) {}
        asio::any_io_executor ex;
        asio::cancellation_signal cancel;
    };

    asio::any_io_executor home_;
    std::list<std::shared_ptr<member>> members_;
    timer ended_;  // a condition variable: cancelled when a member ends
};

}  // namespace tether
