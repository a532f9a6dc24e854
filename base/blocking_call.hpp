// Running blocking work (disk, SQLite) off the event loop, and wall time.
#pragma once

#include "base/asio.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>

#include <chrono>
#include <cstdint>
#include <functional>

namespace tether {

namespace detail {
template <class R>
awaitable<R> call_here(std::function<R()> fn)
{
    R out = fn();  // a named local: GCC 12 and converted co_return temporaries
    co_return out;
}
}  // namespace detail

/// Runs `fn` on `ex` (a thread pool for blocking calls) and resumes the
/// caller on its own executor with the result; exceptions propagate.
/// Callers pass a named std::function, not a lambda temporary (see asio.hpp).
///
/// The caller's cancellation is not passed on: `fn` cannot be interrupted,
/// so the caller waits for it either way, and passing it on is a race in
/// Boost 1.81. co_spawn forwards a cancellation by dispatching to `ex` a
/// pointer into the caller's cancellation slot; when `fn` completes and the
/// caller resumes (clearing that slot) before `ex` runs the dispatch, the
/// emit writes freed memory. ASan caught it once in a gateway stopping
/// during a SQLite call (process_test, 2026-12-05). A cancelled caller
/// sees its cancellation at its next wait.
template <class R>
awaitable<R> blocking_call(asio::any_io_executor ex, std::function<R()> fn)
{
    auto token = asio::bind_cancellation_slot(asio::cancellation_slot(), use_awaitable);
    R out = co_await asio::co_spawn(std::move(ex), detail::call_here<R>(std::move(fn)), std::move(token));
    co_return out;
}

/// Milliseconds since the Unix epoch on the wall clock: for timestamps that
/// leave the process, never for measuring durations (use steady_clock).
inline std::int64_t wall_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace tether
