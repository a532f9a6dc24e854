// Fan-out of stored events to open streams. A publish never waits on a
// subscriber: each stream has a bounded queue, and one that fills is evicted.
#pragma once

#include "base/asio.hpp"
#include "gateway/storage.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tether::gateway {

struct hub_limits {
    std::size_t queue = 256;
    std::size_t per_ip = 20;
    std::size_t global = 10'000;
    /// Admin streams have a budget of their own: nodes behind the
    /// operator's address must not lock the operator out.
    std::size_t admin_per_ip = 8;
    std::size_t admin_global = 64;
};

class event_hub;

/// One open stream's inbox. Created by event_hub::subscribe on the
/// connection's strand; `next` must be awaited from that strand only.
class subscription : public std::enable_shared_from_this<subscription> {
public:
    enum class state { open, evicted, closed };

    struct batch {
        std::vector<event_record> events;
        state st = state::open;
        bool idle = false;  ///< the wait ran out with nothing to send
    };

    subscription(event_hub& hub, std::string org_id, std::string node_id, std::string ip,
                 asio::any_io_executor strand);
    ~subscription();
    subscription(const subscription&) = delete;
    subscription& operator=(const subscription&) = delete;

    /// Everything queued, or an idle mark after `max_wait`.
    awaitable<batch> next(std::chrono::milliseconds max_wait);

    /// Completes once the stream is evicted (its queue overflowed), or when
    /// cancelled. Raced against a write that the peer is not taking, so an
    /// overflow ends the stream at once instead of at the write timeout.
    /// On the subscription's strand only.
    awaitable<void> evicted();

    [[nodiscard]] const std::string& org_id() const noexcept { return org_id_; }
    [[nodiscard]] const std::string& node_id() const noexcept { return node_id_; }
    /// Set by revocation: the stream ends after sending the event with this id.
    [[nodiscard]] std::int64_t close_after() const;

private:
    friend class event_hub;
    void push(const event_record& e, std::size_t limit);  // any thread
    void close_after(std::int64_t id);                    // any thread
    void wake();

    event_hub& hub_;
    std::string org_id_;  ///< empty: the admin stream, every org
    std::string node_id_;
    std::string ip_;
    asio::any_io_executor strand_;
    asio::steady_timer wake_;
    asio::steady_timer evict_;  // cancelled on the strand when the state becomes evicted
    mutable std::mutex m_;
    std::deque<event_record> queue_;
    state state_ = state::open;
    std::int64_t close_after_ = 0;
};

class event_hub {
public:
    explicit event_hub(hub_limits limits = {}) : limits_(limits) {}

    enum class refusal { none, per_ip, global };

    /// Admits a stream or says which limit refuses it.
    std::shared_ptr<subscription> subscribe(const std::string& org_id, const std::string& node_id,
                                            const std::string& ip, asio::any_io_executor strand,
                                            refusal* why);

    /// Hands a stored event to every matching stream. Call in id order
    /// (the storage thread does), so every queue sees events in order.
    void publish(const event_record& e);

    /// The node's streams end after they have sent event `after_id`.
    void close_node(const std::string& node_id, std::int64_t after_id);

    [[nodiscard]] std::size_t connections() const;
    [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_.load(); }

private:
    friend class subscription;
    void release(subscription* s);

    hub_limits limits_;
    mutable std::mutex m_;
    std::list<std::weak_ptr<subscription>> subs_;
    std::map<std::string, std::size_t> per_ip_;  // key: ip, or "admin " + ip
    std::size_t total_ = 0;
    std::size_t admin_total_ = 0;
    std::atomic<std::uint64_t> evictions_{0};
};

/// "id: N\nevent: T\ndata: D\n\n" with multi-line data split into data lines.
std::string format_event(const event_record& e);

}  // namespace tether::gateway
