// The embedded backend behind the awaitable store: a synchronous `storage`
// (the SQLite file) used from one storage thread only, so its composite
// steps are atomic without locks, and events reach the sink in id order
// from that thread, as they are committed.
#pragma once

#include "gateway/storage.hpp"
#include "gateway/store.hpp"

#include <atomic>
#include <functional>

namespace tether::gateway {

class sqlite_store final : public store {
public:
    /// `db` is used on `storage_thread` only; both outlive this object.
    sqlite_store(storage& db, asio::any_io_executor storage_thread);

    void set_event_sink(event_sink sink) override { sink_ = std::move(sink); }

    awaitable<void> add_enrollment_code(std::string code_hash, std::string org_id, std::int64_t expires_ms,
                                        std::int64_t uses) override;
    awaitable<std::int64_t> remove_enrollment_codes(std::string code_hash, std::string org_id) override;
    awaitable<enrollment> enroll(std::string code_hash, node_record n, std::int64_t now_ms) override;
    awaitable<std::optional<login_record>> find_login(std::string node_id) override;
    awaitable<std::optional<node_record>> find_node(std::string node_id) override;
    awaitable<bool> node_is_live(std::string node_id) override;
    awaitable<live_config> record_heartbeat(std::string node_id, std::string org_id, std::int64_t now_ms,
                                            std::int64_t write_every_ms,
                                            std::optional<heartbeat_report> report) override;
    awaitable<std::optional<config_record>> latest_config(std::string org_id) override;
    awaitable<std::vector<node_record>> list_nodes(std::string org_id, std::string after_id,
                                                   std::size_t limit) override;
    awaitable<rollout_counts> rollout(std::string org_id, std::int64_t latest_at, online_span online,
                                      std::string after_id, std::size_t limit) override;
    awaitable<std::vector<std::string>> node_orgs(std::size_t limit) override;
    awaitable<std::optional<event_record>> revoke_node(std::string node_id, std::size_t keep) override;
    awaitable<std::int64_t> forget_nodes(std::string org_id, std::int64_t seen_before_ms) override;
    awaitable<std::int64_t> append_event(std::string org_id, std::string type, std::string data,
                                         std::size_t keep) override;
    awaitable<publish_outcome> publish_config(std::string org_id, std::string document, std::int64_t now_ms,
                                              std::optional<std::int64_t> if_latest,
                                              std::size_t keep) override;
    awaitable<event_history> replay(std::string org_id, std::optional<std::int64_t> after_id,
                                    std::size_t limit) override;
    awaitable<void> put_credential(credential_kind k, std::string hash, credential_record r,
                                   std::size_t keep) override;
    awaitable<bool> put_credential_capped(credential_kind k, std::string hash, credential_record r,
                                          std::size_t max_live, std::int64_t now_ms) override;
    awaitable<std::optional<credential_record>> take_credential(credential_kind k, std::string hash,
                                                                std::int64_t now_ms) override;
    awaitable<std::optional<credential_record>> find_credential(credential_kind k, std::string hash,
                                                                std::int64_t now_ms) override;
    awaitable<void> prune_credentials(std::int64_t now_ms) override;
    awaitable<void> ping() override;
    [[nodiscard]] store_status status() const override;
    [[nodiscard]] std::uint64_t node_writes() const noexcept override { return db_.node_writes(); }
    [[nodiscard]] std::string_view backend() const noexcept override { return "sqlite"; }

private:
    /// Runs `step` on the storage thread. Callers name the step (a lambda
    /// converted to std::function inside a co_await is a temporary GCC 12
    /// destroys twice).
    template <class R>
    awaitable<R> on_thread(std::function<R(storage&)> step);
    /// On the storage thread: appends and hands the event to the sink.
    event_record append(const std::string& org, const std::string& type, const std::string& data,
                        std::size_t keep);
    /// On the storage thread, once the event is committed: to the sink.
    void feed(const event_record& e);

    storage& db_;
    asio::any_io_executor thread_;
    event_sink sink_;
    std::atomic<std::int64_t> fed_{0};
};

}  // namespace tether::gateway
