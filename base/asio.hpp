// The one place that names Asio's completion tokens for this project.
// Boost 1.81 has no default completion token, so every co_await spells one.
//
// GCC 12 coroutine rules, each learned from an ASan report in this tree:
//  * bind a co_await result to a local before using it in a larger
//    expression (`auto ex = co_await this_coro::executor; T t{ex, ...};`),
//  * co_return a named local, not a temporary converted to the return type,
//  * do not pass braced prvalues (`T{}`) as arguments inside a co_await,
//  * coroutine parameters by value; coroutine lambdas without captures
//    unless the lambda object outlives the coroutine.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace tether {

namespace asio = boost::asio;
using boost::system::error_code;
template <class T>
using result = boost::system::result<T>;

template <class T = void>
using awaitable = asio::awaitable<T>;

/// co_await throws boost::system::system_error on failure.
inline constexpr asio::use_awaitable_t<> use_awaitable{};
/// co_await yields std::tuple<error_code, ...>: for failures that are normal.
inline constexpr asio::as_tuple_t<asio::use_awaitable_t<>> nothrow{};

using timer = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<asio::steady_timer>;

}  // namespace tether
