#include "base/task_group.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

namespace tether {

task_group::task_group(asio::any_io_executor home) : home_(home), ended_(home) {}

void task_group::spawn(asio::any_io_executor ex, awaitable<void> op, on_end done)
{
    auto& m = members_.emplace_back(std::make_shared<member>(ex));
    const auto it = std::prev(members_.end());
    // The completion runs on `ex` without bind_executor (co_spawn's
    // default): one executor fewer in a frame every connection keeps.
    auto finished = [this, it, done = std::move(done)](const std::exception_ptr& e) mutable {
        asio::post(home_, [this, it, e, done = std::move(done)] {
            if (done) done(e);
            members_.erase(it);
            ended_.cancel();
        });
    };
    asio::co_spawn(ex, std::move(op), asio::bind_cancellation_slot(m->cancel.slot(), std::move(finished)));
}

void task_group::stop()
{
    // Each posted emit holds its member: it may end (and leave the list)
    // before the emit runs.
    for (const auto& m : members_)
        asio::post(m->ex, [m] { m->cancel.emit(asio::cancellation_type::terminal); });
}

awaitable<void> task_group::join()
{
    while (!members_.empty()) {
        ended_.expires_at(timer::time_point::max());
        auto [ec] = co_await ended_.async_wait();
        (void)ec;
    }
}

}  // namespace tether
