// Running a coroutine on another executor (a connection pool's strand) and
// resuming the caller on its own, with the caller's cancellation passed on.
#pragma once

#include "base/asio.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <memory>
#include <utility>

namespace tether {

namespace detail {

/// Starts `op` on `ex` and completes `handler` with its result on the
/// handler's executor.
///
/// Why not `co_await co_spawn(ex, op, use_awaitable)`: Boost 1.81's co_spawn
/// passes a caller's cancellation on by dispatching to `ex` a pointer into
/// memory owned by the caller's cancellation slot. When `op` completes and
/// the caller resumes (clearing that slot) before `ex` runs the dispatch,
/// the emit writes freed memory (ASan saw it with a gateway stopping during
/// a storage call). Here the caller's slot holds a handler that dispatches
/// a shared signal, and co_spawn's own handler lives in that signal, which
/// everyone who may still touch it keeps alive: the caller's slot, each
/// dispatched emit, and `ex` until the spawned coroutine has been torn down.
template <class Op, class Handler>
void start_on(const asio::any_io_executor& ex, Op op, Handler handler)
{
    auto sig = std::make_shared<asio::cancellation_signal>();
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected())
        slot.assign([sig, ex](asio::cancellation_type type) {
            asio::dispatch(ex, [sig, type] { sig->emit(type); });
        });
    auto work = asio::make_work_guard(asio::get_associated_executor(handler, ex));
    auto done = [sig, ex, h = std::move(handler), w = std::move(work)](auto... result) mutable {
        // Runs on `ex`, inside the spawned coroutine's last step: the
        // signal stays alive until that step (its teardown) is over.
        asio::post(ex, [sig] {});
        asio::post(w.get_executor(), [h = std::move(h), ... r = std::move(result)]() mutable {
            std::move(h)(std::move(r)...);
        });
        w.reset();
    };
    asio::co_spawn(ex, std::move(op), asio::bind_cancellation_slot(sig->slot(), std::move(done)));
}

}  // namespace detail

/// Runs `op` on `ex` and resumes the caller on its own executor with the
/// result; exceptions propagate; the caller's cancellation reaches `op`.
template <class T>
awaitable<T> run_on(asio::any_io_executor ex, awaitable<T> op)
{
    // A named local: GCC 12 destroys a lambda temporary inside a co_await
    // expression twice (base/asio.hpp).
    auto start = [ex](auto handler, awaitable<T> o) {
        detail::start_on(ex, std::move(o), std::move(handler));
    };
    T out = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr, T)>(
        std::move(start), use_awaitable, std::move(op));
    co_return out;  // a named local: GCC 12 and converted co_return temporaries
}

/// The same for a coroutine with no result.
inline awaitable<void> run_on(asio::any_io_executor ex, awaitable<void> op)
{
    auto start = [ex](auto handler, awaitable<void> o) {
        detail::start_on(ex, std::move(o), std::move(handler));
    };
    co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr)>(
        std::move(start), use_awaitable, std::move(op));
}

}  // namespace tether
