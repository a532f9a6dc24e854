#include "gateway/event_hub.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

namespace tether::gateway {

std::string format_event(const event_record& e)
{
    std::string out;
    if (e.id > 0) out += "id: " + std::to_string(e.id) + "\n";
    out += "event: " + e.type + "\n";
    std::size_t start = 0;
    for (;;) {
        const auto nl = e.data.find('\n', start);
        out +=
            "data: " + e.data.substr(start, nl == std::string::npos ? std::string::npos : nl - start) + "\n";
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    out += "\n";
    return out;
}

subscription::subscription(event_hub& hub, std::string org_id, std::string node_id, std::string ip,
                           asio::any_io_executor strand)
    : hub_(hub),
      org_id_(std::move(org_id)),
      node_id_(std::move(node_id)),
      ip_(std::move(ip)),
      strand_(strand),
      wake_(strand, asio::steady_timer::time_point::max()),
      evict_(strand, asio::steady_timer::time_point::max())
{
}

subscription::~subscription()
{
    hub_.release(this);
}

std::int64_t subscription::close_after() const
{
    const std::lock_guard lock(m_);
    return close_after_;
}

void subscription::push(const event_record& e, std::size_t limit)
{
    {
        const std::lock_guard lock(m_);
        if (state_ != state::open) return;
        if (queue_.size() >= limit) {
            // A consumer this far behind would make the publisher wait or
            // memory grow; dropping it keeps everyone else on time.
            state_ = state::evicted;
            queue_.clear();
        } else {
            queue_.push_back(e);
        }
    }
    wake();
}

void subscription::close_after(std::int64_t id)
{
    {
        const std::lock_guard lock(m_);
        close_after_ = id;
    }
    wake();
}

void subscription::wake()
{
    // The timer belongs to the connection's strand: cancel it there. The
    // weak reference lets a stream that already ended ignore the wake.
    asio::post(strand_, [w = weak_from_this()] {
        const auto self = w.lock();
        if (!self) return;
        self->wake_.cancel();
        bool evicted = false;
        {
            const std::lock_guard lock(self->m_);
            evicted = self->state_ == state::evicted;
        }
        if (evicted) self->evict_.cancel();
    });
}

awaitable<void> subscription::evicted()
{
    for (;;) {
        {
            const std::lock_guard lock(m_);
            if (state_ == state::evicted) co_return;
        }
        evict_.expires_at(asio::steady_timer::time_point::max());
        auto [ec] = co_await evict_.async_wait(nothrow);
        (void)ec;
        const auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
    }
}

awaitable<subscription::batch> subscription::next(std::chrono::milliseconds max_wait)
{
    batch out;
    const auto take = [&] {
        const std::lock_guard lock(m_);
        out.st = state_;
        out.events.assign(queue_.begin(), queue_.end());
        queue_.clear();
        return out.st != state::open || !out.events.empty();
    };
    for (;;) {
        if (take()) co_return out;
        // Checked and armed on this strand; a push posts its wake here too,
        // so it either found the queue non-empty above or cancels this wait.
        wake_.expires_after(max_wait);
        auto [ec] = co_await wake_.async_wait(nothrow);
        const auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) {
            out.st = state::closed;
            co_return out;
        }
        if (!ec) {
            out.idle = !take();
            co_return out;
        }
    }
}

std::shared_ptr<subscription> event_hub::subscribe(const std::string& org_id, const std::string& node_id,
                                                   const std::string& ip, asio::any_io_executor strand,
                                                   refusal* why)
{
    const bool admin = org_id.empty();
    const std::lock_guard lock(m_);
    const std::size_t in_use = admin ? admin_total_ : total_ - admin_total_;
    if (in_use >= (admin ? limits_.admin_global : limits_.global)) {
        if (why) *why = refusal::global;
        return nullptr;
    }
    auto& from_ip = per_ip_[admin ? "admin " + ip : ip];
    if (from_ip >= (admin ? limits_.admin_per_ip : limits_.per_ip)) {
        if (why) *why = refusal::per_ip;
        return nullptr;
    }
    ++total_;
    if (admin) ++admin_total_;
    ++from_ip;
    auto s = std::make_shared<subscription>(*this, org_id, node_id, ip, std::move(strand));
    subs_.push_back(s);
    if (why) *why = refusal::none;
    return s;
}

void event_hub::release(subscription* s)
{
    const std::lock_guard lock(m_);
    --total_;
    const bool admin = s->org_id_.empty();
    if (admin) --admin_total_;
    if (auto it = per_ip_.find(admin ? "admin " + s->ip_ : s->ip_); it != per_ip_.end() && --it->second == 0)
        per_ip_.erase(it);
    subs_.remove_if([](const std::weak_ptr<subscription>& w) { return w.expired(); });
}

void event_hub::publish(const event_record& e)
{
    std::vector<std::shared_ptr<subscription>> targets;
    {
        const std::lock_guard lock(m_);
        for (const auto& w : subs_)
            if (auto s = w.lock(); s && (s->org_id_.empty() || s->org_id_ == e.org_id)) targets.push_back(s);
    }
    for (const auto& s : targets) {
        const bool was_open = [&] {
            const std::lock_guard lock(s->m_);
            return s->state_ == subscription::state::open;
        }();
        s->push(e, limits_.queue);
        const std::lock_guard lock(s->m_);
        if (was_open && s->state_ == subscription::state::evicted) ++evictions_;
    }
}

void event_hub::close_node(const std::string& node_id, std::int64_t after_id)
{
    std::vector<std::shared_ptr<subscription>> targets;
    {
        const std::lock_guard lock(m_);
        for (const auto& w : subs_)
            if (auto s = w.lock(); s && s->node_id_ == node_id) targets.push_back(s);
    }
    for (const auto& s : targets) s->close_after(after_id);
}

std::size_t event_hub::connections() const
{
    const std::lock_guard lock(m_);
    return total_;
}

}  // namespace tether::gateway
