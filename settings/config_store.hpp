// Owns the applied runtime config: one writer (its strand), many readers
// that take an immutable snapshot without a lock of ours.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"
#include "settings/runtime_config.hpp"

#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace tether::settings {

using config_ptr = std::shared_ptr<const runtime_config>;

/// Wakes its owner after applied changes: several changes before it looks
/// wake it once (it reads current() then, the only version that matters).
/// Thread-safe; the wait is cancellable like any operation.
class change_signal {
public:
    explicit change_signal(asio::any_io_executor ex) : ch_(std::move(ex), 1) {}
    awaitable<void> wait()
    {
        auto [ec] = co_await ch_.async_receive(nothrow);
        (void)ec;
    }
    void notify() noexcept { (void)ch_.try_send(error_code{}); }

private:
    asio::experimental::concurrent_channel<void(error_code)> ch_;
};

class config_store {
public:
    /// Called on the store's strand once per applied change, in order.
    using subscriber = std::function<void(const config_ptr&)>;

    /// `initial` is the last known good config (from the state directory),
    /// or an empty one with updated_at 0.
    config_store(asio::any_io_executor ex, config_ptr initial);

    /// Thread-safe, never blocks on the writer: an atomic shared_ptr load.
    [[nodiscard]] config_ptr current() const noexcept { return current_.load(); }
    [[nodiscard]] std::int64_t updated_at() const noexcept { return current()->updated_at; }

    /// Before the first update only (subscribers are not locked).
    void subscribe(subscriber s) { subscribers_.push_back(std::move(s)); }

    /// A signal for one watcher, at any time, from any thread: notified
    /// after every change applied while the watcher holds it.
    std::shared_ptr<change_signal> watch(asio::any_io_executor ex) const;

    /// Applies `next` when it is newer than the current config; true when it
    /// did (subscribers have then been called). Callable from any strand.
    awaitable<bool> update(config_ptr next);

    /// Applies `next` when its version differs from the current one, older
    /// or not: for a current version that the gateway disowns (one from the
    /// future would otherwise shadow every real publish for good).
    awaitable<bool> replace(config_ptr next);

private:
    awaitable<bool> apply(config_ptr next, bool allow_older);

    asio::strand<asio::any_io_executor> strand_;
    std::atomic<config_ptr> current_;
    std::vector<subscriber> subscribers_;
    mutable std::mutex watchers_mutex_;  // watching does not change the config
    mutable std::vector<std::weak_ptr<change_signal>> watchers_;
};

/// Loads the last applied config from `file` (the state directory's
/// config.json), so a node that restarts while the gateway is down keeps
/// enforcing it. A missing file gives an empty config; an unreadable or
/// invalid one is logged and ignored (empty config).
config_ptr load_config_file(const std::filesystem::path& file, const log::logger& log);

}  // namespace tether::settings
