// The broker's proxy loop: one coroutine per child stream, written for the
// broker alone. It reads requests with the shared sans-IO reader, writes
// heads by hand into one buffer per stream, keeps its own pool of upstream
// connections and enforces every deadline from one watchdog, so a request
// costs a read and a write on each side and no timer operation at all
// (docs/benchmarks.md, issue 16: the general server and client spent about
// twice nginx's CPU on a brokered request).
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"

#include <boost/asio/local/stream_protocol.hpp>

#include <memory>

namespace tether::auth {

struct broker_options;
struct broker_stats;
class credential_source;

class stream_proxy {
public:
    stream_proxy(asio::any_io_executor ex, const broker_options& opts, credential_source& creds,
                 const log::logger& log, broker_stats& stats);
    ~stream_proxy();
    stream_proxy(const stream_proxy&) = delete;
    stream_proxy& operator=(const stream_proxy&) = delete;

    /// Serves one child stream until it closes, fails, times out or is
    /// cancelled. Never throws for anything the child or upstream does.
    awaitable<void> serve(asio::local::stream_protocol::socket child);

    /// Cancels the operation of every stream whose deadline passed. Runs
    /// until cancelled; every serve() must run on the same executor.
    awaitable<void> watch_deadlines();

    /// Streams being served now (spawned ones count once they run).
    std::size_t open_streams() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace tether::auth
