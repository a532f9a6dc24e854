#include "settings/config_store.hpp"

#include <boost/asio/co_spawn.hpp>

#include <fstream>
#include <sstream>

namespace tether::settings {

config_store::config_store(asio::any_io_executor ex, config_ptr initial)
    : strand_(asio::make_strand(std::move(ex))),
      current_(initial ? std::move(initial) : std::make_shared<const runtime_config>())
{
}

awaitable<bool> config_store::update(config_ptr next)
{
    // The comparison and the swap happen on the store's strand, so two
    // concurrent updates cannot both win or apply out of order.
    const bool applied = co_await asio::co_spawn(strand_, apply(std::move(next), false), use_awaitable);
    co_return applied;
}

awaitable<bool> config_store::replace(config_ptr next)
{
    const bool applied = co_await asio::co_spawn(strand_, apply(std::move(next), true), use_awaitable);
    co_return applied;
}

awaitable<bool> config_store::apply(config_ptr next, bool allow_older)
{
    if (!next) co_return false;
    const auto have = current_.load()->updated_at;
    if (allow_older ? next->updated_at == have : next->updated_at <= have) co_return false;
    current_.store(next);
    for (const auto& s : subscribers_) s(next);
    {
        const std::lock_guard lock(watchers_mutex_);
        std::erase_if(watchers_, [](const std::weak_ptr<change_signal>& w) {
            const auto alive = w.lock();
            if (alive) alive->notify();
            return !alive;
        });
    }
    co_return true;
}

std::shared_ptr<change_signal> config_store::watch(asio::any_io_executor ex) const
{
    auto s = std::make_shared<change_signal>(std::move(ex));
    const std::lock_guard lock(watchers_mutex_);
    // Gone watchers are pruned here too, so a store that never changes
    // does not collect them.
    std::erase_if(watchers_, [](const std::weak_ptr<change_signal>& w) { return w.expired(); });
    watchers_.push_back(s);
    return s;
}

config_ptr load_config_file(const std::filesystem::path& file, const log::logger& log)
{
    std::error_code fec;
    if (!std::filesystem::exists(file, fec)) return std::make_shared<const runtime_config>();
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto cfg = decode_config_file(ss.str());
    if (!cfg) {
        log.warn("config.local_unreadable", {{"file", file.string()}, {"error", cfg.error().message()}});
        return std::make_shared<const runtime_config>();
    }
    return std::make_shared<const runtime_config>(std::move(*cfg));
}

}  // namespace tether::settings
