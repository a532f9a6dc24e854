// The shared event log of the replicated gateway: publishing assigns ids in
// commit order, so `id > cursor` never misses an event; every replica tails
// the table on each NOTIFY (which carries only the id) and on a short poll
// when notifications are lost (a dropped LISTEN connection).
#pragma once

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "gateway/postgres/pg_pool.hpp"
#include "gateway/storage.hpp"

#include <atomic>
#include <functional>
#include <vector>

namespace tether::gateway::postgres {

inline constexpr std::string_view events_channel = "tether_events";
/// The transaction-scoped advisory lock publishers hold from nextval to
/// commit ("tether" + 2).
inline constexpr std::int64_t publish_lock_key = 0x7465746865720002;

/// The statement that appends one event of org $1, type $2, data
/// `data_sql` (a parameter or an expression) and queues its NOTIFY; it
/// returns the id. Runs after pg_advisory_xact_lock(publish_lock_key) in the
/// same transaction.
std::string insert_event_sql(std::string_view data_sql);

/// Appends one event and notifies; returns its id. Ids commit in id order:
/// the lock is taken before nextval and released by the commit, so no
/// transaction can commit a smaller id after a larger one is visible. (A
/// rolled-back publish leaves a hole in the ids, never an event behind the
/// cursor.)
awaitable<pg_result<std::int64_t>> publish_event(pg_pool& pool, const std::string& org,
                                                 const std::string& type, const std::string& data);

struct tail_options {
    std::string conninfo;  ///< for the dedicated LISTEN connection
    std::chrono::milliseconds poll{500};
    std::size_t batch = 500;  ///< events read per query
    backoff::policy reconnect{std::chrono::milliseconds(100), std::chrono::milliseconds(5'000)};
};

/// The tail task: from `cursor` on, hands every event (all orgs) to
/// `deliver` in id order, batch by batch, until cancelled. Survives the
/// database going away (polls fail and are logged; the LISTEN connection is
/// remade with backoff).
class event_tail {
public:
    using deliver_fn = std::function<void(const std::vector<event_record>&)>;

    event_tail(pg_pool& pool, tail_options opts, std::int64_t cursor, deliver_fn deliver, uniform01 rand,
               const log::logger& log);

    awaitable<void> run();

    // Read from any thread (/readyz, /metrics).
    [[nodiscard]] std::int64_t cursor() const noexcept { return cursor_; }
    /// The LISTEN connection is up.
    [[nodiscard]] bool listening() const noexcept { return listening_; }
    /// When a read last found nothing more to deliver (steady clock); the
    /// epoch before the first.
    [[nodiscard]] std::chrono::steady_clock::time_point caught_up_at() const noexcept
    {
        return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(caught_up_.load()));
    }

private:
    /// Reads and delivers everything after the cursor; false when the read failed.
    awaitable<bool> catch_up();

    pg_pool& pool_;
    tail_options opts_;
    std::atomic<std::int64_t> cursor_;
    deliver_fn deliver_;
    backoff reconnect_;
    const log::logger& log_;
    std::atomic<bool> listening_{false};
    std::atomic<std::chrono::steady_clock::rep> caught_up_{0};
};

}  // namespace tether::gateway::postgres
