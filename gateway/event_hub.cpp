#include "gateway/event_hub.hpp"

#include "net/http_server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <array>

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

shared_frame make_frame(const event_record& e)
{
    return std::make_shared<const event_frame>(
        event_frame{e.id, e.org_id, net::encode_chunk(format_event(e)), admin_only_event(e.type)});
}

/// The streams that run on one executor. `subs` and the state of every
/// subscription in it are guarded by `m`; the jobs that touch them run on
/// `ex`, so `m` is contended only by a subscription ending elsewhere.
struct hub_shard : std::enable_shared_from_this<hub_shard> {
    hub_shard(asio::any_io_executor e, std::size_t queue_limit,
              std::shared_ptr<std::atomic<std::uint64_t>> eviction_count)
        : ex(std::move(e)), limit(queue_limit), evictions(std::move(eviction_count)), pace(ex)
    {
    }
    asio::any_io_executor ex;
    const std::size_t limit;
    // The hub's counter, shared: a job may run after the hub is gone.
    const std::shared_ptr<std::atomic<std::uint64_t>> evictions;
    std::mutex m;
    std::vector<subscription*> subs;
    // The admin streams among them (a few): an event only they see is not
    // offered to every node's stream.
    std::vector<subscription*> admins;
    // Published, not yet delivered: one job delivers all of them, so a
    // shard that falls behind writes several events per send, not one.
    // A revocation goes in the same list, so it takes effect exactly
    // between the events published before and after it.
    struct item {
        shared_frame frame;            ///< an event, or:
        std::string close_node;        ///< the node whose streams end after
        std::int64_t close_after = 0;  ///< this event
    };
    std::mutex pending_m;
    std::vector<item> pending;
    bool scheduled = false;
    bool running = false;  ///< a job is delivering: it schedules the next one itself
    // Holds the next job back after a long one (on `ex` only).
    asio::steady_timer pace;

    /// Queues `it` and makes sure one job will deliver what is pending.
    void add(item it);
    void run_pending();
    void deliver(std::vector<item>& items);
    void close(const std::string& node_id, std::int64_t after_id);
};

subscription::subscription(event_hub& hub, std::shared_ptr<hub_shard> shard, std::string org_id,
                           std::string node_id, std::string ip)
    : hub_(hub),
      shard_(std::move(shard)),
      org_id_(std::move(org_id)),
      node_id_(std::move(node_id)),
      ip_(std::move(ip)),
      wake_(shard_->ex, asio::steady_timer::time_point::max())
{
}

subscription::~subscription()
{
    {
        const std::lock_guard lock(shard_->m);
        auto& v = shard_->subs;
        v[index_] = v.back();
        v[index_]->index_ = index_;
        v.pop_back();
        std::erase(shard_->admins, this);
    }
    hub_.release(this);
}

void subscription::attach(net::body_writer* w)
{
    const std::lock_guard lock(shard_->m);
    direct_ = w;
}

void subscription::end()
{
    const std::lock_guard lock(shard_->m);
    if (state_ != state::open) return;
    state_ = state::closed;
    queue_ = {};
    offset_ = 0;
    wake();
}

void subscription::sent_up_to(std::int64_t id)
{
    const std::lock_guard lock(shard_->m);
    accepted_ = std::max(accepted_, id);
    std::erase_if(queue_, [&](const shared_frame& f) { return f->id > 0 && f->id <= id; });
}

subscription::state subscription::current() const
{
    const std::lock_guard lock(shard_->m);
    return state_;
}

bool subscription::finished() const
{
    const std::lock_guard lock(shard_->m);
    return finished_locked();
}

bool subscription::finished_locked() const
{
    return close_after_ > 0 && accepted_ >= close_after_ && queue_.empty();
}

void subscription::wake()
{
    if (parked_) wake_.cancel();
}

void subscription::deliver(std::span<const shared_frame> frames, std::size_t limit)
{
    const bool was_idle = queue_.empty();
    for (const auto& f : frames) {
        if (state_ != state::open) return;
        if (!org_id_.empty() && (org_id_ != f->org_id || f->admin_only)) continue;
        if (f->id > 0 && f->id <= accepted_) continue;             // the replay sent it
        if (close_after_ > 0 && accepted_ >= close_after_) break;  // revoked: nothing after its event
        if (queue_.size() >= limit) {
            // A consumer this far behind would make the publisher wait or
            // memory grow; dropping it keeps everyone else on time.
            state_ = state::evicted;
            queue_ = {};
            offset_ = 0;
            if (parked_)
                wake();
            else if (direct_)
                direct_->abort();  // its write is blocked on a peer that stopped reading
            return;
        }
        queue_.push_back(f);
        accepted_ = std::max(accepted_, f->id);
    }
    // Busy writing (or not yet streaming): it takes the queue next. Blocked:
    // the socket's writable callback sends the rest and what came since.
    if (!parked_ || queue_.empty() || blocked_) return;
    if (direct_ && direct_->writes_directly() && was_idle)
        write_now();
    else
        wake();
}

