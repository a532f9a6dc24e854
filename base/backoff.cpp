#include "base/backoff.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <random>

namespace tether {

uniform01 process_random()
{
    struct state {
        std::mutex m;
        std::mt19937_64 gen{std::random_device{}()};
        std::uniform_real_distribution<double> dist{0.0, 1.0};
    };
    auto s = std::make_shared<state>();
    return [s] {
        const std::lock_guard lock(s->m);
        return s->dist(s->gen);
    };
}

std::chrono::milliseconds backoff::ceiling_after(const policy& p, std::uint32_t failures) noexcept
{
    using ms = std::chrono::milliseconds;
    if (p.base <= ms::zero()) return ms::zero();
    // Shift bounded so base * 2^n cannot overflow before the cap applies.
    const std::uint32_t shift = std::min<std::uint32_t>(failures, 30);
    const auto limit = p.cap.count();
    const auto base = p.base.count();
    if (base > (limit >> shift)) return p.cap;
    return std::min(p.cap, ms{base << shift});
}

std::chrono::milliseconds backoff::ceiling() const noexcept
{
    return ceiling_after(policy_, failures_);
}

std::chrono::milliseconds backoff::next()
{
    const auto top = ceiling();
    if (failures_ < UINT32_MAX) ++failures_;
    double r = rand_ ? rand_() : 0.0;
    r = std::clamp(r, 0.0, 1.0);
    return std::chrono::milliseconds{static_cast<std::int64_t>(static_cast<double>(top.count()) * r)};
}

}  // namespace tether
