// Fan-out of stored events to open streams. A publish never waits on a
// subscriber: each stream has a bounded queue, and one that fills is evicted.
//
// Streams are grouped in shards, one per executor they run on (the gateway
// runs its connections on one strand per event-loop thread). A publish
// encodes the event once and posts one job per shard; on the shard's strand
// that job writes the shared bytes straight to every idle stream's socket
// (one send each). What a full socket does not take waits for a writable
// callback on the same strand; a stream's coroutine writes only over TLS,
// idle comments and the replay, and watches the write timeout.
#pragma once

#include "base/asio.hpp"
#include "gateway/storage.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace tether::net {
class body_writer;
}

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

/// One event as every stream sends it: encoded once, shared, immutable.
struct event_frame {
    std::int64_t id = 0;
    std::string org_id;
    std::string chunk;        ///< the SSE text as one HTTP/1.1 chunk (net::encode_chunk)
    bool admin_only = false;  ///< admin_only_event: node streams skip it
};
using shared_frame = std::shared_ptr<const event_frame>;

shared_frame make_frame(const event_record& e);

class event_hub;
struct hub_shard;

/// One open stream's inbox. Created by event_hub::subscribe on the
/// connection's strand; everything but the destructor on that strand only.
class subscription {
public:
    enum class state { open, evicted, closed };

    struct batch {
        std::vector<shared_frame> frames;
        /// Bytes of frames[0] already written (a direct write the socket
        /// took part of): the rest must follow before anything else.
        std::size_t offset = 0;
        state st = state::open;
        bool idle = false;  ///< the wait ran out with nothing to send
        /// Closed because the socket took nothing for the write timeout.
        bool write_timed_out = false;
    };

    subscription(event_hub& hub, std::shared_ptr<hub_shard> shard, std::string org_id, std::string node_id,
                 std::string ip);
    ~subscription();
    subscription(const subscription&) = delete;
    subscription& operator=(const subscription&) = delete;

    /// Lets the shard write events to `w` itself while the stream waits in
    /// `next` (nullptr: stop). `w` must outlive the attachment.
    void attach(net::body_writer* w);

    /// The peer went away: `next` returns closed, a write in progress ends.
    void end();

    /// Events up to `id` were sent (the replay): later copies are dropped.
    void sent_up_to(std::int64_t id);

    /// Everything queued and not yet written, or an idle mark after
    /// `max_wait`. Events the shard wrote directly meanwhile never show up.
    awaitable<batch> next(std::chrono::milliseconds max_wait);

    [[nodiscard]] state current() const;
    [[nodiscard]] const std::string& org_id() const noexcept { return org_id_; }
    [[nodiscard]] const std::string& node_id() const noexcept { return node_id_; }
    /// Revocation: the stream has sent the event it was to end after.
    [[nodiscard]] bool finished() const;

private:
    friend class event_hub;
    friend struct hub_shard;
    // On the strand, with the shard locked:
    void deliver(std::span<const shared_frame> frames, std::size_t limit);
    void write_now();
    void wake();
    void on_writable();  // on the strand; locks the shard
    [[nodiscard]] bool finished_locked() const;

    event_hub& hub_;
    std::shared_ptr<hub_shard> shard_;
    std::string org_id_;  ///< empty: the admin stream, every org
    std::string node_id_;
    std::string ip_;
    asio::steady_timer wake_;
    // Guarded by the shard's mutex:
    std::size_t index_ = 0;  ///< position in the shard's list
    std::vector<shared_frame> queue_;
    std::size_t offset_ = 0;
    state state_ = state::open;
    bool parked_ = false;   ///< waiting in next(): no write of its own in progress
    bool blocked_ = false;  ///< a direct write stopped part-way: the socket's writable callback goes on
    std::chrono::steady_clock::time_point blocked_since_;
    net::body_writer* direct_ = nullptr;
    std::int64_t accepted_ = 0;  ///< the newest event queued or written: older copies are dropped
    std::int64_t close_after_ = 0;
};

class event_hub {
public:
    explicit event_hub(hub_limits limits = {});

    enum class refusal { none, per_ip, global };

    /// Admits a stream or says which limit refuses it. `ip`: what the
    /// per-address limit counts (net::address_group of the peer). `strand`:
    /// the connection's, where the stream's coroutine runs.
    std::shared_ptr<subscription> subscribe(const std::string& org_id, const std::string& node_id,
                                            const std::string& ip, const asio::any_io_executor& strand,
                                            refusal* why);

    /// Hands a stored event to every matching stream. Call in id order
    /// (the storage thread does), so every queue sees events in order.
    void publish(const event_record& e);

    /// The node's streams end after they have sent event `after_id`.
    void close_node(const std::string& node_id, std::int64_t after_id);

    [[nodiscard]] std::size_t connections() const;
    [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_->load(); }

private:
    friend class subscription;
    void release(subscription* s);
    std::vector<std::shared_ptr<hub_shard>> live_shards();

    hub_limits limits_;
    // Shared with the jobs a publish posts, which may run after the hub is gone.
    std::shared_ptr<std::atomic<std::uint64_t>> evictions_;
    mutable std::mutex m_;
    std::vector<std::weak_ptr<hub_shard>> shards_;
    std::map<std::string, std::size_t> per_ip_;  // key: ip, or "admin " + ip
    std::size_t total_ = 0;
    std::size_t admin_total_ = 0;
};

/// "id: N\nevent: T\ndata: D\n\n" with multi-line data split into data lines.
std::string format_event(const event_record& e);

}  // namespace tether::gateway
