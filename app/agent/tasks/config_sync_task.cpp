#include "app/agent/tasks/config_sync_task.hpp"

#include "app/agent/session_call.hpp"
#include "auth/state_store.hpp"
#include "base/blocking_call.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/array.hpp>

namespace tether::app {

namespace pj = net::protojson;
namespace json = boost::json;
using namespace std::chrono_literals;

config_sync_task::config_sync_task(deps d) : deps_(std::move(d)), wake_(deps_.ex, 1)
{
    // What the store starts with was read from the state directory.
    deps_.metrics.config_persisted_at = deps_.store.updated_at();
}

std::int64_t config_sync_task::version_bound() const noexcept
{
    const auto now = deps_.session.server_now_ms();
    const auto ahead = deps_.max_version_ahead.count();
    return now > INT64_MAX - ahead ? INT64_MAX : now + ahead;
}

bool config_sync_task::applied_is_from_the_future() const noexcept
{
    return deps_.store.updated_at() > version_bound();
}

std::int64_t config_sync_task::seen() const noexcept
{
    // A poisoned applied version must not hide the real ones from us.
    const auto applied = applied_is_from_the_future() ? 0 : deps_.store.updated_at();
    return std::max(applied, rejected_at_.load());
}

void config_sync_task::request(std::optional<std::int64_t> at, std::string_view source)
{
    if (at && *at <= seen()) return;  // nothing newer than what we have or refused
    {
        const std::lock_guard lock(mutex_);
        pending_.any = true;
        pending_.force = pending_.force || !at;
        pending_.at = std::max(pending_.at, at.value_or(0));
        pending_.source = source;
    }
    (void)wake_.try_send(error_code{});  // full: the task is already due to look
}

config_sync_task::pending config_sync_task::take()
{
    const std::lock_guard lock(mutex_);
    return std::exchange(pending_, pending{});
}

void config_sync_task::put_back(const pending& p)
{
    const std::lock_guard lock(mutex_);
    pending_.any = true;
    pending_.force = pending_.force || p.force;
    pending_.at = std::max(pending_.at, p.at);
    if (pending_.source.empty()) pending_.source = p.source;
}

awaitable<void> config_sync_task::run()
{
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto cs = co_await asio::this_coro::cancellation_state;
    const auto ex = co_await asio::this_coro::executor;
    net::http_client http(ex, deps_.tls);
    net::rpc_client rpc(http, deps_.server);
    backoff retry({1s, 60s}, deps_.rand);
    timer pause{ex};
    timer persist_due{ex};
    auto next_fetch = std::chrono::steady_clock::time_point::min();
    for (;;) {
        if (deps_.metrics.config_persisted_at.load() != deps_.store.updated_at()) {
            // The disk refused the applied config: write it again when due,
            // and meanwhile still take news as it comes.
            using namespace asio::experimental::awaitable_operators;
            persist_due.expires_at(next_persist_);
            const auto woke = co_await (wake_.async_receive(nothrow) || persist_due.async_wait(nothrow));
            if (cs.cancelled() != asio::cancellation_type::none) co_return;
            if (woke.index() == 1) {
                const auto applied = deps_.store.current();
                (void)co_await persist(applied);
                // On to the requests: a wake-up that came as the timer
                // fired was taken by the losing receive and is gone, but
                // what it announced is still pending.
            }
        } else {
            auto [ec] = co_await wake_.async_receive(nothrow);
            (void)ec;
        }
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
        // Requests that arrive during a fetch leave one wake-up behind, so
        // after any number of them this loop fetches at most once more.
        for (auto p = take(); p.any; p = take()) {
            if (!p.force && p.at <= seen()) continue;
            if (std::chrono::steady_clock::now() < next_fetch) {
                // Too soon after the last fetch: wait, and whatever arrives
                // meanwhile merges into this one request.
                put_back(p);
                pause.expires_at(next_fetch);
                co_await pause.async_wait();
                if (cs.cancelled() != asio::cancellation_type::none) co_return;
                continue;
            }
            next_fetch = std::chrono::steady_clock::now() + deps_.min_fetch_interval;
            const auto out = co_await fetch_and_apply(rpc, p.source);
            if (cs.cancelled() != asio::cancellation_type::none) co_return;
            if (out == outcome::done) {
                retry.reset();
                continue;
            }
            put_back(p);
            pause.expires_after(retry.next());
            co_await pause.async_wait();
            if (cs.cancelled() != asio::cancellation_type::none) co_return;
        }
    }
}

awaitable<config_sync_task::outcome> config_sync_task::fetch_and_apply(net::rpc_client& rpc,
                                                                       std::string source)
{
    const auto& log = deps_.log;
    const json::object no_fields;  // named: see the GCC 12 rules in base/asio.hpp
    auto r = co_await session_call(deps_.session, rpc, "GetRuntimeConfig", no_fields, 30s);
    if (!r) {
        log.warn("config.fetch_failed", {{"code", net::connect::to_string(r.error().c)},
                                         {"message", r.error().message},
                                         {"source", source}});
        co_return outcome::failed;
    }
    ++deps_.metrics.config_fetches;
    const auto at = pj::get_int64(*r, "configUpdatedAt");
    // protobuf JSON writers may omit an empty object: absent means {}.
    const json::value empty = json::object();
    const auto* doc = r->if_contains("config");
    if (!doc || doc->is_null()) doc = &empty;
    if (!at) {
        ++deps_.metrics.config_rejections;
        deps_.metrics.config_last_error.set({at.error().message(), 0, wall_ms()});
        log.warn("config.rejected", {{"error", at.error().message()}, {"source", source}});
        co_return outcome::done;
    }
    if (*at > version_bound()) {
        ++deps_.metrics.config_rejections;
        const auto why = "configUpdatedAt is beyond the gateway's clock (more than " +
                         std::to_string(deps_.max_version_ahead.count() / 1000) + " s ahead)";
        deps_.metrics.config_last_error.set({why, *at, wall_ms()});
        log.warn("config.rejected", {{"configUpdatedAt", *at},
                                     {"error", why},
                                     {"kept", deps_.store.updated_at()},
                                     {"source", source}});
        co_return outcome::done;
    }
    // The gateway's current version is the truth, even below a poisoned one.
    const bool disown = applied_is_from_the_future() && *at != deps_.store.updated_at();
    if (*at <= deps_.store.updated_at() && !disown) {
        if (*at == deps_.store.updated_at()) deps_.metrics.config_confirmed_ms = wall_ms();
        log.debug("config.unchanged", {{"configUpdatedAt", *at}, {"source", source}});
        co_return outcome::done;
    }
    auto cfg = settings::decode_config(*doc, *at);
    if (!cfg) {
        // The whole document is refused; the last good one stays in force.
        auto prev = rejected_at_.load();
        while (prev < *at && !rejected_at_.compare_exchange_weak(prev, *at)) {}
        ++deps_.metrics.config_rejections;
        deps_.metrics.config_last_error.set({cfg.error().message(), *at, wall_ms()});
        log.warn("config.rejected", {{"configUpdatedAt", *at},
                                     {"error", cfg.error().message()},
                                     {"kept", deps_.store.updated_at()},
                                     {"source", source}});
        co_return outcome::done;
    }
    const auto next = std::make_shared<const settings::runtime_config>(std::move(*cfg));
    if (disown)
        log.warn("config.version_disowned",
                 {{"applied", deps_.store.updated_at()}, {"configUpdatedAt", *at}, {"source", source}});
    bool changed = false;
    if (disown)
        changed = co_await deps_.store.replace(next);
    else
        changed = co_await deps_.store.update(next);
    if (!changed) co_return outcome::done;
    deps_.metrics.config_updated_at = *at;
    deps_.metrics.config_applied_at_ms = wall_ms();
    deps_.metrics.config_confirmed_ms = wall_ms();
    deps_.metrics.config_last_error.clear();
    ++deps_.metrics.config_applies;
    // Persisted after applying: a crash in between costs one refetch, while
    // a failing disk must not stop the node from enforcing the new config
    // (run() writes it again until the disk takes it).
    (void)co_await persist(next);
    // Logged once in force and, unless the disk refused it, on disk.
    json::array keys;
    for (const auto& k : next->keys()) keys.emplace_back(k);
    log.info("config.applied", {{"configUpdatedAt", *at}, {"keys", keys}, {"source", source}});
    co_return outcome::done;
}

awaitable<bool> config_sync_task::persist(settings::config_ptr cfg)
{
    const auto file = deps_.paths.config_file();
    std::function<int()> write = [file, text = settings::encode_config_file(*cfg)] {
        auth::write_atomically(file, text);
        return 0;
    };
    try {
        co_await blocking_call(deps_.blocking, std::move(write));
    } catch (const std::exception& e) {
        ++failed_writes_;
        ++deps_.metrics.config_persist_failures;
        next_persist_ = std::chrono::steady_clock::now() + deps_.persist_retry;
        deps_.log.warn("config.persist_failed",
                       {{"file", file.string()},
                        {"configUpdatedAt", cfg->updated_at},
                        {"error", e.what()},
                        {"action", "in force in memory; writing it again in " +
                                       std::to_string(deps_.persist_retry.count()) + " ms"}});
        co_return false;
    }
    deps_.metrics.config_persisted_at = cfg->updated_at;
    if (failed_writes_ > 0)
        deps_.log.info("config.persisted", {{"file", file.string()},
                                            {"configUpdatedAt", cfg->updated_at},
                                            {"failedWrites", failed_writes_}});
    failed_writes_ = 0;
    co_return true;
}

}  // namespace tether::app
