#include "gateway/fleet_history.hpp"

#include <algorithm>

namespace tether::gateway {

void fleet_history::record(const std::string& org_id, std::int64_t at_ms, std::size_t online)
{
    const std::lock_guard lock(m_);
    auto it = by_org_.find(org_id);
    if (it == by_org_.end()) {
        if (by_org_.size() >= max_orgs) return;
        it = by_org_.emplace(org_id, std::vector<sample>{}).first;
    }
    auto& v = it->second;
    std::erase_if(v, [&](const sample& s) { return s.at_ms < at_ms - span_ms || s.at_ms > at_ms; });
    if (v.size() >= max_samples) v.erase(v.begin());
    v.push_back({at_ms, online});
}

std::vector<fleet_history::sample> fleet_history::samples(const std::string& org_id) const
{
    const std::lock_guard lock(m_);
    const auto it = by_org_.find(org_id);
    return it == by_org_.end() ? std::vector<sample>{} : it->second;
}

}  // namespace tether::gateway