void subscription::on_writable()
{
    const std::lock_guard lock(shard_->m);
    if (state_ != state::open || !blocked_ || !direct_) return;
    blocked_ = false;
    write_now();
}

void subscription::write_now()
{
    // IOV_MAX is far above this; the rest goes with the next write.
    constexpr std::size_t max_gather = 64;
    std::array<asio::const_buffer, max_gather> bufs;
    const std::size_t count = std::min(queue_.size(), max_gather);
    for (std::size_t i = 0; i < count; ++i) bufs[i] = asio::buffer(queue_[i]->chunk);
    bufs[0] += offset_;
    error_code ec;
    auto n = direct_->try_write_encoded({bufs.data(), count}, ec);
    if (ec) {
        // The coroutine's own write then fails the same way and ends the
        // stream (the rest of a partly written event included).
        wake();
        return;
    }
    std::size_t done = 0;
    while (done < count && n >= bufs[done].size()) n -= bufs[done++].size();
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(done));
    offset_ = done > 0 ? n : offset_ + n;
    if (!queue_.empty()) {
        // The socket is full: wait until it takes more, here rather than in
        // the coroutine, so a slow reader costs no timer and no resume per
        // write. A reader that takes nothing for the write timeout is ended
        // by the coroutine's wait (next()), one that falls a queue behind
        // by deliver().
        if (!blocked_) {
            blocked_since_ = std::chrono::steady_clock::now();
            blocked_ = true;
            wake();  // its wait was for an idle comment: bound it by the write timeout now
        }
        direct_->when_writable([](void* p) { static_cast<subscription*>(p)->on_writable(); }, this);
        return;
    }
    blocked_ = false;
    if (finished_locked()) wake();  // the end of a revoked node's stream is the coroutine's
}

awaitable<subscription::batch> subscription::next(std::chrono::milliseconds max_wait)
{
    batch out;
    const auto take = [&] {
        const std::lock_guard lock(shard_->m);
        parked_ = false;
        out.st = state_;
        if (blocked_ && state_ == state::open) {
            // The writable callback owns the queue; the coroutine only
            // watches the clock.
            if (std::chrono::steady_clock::now() - blocked_since_ >= direct_->write_timeout()) {
                out.st = state::closed;
                out.write_timed_out = true;
                return true;
            }
            return false;
        }
        out.frames.swap(queue_);
        out.offset = std::exchange(offset_, 0);
        if (out.st == state::open && out.frames.empty() && finished_locked()) out.st = state::closed;
        return out.st != state::open || !out.frames.empty();
    };
    const auto unpark = [&] {
        const std::lock_guard lock(shard_->m);
        parked_ = false;
    };
    for (;;) {
        if (take()) co_return out;
        {
            // Parked and armed without leaving the strand, where every
            // delivery runs: none can slip in between.
            const std::lock_guard lock(shard_->m);
            parked_ = true;
            if (blocked_)
                max_wait = std::min(max_wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  blocked_since_ + direct_->write_timeout() -
                                                  std::chrono::steady_clock::now()) +
                                                  std::chrono::milliseconds(1));
        }
        wake_.expires_after(max_wait);
        auto [ec] = co_await wake_.async_wait(nothrow);
        const auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) {
            unpark();
            out.st = state::closed;
            co_return out;
        }
        if (!ec) {
            if (take()) co_return out;
            {
                const std::lock_guard lock(shard_->m);
                if (blocked_) continue;  // still within the write timeout: nothing to say meanwhile
            }
            out.idle = true;
            co_return out;
        }
    }
}

event_hub::event_hub(hub_limits limits)
    : limits_(limits), evictions_(std::make_shared<std::atomic<std::uint64_t>>(0))
{
}

