// Exponential backoff with full jitter: pure arithmetic, no clock, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace tether {

/// Uniform double in [0, 1). Production draws from a per-process seeded
/// generator (a fixed seed would make a whole fleet retry in lockstep);
/// tests pass a fixed sequence.
using uniform01 = std::function<double()>;

/// A generator seeded once per process from std::random_device. Thread-safe.
uniform01 process_random();

/// The delay before attempt n is uniform in [0, min(cap, base * 2^n)]
/// ("full jitter"). The caller decides when a connection was healthy long
/// enough to `reset()`, measuring on the steady clock. Not thread-safe: one
/// owner (a task) uses it.
class backoff {
public:
    struct policy {
        std::chrono::milliseconds base{1000};
        std::chrono::milliseconds cap{60000};
    };

    backoff(policy p, uniform01 rand) : policy_(p), rand_(std::move(rand)) {}

    /// The delay to wait now; each call counts one more failure.
    std::chrono::milliseconds next();

    /// min(cap, base * 2^failures), without overflow; zero for a base <= 0.
    static std::chrono::milliseconds ceiling_after(const policy& p, std::uint32_t failures) noexcept;

    /// The ceiling the next call draws under (for logs and tests).
    [[nodiscard]] std::chrono::milliseconds ceiling() const noexcept;

    void reset() noexcept { failures_ = 0; }

    /// SSE `retry:` replaces the base; the cap still holds.
    void set_base(std::chrono::milliseconds base) noexcept { policy_.base = base; }

    [[nodiscard]] std::uint32_t failures() const noexcept { return failures_; }
    [[nodiscard]] const policy& current_policy() const noexcept { return policy_; }

private:
    policy policy_;
    uniform01 rand_;
    std::uint32_t failures_ = 0;
};

}  // namespace tether
