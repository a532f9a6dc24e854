#include "app/agent/tasks/dispatch_task.hpp"

#include "app/common/exit_status.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>

namespace tether::app {

std::size_t event_type_index(std::string_view type) noexcept
{
    for (std::size_t i = 0; i + 1 < event_type_labels.size(); ++i)
        if (event_type_labels[i] == type) return i;
    return event_type_labels.size() - 1;
}

dispatch_task::dispatch_task(deps d) : d_(std::move(d)), wake_(d_.ex, 1)
{
    if (d_.capacity == 0) throw std::invalid_argument("dispatch_task capacity must be > 0");
}

void dispatch_task::on(std::string type, std::string name, handler h)
{
    handlers_.push_back({std::move(type), std::move(name), std::move(h)});
}

void dispatch_task::post(net::sse_event e)
{
    bool dropped = false;
    {
        const std::lock_guard lock(mutex_);
        if (queue_.size() >= d_.capacity) {
            queue_.pop_front();
            dropped = true;
        }
        queue_.push_back({next_seq_++, std::move(e)});
        d_.stats.depth = static_cast<std::int64_t>(queue_.size());
    }
    if (dropped) {
        // Counted always, logged at the first and every 100th so a flood
        // cannot turn into a log flood.
        const auto n = ++d_.stats.overflow_dropped;
        if (n == 1 || n % 100 == 0)
            d_.log.warn("dispatch.overflow", {{"dropped_total", n}, {"capacity", d_.capacity}});
    }
    (void)wake_.try_send(error_code{});  // full: a wake-up is already pending
}

std::chrono::milliseconds dispatch_task::retry_delay(unsigned attempt)
{
    // Half jitter, not backoff's full jitter: a retry never comes at once.
    const auto ceiling = backoff::ceiling_after(d_.retry, attempt > 0 ? attempt - 1 : 0);
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(ceiling.count()) * (0.5 + 0.5 * d_.rand())));
}

void dispatch_task::schedule_retry(std::size_t index, unsigned attempt, const queued& q)
{
    const auto delay = retry_delay(attempt);
    d_.log.warn("dispatch.retry_scheduled", {{"handler", handlers_[index].name},
                                             {"type", q.event.type},
                                             {"attempt", attempt},
                                             {"delay_ms", delay.count()}});
    retries_.emplace(clock::now() + delay, retry{index, attempt, q});
}

awaitable<bool> dispatch_task::invoke(registered& h, const queued& q)
{
    bool ok = false;
    try {
        const auto ec = co_await h.fn(q.event);
        ok = !ec;
        if (ec)
            d_.log.warn("dispatch.handler_failed",
                        {{"handler", h.name}, {"type", q.event.type}, {"error", ec.message()}});
    } catch (const fatal_exit&) {
        throw;
    } catch (const std::exception& e) {
        d_.log.warn("dispatch.handler_failed",
                    {{"handler", h.name}, {"type", q.event.type}, {"error", e.what()}});
    }
    if (!ok) {
        ++d_.stats.failures;
        co_return false;
    }
    h.last_success_seq = std::max(h.last_success_seq, q.seq);
    // Retries of this handler for older events would replay stale state.
    const auto index = static_cast<std::size_t>(&h - handlers_.data());
    for (auto it = retries_.begin(); it != retries_.end();) {
        if (it->second.handler == index && it->second.item.seq < q.seq) {
            ++d_.stats.stale_retries_dropped;
            it = retries_.erase(it);
        } else {
            ++it;
        }
    }
    co_return true;
}

awaitable<void> dispatch_task::run()
{
    using namespace asio::experimental::awaitable_operators;
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto cs = co_await asio::this_coro::cancellation_state;
    const auto ex = co_await asio::this_coro::executor;
    timer due{ex};
    for (;;) {
        if (cs.cancelled() != asio::cancellation_type::none) co_return;

        if (!retries_.empty() && retries_.begin()->first <= clock::now()) {
            auto node = retries_.extract(retries_.begin());
            const retry r = std::move(node.mapped());
            ++d_.stats.retries;
            const bool ok = co_await invoke(handlers_[r.handler], r.item);
            if (!ok) schedule_retry(r.handler, r.attempt + 1, r.item);
            continue;
        }

        std::optional<queued> next;
        {
            const std::lock_guard lock(mutex_);
            if (!queue_.empty()) {
                next = std::move(queue_.front());
                queue_.pop_front();
            }
            d_.stats.depth = static_cast<std::int64_t>(queue_.size());
        }
        if (next) {
            ++d_.stats.handled;
            for (std::size_t i = 0; i < handlers_.size(); ++i) {
                if (handlers_[i].type != next->event.type) continue;
                const bool ok = co_await invoke(handlers_[i], *next);
                if (!ok) schedule_retry(i, 1, *next);
            }
            continue;
        }

        if (retries_.empty()) {
            auto [ec] = co_await wake_.async_receive(nothrow);
            (void)ec;  // cancelled or woken: the loop head decides
        } else {
            due.expires_at(retries_.begin()->first);
            auto woke = co_await (wake_.async_receive(nothrow) || due.async_wait());
            (void)woke;
        }
    }
}

}  // namespace tether::app
