// The gateway URLs an agent may use, for deployments without a load
// balancer: shuffled once at start (so a fleet spreads over the replicas),
// then used in order; a call that another replica could answer (transport
// failure, unavailable, deadline) moves every user of the set to the next.
// With one URL nothing changes.
#pragma once

#include "base/backoff.hpp"
#include "net/url.hpp"

#include <memory>
#include <mutex>
#include <vector>

namespace tether::net {

/// A handle: copies share the current position. Thread-safe.
class server_set {
public:
    /// One URL (implicit: every place that took a URL takes a set of one).
    server_set(url only);  // NOLINT(google-explicit-constructor)
    /// `urls` not empty; shuffled once with `rand`.
    server_set(std::vector<url> urls, const uniform01& rand);

    [[nodiscard]] url current() const;
    /// A call to `u` failed in a way another replica could answer: when `u`
    /// is still current, the next URL becomes current (wrapping around).
    void failed(const url& u) const;
    /// Every URL, in the order they are tried from the current one on.
    [[nodiscard]] std::vector<url> in_order() const;
    [[nodiscard]] std::size_t size() const noexcept { return state_->urls.size(); }

private:
    struct state {
        std::vector<url> urls;
        mutable std::mutex m;
        std::size_t at = 0;
    };
    std::shared_ptr<state> state_;
};

/// Splits a comma-separated --server value ("https://a,https://b"), trimming
/// blanks; empty parts are dropped.
std::vector<std::string> split_server_list(std::string_view text);

}  // namespace tether::net
