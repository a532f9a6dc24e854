#include "app/event_dispatcher.hpp"

#include "app/exit_status.hpp"

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

event_dispatcher::event_dispatcher(asio::any_io_executor ex, dispatcher_options opts, net::uniform01 rand,
                                   dispatch_stats& stats, const log::logger& log)
    : opts_(opts), rand_(std::move(rand)), stats_(stats), log_(log), wake_(std::move(ex), 1)
{
    if (opts_.capacity == 0) throw std::invalid_argument("event_dispatcher capacity must be > 0");
}

void event_dispatcher::on(std::string type, std::string name, handler h)
{
    handlers_.push_back({std::move(type), std::move(name), std::move(h)});
}

void event_dispatcher::post(net::sse_event e)
{
    bool dropped = false;
    {
        const std::lock_guard lock(mutex_);
        if (queue_.size() >= opts_.capacity) {
            queue_.pop_front();
            dropped = true;
        }
        queue_.push_back({next_seq_++, std::move(e)});
        stats_.depth = static_cast<std::int64_t>(queue_.size());
    }
    if (dropped) {
        // Counted always, logged at the first and every 100th so a flood
        // cannot turn into a log flood.
        const auto n = ++stats_.overflow_dropped;
        if (n == 1 || n % 100 == 0)
            log_.warn("dispatch.overflow", {{"dropped_total", n}, {"capacity", opts_.capacity}});
    }
    (void)wake_.try_send(error_code{});  // full: a wake-up is already pending
}

std::chrono::milliseconds event_dispatcher::retry_delay(unsigned attempt)
{
    const auto base = std::max<std::int64_t>(opts_.retry.base.count(), 1);
    const auto cap = std::max<std::int64_t>(opts_.retry.cap.count(), base);
    std::int64_t ceiling = base;
    for (unsigned i = 1; i < attempt && ceiling < cap; ++i) ceiling *= 2;
    ceiling = std::min(ceiling, cap);
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(ceiling) * (0.5 + 0.5 * rand_())));
}

void event_dispatcher::schedule_retry(std::size_t index, unsigned attempt, const queued& q)
{
    const auto delay = retry_delay(attempt);
    log_.warn("dispatch.retry_scheduled", {{"handler", handlers_[index].name},
                                           {"type", q.event.type},
                                           {"attempt", attempt},
                                           {"delay_ms", delay.count()}});
    retries_.emplace(clock::now() + delay, retry{index, attempt, q});
}

awaitable<bool> event_dispatcher::invoke(registered& h, const queued& q)
{
    bool ok = false;
    try {
        const auto ec = co_await h.fn(q.event);
        ok = !ec;
        if (ec)
            log_.warn("dispatch.handler_failed",
                      {{"handler", h.name}, {"type", q.event.type}, {"error", ec.message()}});
    } catch (const fatal_exit&) {
        throw;
    } catch (const std::exception& e) {
        log_.warn("dispatch.handler_failed",
                  {{"handler", h.name}, {"type", q.event.type}, {"error", e.what()}});
    }
    if (!ok) {
        ++stats_.failures;
        co_return false;
    }
    h.last_success_seq = std::max(h.last_success_seq, q.seq);
    // Retries of this handler for older events would replay stale state.
    const auto index = static_cast<std::size_t>(&h - handlers_.data());
    for (auto it = retries_.begin(); it != retries_.end();) {
        if (it->second.handler == index && it->second.item.seq < q.seq) {
            ++stats_.stale_retries_dropped;
            it = retries_.erase(it);
        } else {
            ++it;
        }
    }
    co_return true;
}

awaitable<void> event_dispatcher::run()
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
            ++stats_.retries;
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
            stats_.depth = static_cast<std::int64_t>(queue_.size());
        }
        if (next) {
            ++stats_.handled;
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