std::shared_ptr<subscription> event_hub::subscribe(const std::string& org_id, const std::string& node_id,
                                                   const std::string& ip, const asio::any_io_executor& strand,
                                                   refusal* why)
{
    const bool admin = org_id.empty();
    std::shared_ptr<hub_shard> shard;
    {
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
        std::erase_if(shards_, [&](const std::weak_ptr<hub_shard>& w) {
            auto sh = w.lock();
            if (sh && sh->ex == strand) shard = std::move(sh);
            return w.expired();
        });
        if (!shard) {
            shard = std::make_shared<hub_shard>(strand, limits_.queue, evictions_);
            shards_.push_back(shard);
        }
    }
    auto s = std::make_shared<subscription>(*this, shard, org_id, node_id, ip);
    {
        const std::lock_guard lock(shard->m);
        s->index_ = shard->subs.size();
        shard->subs.push_back(s.get());
        if (admin) shard->admins.push_back(s.get());
    }
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
}

std::vector<std::shared_ptr<hub_shard>> event_hub::live_shards()
{
    std::vector<std::shared_ptr<hub_shard>> out;
    const std::lock_guard lock(m_);
    for (const auto& w : shards_)
        if (auto sh = w.lock()) out.push_back(std::move(sh));
    return out;
}

void hub_shard::add(item it)
{
    {
        const std::lock_guard lock(pending_m);
        pending.push_back(std::move(it));
        if (std::exchange(scheduled, true)) return;  // the job already posted takes it too
        if (running) return;                         // the running job schedules the next
    }
    asio::post(ex, [self = shared_from_this()] { self->run_pending(); });
}

void hub_shard::run_pending()
{
    std::vector<item> items;
    {
        const std::lock_guard lock(pending_m);
        items.swap(pending);
        scheduled = false;
        running = true;
    }
    const auto started = std::chrono::steady_clock::now();
    deliver(items);
    const auto took = std::chrono::steady_clock::now() - started;
    {
        const std::lock_guard lock(pending_m);
        running = false;
        if (!scheduled) return;
    }
    // Published while this job ran: the next job waits as long as this one
    // took, so fan-out takes at most half of its thread while events come
    // faster than it delivers them. What waits is coalesced (one gathered
    // send per stream for all of it), and the thread's RPCs, storage
    // completions and writable callbacks get the other half: without this,
    // one event-loop thread under a burst it could not carry ran fan-out
    // jobs back to back and publish calls timed out after 30 s.
    if (took < std::chrono::milliseconds(1)) {
        asio::post(ex, [self = shared_from_this()] { self->run_pending(); });
        return;
    }
    pace.expires_after(took);
    pace.async_wait([self = shared_from_this()](const error_code&) { self->run_pending(); });
}

void hub_shard::deliver(std::vector<item>& items)
{
    std::vector<shared_frame> frames;
    const std::lock_guard lock(m);
    const auto flush = [&] {
        if (frames.empty()) return;
        const bool for_nodes =
            std::any_of(frames.begin(), frames.end(), [](const shared_frame& f) { return !f->admin_only; });
        for (auto* s : for_nodes ? subs : admins) {
            const bool was_open = s->state_ == subscription::state::open;
            s->deliver(frames, limit);
            if (was_open && s->state_ == subscription::state::evicted) ++*evictions;
        }
        frames.clear();
    };
    for (auto& it : items) {
        if (it.frame) {
            frames.push_back(std::move(it.frame));
            continue;
        }
        flush();
        close(it.close_node, it.close_after);
    }
    flush();
}

void hub_shard::close(const std::string& node_id, std::int64_t after_id)
{
    for (auto* s : subs) {
        if (s->node_id_ != node_id) continue;
        s->close_after_ = after_id;
        // Nothing after the revocation reaches the node (but the front,
        // when a direct write sent part of it).
        auto& q = s->queue_;
        q.erase(std::remove_if(q.begin() + (s->offset_ > 0 ? 1 : 0), q.end(),
                               [&](const shared_frame& f) { return f->id > after_id; }),
                q.end());
        if (s->finished_locked()) s->wake();
    }
}

void event_hub::publish(const event_record& e)
{
    const auto f = make_frame(e);
    for (auto& sh : live_shards()) sh->add({f, {}, 0});
}

void event_hub::close_node(const std::string& node_id, std::int64_t after_id)
{
    for (auto& sh : live_shards()) sh->add({nullptr, node_id, after_id});
}

std::size_t event_hub::connections() const
{
    const std::lock_guard lock(m_);
    return total_;
}

}  // namespace tether::gateway
