// How many nodes of each org were online over the last hour, sampled by the
// gateway itself (the console's chart). In memory, per replica: replicas
// sample the same database, so their charts agree for the time both ran.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tether::gateway {

class fleet_history {
public:
    struct sample {
        std::int64_t at_ms = 0;
        std::size_t online = 0;
    };

    static constexpr std::size_t max_orgs = 1000;
    static constexpr std::int64_t span_ms = 3'600'000;
    static constexpr std::size_t max_samples = 360;  ///< one every 10 s at the most

    /// Thread-safe. Samples older than the span go; beyond max_orgs, a new
    /// org is not recorded (the sampler reads at most that many).
    void record(const std::string& org_id, std::int64_t at_ms, std::size_t online);
    [[nodiscard]] std::vector<sample> samples(const std::string& org_id) const;

private:
    mutable std::mutex m_;
    std::map<std::string, std::vector<sample>> by_org_;
};

}  // namespace tether::gateway
