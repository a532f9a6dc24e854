// Fetches and applies the runtime config when anyone hears of a newer one
// (an event, a heartbeat reply, a reconnect): at most one fetch in flight,
// and one trailing fetch if newer news arrived meanwhile.
#pragma once

#include "app/agent/metrics.hpp"
#include "auth/session.hpp"
#include "auth/state_paths.hpp"
#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "base/log.hpp"
#include "net/server_set.hpp"
#include "net/url.hpp"
#include "settings/config_store.hpp"

#include <boost/asio/experimental/concurrent_channel.hpp>

#include <mutex>
#include <optional>

namespace tether::app {

class config_sync_task {
public:
    struct deps {
        asio::any_io_executor ex;
        settings::config_store& store;
        auth::session_manager& session;
        net::server_set server;  ///< one URL, or replicas to fail over between
        std::shared_ptr<net::replaceable_tls> tls;
        auth::state_paths paths;
        asio::any_io_executor blocking;  ///< file writes
        agent_metrics& metrics;
        const log::logger& log;
        uniform01 rand;
        /// Fetches start at most this often: a flood of resets or unparseable
        /// events costs one fetch per interval plus one trailing.
        std::chrono::milliseconds min_fetch_interval{1000};
        /// A configUpdatedAt further ahead of the gateway's clock than this is
        /// refused (a version from the future would shadow every real publish).
        std::chrono::milliseconds max_version_ahead{std::chrono::hours(24)};
        /// After a failed write of the applied config to the state directory
        /// (a full disk), the write is tried again this often until it
        /// succeeds: `tether exec` beside us and our next start read it.
        std::chrono::milliseconds persist_retry{5000};
    };

    explicit config_sync_task(deps d);

    /// Thread-safe, returns at once. `at` is the configUpdatedAt the caller
    /// heard of; nullopt when unknown (an event that did not parse, a reset,
    /// a reconnect), which always fetches.
    void request(std::optional<std::int64_t> at, std::string_view source);

    /// The task: runs until cancelled. Failed fetches are retried with
    /// backoff (1 s to 60 s) while a request is pending, a failed write of
    /// the applied config every persist_retry until it succeeds.
    awaitable<void> run();

    [[nodiscard]] std::int64_t fetches() const noexcept { return deps_.metrics.config_fetches.load(); }

private:
    struct pending {
        bool any = false;
        bool force = false;
        std::int64_t at = 0;
        std::string source;
    };
    enum class outcome { done, failed };

    pending take();
    void put_back(const pending& p);
    [[nodiscard]] std::int64_t seen() const noexcept;
    /// The newest believable version now; beyond it, a version is refused.
    [[nodiscard]] std::int64_t version_bound() const noexcept;
    /// The applied version is one no real publish can follow (beyond the bound).
    [[nodiscard]] bool applied_is_from_the_future() const noexcept;
    awaitable<outcome> fetch_and_apply(net::rpc_client& rpc, std::string source);
    /// Writes `cfg` to the state directory; false (logged, counted) when the
    /// disk refuses it.
    awaitable<bool> persist(settings::config_ptr cfg);

    deps deps_;
    std::mutex mutex_;
    pending pending_;
    std::atomic<std::int64_t> rejected_at_{0};  // a rejected version is not fetched again
    // Only the task's coroutine touches these.
    std::int64_t failed_writes_ = 0;  // in a row, for the line that reports the recovery
    std::chrono::steady_clock::time_point next_persist_{};
    asio::experimental::concurrent_channel<void(error_code)> wake_;
};

}  // namespace tether::app
