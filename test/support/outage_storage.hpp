// A storage that can be switched off: every call throws, as a database that
// went away does. Forwards to a real one otherwise.
#pragma once

#include "gateway/storage.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>

namespace tether::test {

class outage_storage final : public gateway::storage {
public:
    explicit outage_storage(std::unique_ptr<gateway::storage> inner) : inner_(std::move(inner)) {}

    std::atomic<bool> down{false};

    void add_enrollment_code(const std::string& h, const std::string& org, std::int64_t exp) override
    {
        up().add_enrollment_code(h, org, exp);
    }
    std::optional<std::string> consume_enrollment_code(const std::string& h, std::int64_t now) override
    {
        return up().consume_enrollment_code(h, now);
    }
    void release_enrollment_code(const std::string& h) override { up().release_enrollment_code(h); }
    void insert_node(const gateway::node_record& n) override { up().insert_node(n); }
    std::optional<gateway::node_record> find_node(const std::string& id) override
    {
        return up().find_node(id);
    }
    std::optional<login_record> find_login(const std::string& id) override { return up().find_login(id); }
    bool public_key_taken(const std::string& k) override { return up().public_key_taken(k); }
    void touch_node(const std::string& id, std::int64_t t) override { up().touch_node(id, t); }
    bool revoke_node(const std::string& id) override { return up().revoke_node(id); }
    std::vector<gateway::node_record> list_nodes(const std::string& org, const std::string& after,
                                                 std::size_t limit) override
    {
        return up().list_nodes(org, after, limit);
    }
    std::int64_t publish_config(const std::string& org, const std::string& doc, std::int64_t now) override
    {
        return up().publish_config(org, doc, now);
    }
    std::optional<gateway::config_record> latest_config(const std::string& org) override
    {
        return up().latest_config(org);
    }
    std::int64_t append_event(const std::string& org, const std::string& type, const std::string& data,
                              std::size_t keep) override
    {
        return up().append_event(org, type, data, keep);
    }
    std::vector<gateway::event_record> events_after(const std::string& org, std::int64_t after) override
    {
        return up().events_after(org, after);
    }
    std::int64_t pruned_upto(const std::string& org) override { return up().pruned_upto(org); }
    std::int64_t last_event_id() override { return up().last_event_id(); }
    void put_credential(credential_kind k, const std::string& h, const credential_record& r) override
    {
        up().put_credential(k, h, r);
    }
    std::optional<credential_record> take_credential(credential_kind k, const std::string& h,
                                                     std::int64_t now) override
    {
        return up().take_credential(k, h, now);
    }
    std::optional<credential_record> find_credential(credential_kind k, const std::string& h,
                                                     std::int64_t now) override
    {
        return up().find_credential(k, h, now);
    }
    std::size_t count_credentials(credential_kind k, const std::string& node, std::int64_t now) override
    {
        return up().count_credentials(k, node, now);
    }
    void trim_credentials(credential_kind k, const std::string& node, std::size_t keep) override
    {
        up().trim_credentials(k, node, keep);
    }
    void drop_credentials(credential_kind k, const std::string& node) override
    {
        up().drop_credentials(k, node);
    }
    void prune_credentials(std::int64_t now) override { up().prune_credentials(now); }
    [[nodiscard]] std::uint64_t node_writes() const noexcept override { return inner_->node_writes(); }

private:
    gateway::storage& up()
    {
        if (down) throw std::runtime_error("database unavailable (test outage)");
        return *inner_;
    }
    std::unique_ptr<gateway::storage> inner_;
};

}  // namespace tether::test
