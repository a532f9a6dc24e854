// A store that can be switched off: every call throws, as a database that
// went away does. Forwards to a real backend otherwise, so the outage tests
// run the same on SQLite and PostgreSQL.
#pragma once

#include "gateway/store.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>

namespace tether::test {

class outage_store final : public gateway::store {
public:
    explicit outage_store(gateway::store& inner) : inner_(inner) {}

    std::atomic<bool> down{false};

    void set_event_sink(event_sink sink) override { inner_.set_event_sink(std::move(sink)); }
    awaitable<void> add_enrollment_code(std::string h, std::string org, std::int64_t exp,
                                        std::int64_t uses) override
    {
        co_await up().add_enrollment_code(std::move(h), std::move(org), exp, uses);
    }
    awaitable<std::int64_t> remove_enrollment_codes(std::string h, std::string org) override
    {
        const auto r = co_await up().remove_enrollment_codes(std::move(h), std::move(org));
        co_return r;
    }
    awaitable<enrollment> enroll(std::string h, gateway::node_record n, std::int64_t now) override
    {
        auto r = co_await up().enroll(std::move(h), std::move(n), now);
        co_return r;
    }
    awaitable<std::optional<gateway::login_record>> find_login(std::string id) override
    {
        auto r = co_await up().find_login(std::move(id));
        co_return r;
    }
    awaitable<std::optional<gateway::node_record>> find_node(std::string id) override
    {
        auto r = co_await up().find_node(std::move(id));
        co_return r;
    }
    awaitable<bool> node_is_live(std::string id) override
    {
        const bool r = co_await up().node_is_live(std::move(id));
        co_return r;
    }
    awaitable<std::optional<gateway::config_record>> latest_config(std::string org) override
    {
        auto r = co_await up().latest_config(std::move(org));
        co_return r;
    }
    awaitable<gateway::live_config> record_heartbeat(std::string id, std::string org, std::int64_t now,
                                                     std::int64_t every,
                                                     std::optional<gateway::heartbeat_report> report) override
    {
        auto r = co_await up().record_heartbeat(std::move(id), std::move(org), now, every, std::move(report));
        co_return r;
    }
    awaitable<std::vector<gateway::node_record>> list_nodes(std::string org, std::string after,
                                                            std::size_t limit) override
    {
        auto r = co_await up().list_nodes(std::move(org), std::move(after), limit);
        co_return r;
    }
    awaitable<gateway::rollout_counts> rollout(std::string org, std::int64_t latest,
                                               gateway::online_span online, std::string after,
                                               std::size_t limit) override
    {
        auto r = co_await up().rollout(std::move(org), latest, online, std::move(after), limit);
        co_return r;
    }
    awaitable<std::vector<std::string>> node_orgs(std::size_t limit) override
    {
        auto r = co_await up().node_orgs(limit);
        co_return r;
    }
    awaitable<std::int64_t> append_event(std::string org, std::string type, std::string data,
                                         std::size_t keep) override
    {
        auto r = co_await up().append_event(std::move(org), std::move(type), std::move(data), keep);
        co_return r;
    }
    awaitable<std::int64_t> forget_nodes(std::string org, std::int64_t before) override
    {
        const auto r = co_await up().forget_nodes(std::move(org), before);
        co_return r;
    }
    awaitable<std::optional<gateway::event_record>> revoke_node(std::string id, std::size_t keep) override
    {
        auto r = co_await up().revoke_node(std::move(id), keep);
        co_return r;
    }
    awaitable<gateway::publish_outcome> publish_config(std::string org, std::string doc, std::int64_t now,
                                                       std::optional<std::int64_t> if_latest,
                                                       std::size_t keep) override
    {
        const auto r = co_await up().publish_config(std::move(org), std::move(doc), now, if_latest, keep);
        co_return r;
    }
    awaitable<gateway::event_history> replay(std::string org, std::optional<std::int64_t> after,
                                             std::size_t limit) override
    {
        auto r = co_await up().replay(std::move(org), after, limit);
        co_return r;
    }
    awaitable<void> put_credential(gateway::credential_kind k, std::string h, gateway::credential_record c,
                                   std::size_t keep) override
    {
        co_await up().put_credential(k, std::move(h), std::move(c), keep);
    }
    awaitable<bool> put_credential_capped(gateway::credential_kind k, std::string h,
                                          gateway::credential_record c, std::size_t max_live,
                                          std::int64_t now) override
    {
        const bool r = co_await up().put_credential_capped(k, std::move(h), std::move(c), max_live, now);
        co_return r;
    }
    awaitable<std::optional<gateway::credential_record>> take_credential(gateway::credential_kind k,
                                                                         std::string h,
                                                                         std::int64_t now) override
    {
        auto r = co_await up().take_credential(k, std::move(h), now);
        co_return r;
    }
    awaitable<std::optional<gateway::credential_record>> find_credential(gateway::credential_kind k,
                                                                         std::string h,
                                                                         std::int64_t now) override
    {
        auto r = co_await up().find_credential(k, std::move(h), now);
        co_return r;
    }
    awaitable<void> prune_credentials(std::int64_t now) override { co_await up().prune_credentials(now); }
    awaitable<void> ping() override { co_await up().ping(); }
    [[nodiscard]] gateway::store_status status() const override { return inner_.status(); }
    [[nodiscard]] std::uint64_t node_writes() const noexcept override { return inner_.node_writes(); }
    [[nodiscard]] std::string_view backend() const noexcept override { return inner_.backend(); }

private:
    gateway::store& up()
    {
        if (down) throw std::runtime_error("database unavailable (test outage)");
        return inner_;
    }
    gateway::store& inner_;
};

}  // namespace tether::test
