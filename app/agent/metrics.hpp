// What the agent knows about itself, for /readyz, /metrics and `tether
// status`. Every field is an atomic: writers are tasks on their own strands,
// the reader is the health endpoint on another.
#pragma once

#include "net/connect.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tether::app {

using counter = std::atomic<std::int64_t>;

/// Event types the agent knows, as metric labels; everything else is "other".
inline constexpr std::array<std::string_view, 4> event_type_labels{"config-updated", "node-revoked", "reset",
                                                                   "other"};
std::size_t event_type_index(std::string_view type) noexcept;

inline constexpr std::size_t connect_code_count =
    static_cast<std::size_t>(net::connect::code::unauthenticated) + 1;

struct dispatch_stats {
    counter depth{0};
    counter handled{0};
    counter failures{0};
    counter retries{0};
    counter stale_retries_dropped{0};
    counter overflow_dropped{0};
};

/// Why the last config was not taken (a document that failed validation, a
/// version from the future, a rendered file that could not be written),
/// until a later version is taken. The one field under a lock: a string.
class config_problem {
public:
    struct value {
        std::string message;
        std::int64_t config_updated_at = 0;
        std::int64_t at_ms = 0;
    };
    void set(value v)
    {
        const std::lock_guard lock(m_);
        v_ = std::move(v);
    }
    void clear()
    {
        const std::lock_guard lock(m_);
        v_.reset();
    }
    [[nodiscard]] std::optional<value> get() const
    {
        const std::lock_guard lock(m_);
        return v_;
    }

private:
    mutable std::mutex m_;
    std::optional<value> v_;
};

struct agent_metrics {
    // Heartbeats.
    counter last_heartbeat_ok_ms{0};
    counter heartbeats_sent{0};
    counter heartbeats_failed{0};
    std::array<counter, connect_code_count> heartbeats_failed_by_code{};
    counter last_loop_ms{0};  ///< the heartbeat loop came round (liveness)
    counter interval_ms{30'000};

    // Runtime config.
    counter config_updated_at{0};
    counter config_applies{0};
    counter config_rejections{0};
    counter config_fetches{0};
    counter config_applied_at_ms{0};  ///< wall time this node applied the current version; 0: loaded at start
    counter config_confirmed_ms{0};   ///< wall time the gateway last said this version is current
    counter config_persisted_at{0};   ///< configUpdatedAt of the config in the state directory
    counter config_persist_failures{0};
    config_problem config_last_error;

    // Event stream.
    std::atomic<bool> realtime_connected{false};
    counter stream_connects{0};
    counter stream_disconnects{0};
    std::array<counter, event_type_labels.size()> events_by_type{};

    dispatch_stats dispatch;

    void heartbeat_failed(net::connect::code c) noexcept
    {
        ++heartbeats_failed;
        ++heartbeats_failed_by_code[static_cast<std::size_t>(c)];
    }
};

}  // namespace tether::app
