// The replicated backend: every call is one statement (or one transaction)
// on the pool; events reach this replica's sink only through the tail, so
// a stream sees what any replica published, in id order, exactly once.
#pragma once

#include "gateway/postgres/pg_events.hpp"
#include "gateway/postgres/pg_pool.hpp"
#include "gateway/store.hpp"

#include <boost/asio/strand.hpp>

#include <atomic>
#include <memory>

namespace tether::gateway::postgres {

struct store_options {
    pool_options pool;  ///< pool.conninfo is also the LISTEN connection's
    std::chrono::milliseconds poll{500};
    /// /readyz fails when the tail has not read everything for this long.
    std::chrono::milliseconds max_tail_lag{2'000};
};

class pg_store final : public store {
public:
    pg_store(asio::any_io_executor ex, store_options opts, uniform01 rand, const log::logger& log);
    ~pg_store() override;

    /// Applies the migrations (under the advisory lock) and positions the
    /// tail at the newest committed event. Before serving; a failure
    /// (unreachable, a schema newer than this build: TE001) is returned.
    awaitable<pg_result<int>> open();

    /// The tail task: feeds the sink until cancelled. After open().
    awaitable<void> run_feed();

    /// Expired credentials go this many rows per statement, at most
    /// prune_batches statements per prune_credentials().
    static constexpr std::int64_t prune_batch_rows = 10'000;
    static constexpr int prune_batches = 50;

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
    [[nodiscard]] std::uint64_t node_writes() const noexcept override { return node_writes_.load(); }
    [[nodiscard]] std::string_view backend() const noexcept override { return "postgres"; }

private:
    using params = std::vector<std::optional<std::string>>;
    /// One statement on the pool, on the strand; throws on failure.
    awaitable<pg_rows> run(std::string sql, params p);
    awaitable<pg_rows> run_here(std::string sql, params p);
    /// Statements in one transaction, on the strand; throws on failure.
    awaitable<std::vector<pg_rows>> run_transaction(std::vector<pg_pool::statement> steps);
    awaitable<std::vector<pg_rows>> run_transaction_here(std::vector<pg_pool::statement> steps);
    /// The statements that append one event of `org` (after the publish
    /// lock) and prune its history to `keep`; the first returns the id.
    static void append_event_steps(std::vector<pg_pool::statement>& steps, const std::string& org,
                                   std::string type, std::string data_sql, params data_params,
                                   std::size_t keep);

    asio::strand<asio::any_io_executor> strand_;
    store_options opts_;
    const log::logger& log_;
    uniform01 rand_;
    std::unique_ptr<pg_pool> pool_;
    std::unique_ptr<event_tail> tail_;
    event_sink sink_;
    std::atomic<std::uint64_t> node_writes_{0};
    std::atomic<std::int64_t> fed_{0};
    std::atomic<std::int64_t> caught_up_ms_{0};  // steady clock, ms
    std::atomic<bool> listening_{false};
    std::atomic<std::size_t> in_use_{0};
    std::atomic<std::size_t> open_{0};
};

}  // namespace tether::gateway::postgres
