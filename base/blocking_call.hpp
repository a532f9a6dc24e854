// Running blocking work (disk, SQLite) off the event loop, and wall time.
#pragma once

#include "base/asio.hpp"

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
template <class R>
awaitable<R> blocking_call(asio::any_io_executor ex, std::function<R()> fn)
{
    R out = co_await asio::co_spawn(std::move(ex), detail::call_here<R>(std::move(fn)), use_awaitable);
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
