// Driving an io_context from a test with wall-clock caps: a hang fails the
// test instead of freezing it.
#pragma once

#include "base/asio.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <optional>

namespace tether::test {

/// Runs handlers until `done()` holds or `cap` passes; returns `done()`.
inline bool poll_until(asio::io_context& ioc, const std::function<bool()>& done,
                       std::chrono::milliseconds cap = std::chrono::seconds(20))
{
    ioc.restart();
    const auto deadline = std::chrono::steady_clock::now() + cap;
    while (!done() && std::chrono::steady_clock::now() < deadline)
        ioc.run_one_for(std::chrono::milliseconds(50));
    return done();
}

/// Runs handlers for `d` (wall clock), whatever happens.
inline void pump_for(asio::io_context& ioc, std::chrono::milliseconds d)
{
    poll_until(
        ioc, [] { return false; }, d);
}

/// Runs one coroutine to completion; its exception is rethrown here.
inline void run_for(asio::io_context& ioc, awaitable<void> op,
                    std::chrono::milliseconds cap = std::chrono::seconds(20))
{
    std::exception_ptr err;
    bool done = false;
    asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e) {
        err = e;
        done = true;
    });
    poll_until(
        ioc, [&] { return done; }, cap);
    if (err) std::rethrow_exception(err);
    BOOST_TEST_REQUIRE(done, "coroutine did not finish within the cap");
}

namespace detail {
template <class T>
awaitable<void> store_result(awaitable<T> op, std::optional<T>& out)
{
    T v = co_await std::move(op);
    out.emplace(std::move(v));
}
}  // namespace detail

template <class T>
T run_for(asio::io_context& ioc, awaitable<T> op, std::chrono::milliseconds cap = std::chrono::seconds(20))
{
    std::optional<T> out;
    run_for(ioc, detail::store_result(std::move(op), out), cap);
    return std::move(*out);
}

/// A coroutine pause on the caller's executor.
inline awaitable<void> sleep_for(std::chrono::milliseconds d)
{
    const auto ex = co_await asio::this_coro::executor;  // bound first: GCC 12 rule in base/asio.hpp
    timer t{ex, d};
    co_await t.async_wait();
}

}  // namespace tether::test
