// Runs one coroutine to completion on an io_context, with a wall-clock cap:
// a hang fails the test instead of freezing it.
#pragma once

#include "net/asio.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <exception>
#include <optional>

namespace tether::test {

template <class T>
T run_for(asio::io_context& ioc, awaitable<T> op, std::chrono::milliseconds cap = std::chrono::seconds(20))
{
    std::optional<T> out;
    std::exception_ptr err;
    bool done = false;
    asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T v) {
        err = e;
        done = true;
        if (!e) out.emplace(std::move(v));
    });
    ioc.restart();
    const auto deadline = std::chrono::steady_clock::now() + cap;
    while (!done && std::chrono::steady_clock::now() < deadline)
        ioc.run_one_for(std::chrono::milliseconds(50));
    if (err) std::rethrow_exception(err);
    BOOST_TEST_REQUIRE(done, "coroutine did not finish within the cap");
    return std::move(*out);
}

inline void run_for(asio::io_context& ioc, awaitable<void> op,
                    std::chrono::milliseconds cap = std::chrono::seconds(20))
{
    std::exception_ptr err;
    bool done = false;
    asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e) {
        err = e;
        done = true;
    });
    ioc.restart();
    const auto deadline = std::chrono::steady_clock::now() + cap;
    while (!done && std::chrono::steady_clock::now() < deadline)
        ioc.run_one_for(std::chrono::milliseconds(50));
    if (err) std::rethrow_exception(err);
    BOOST_TEST_REQUIRE(done, "coroutine did not finish within the cap");
}

}  // namespace tether::test
