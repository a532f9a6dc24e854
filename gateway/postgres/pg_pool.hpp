// A small pool of event-loop PostgreSQL connections: at most `size` open,
// each handed to one statement at a time; connections that break are closed
// and made again on demand, with jittered backoff between failed connects,
// so a database outage costs callers a fast error, not a hang or a storm.
#pragma once

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "gateway/postgres/pg_connection.hpp"

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <vector>

namespace tether::gateway::postgres {

struct pool_options {
    std::string conninfo;
    std::size_t size = 4;  ///< connections at most (--db-pool-size)
    std::chrono::milliseconds connect_timeout{5'000};
    /// The wait for a free connection, and each statement: this is each
    /// connection's `statement_timeout`, so PostgreSQL itself cancels a
    /// statement that runs out, and nothing a caller was told had failed
    /// goes on waiting (for a lock, say) and commits later. A transaction
    /// starts no statement after the call's time is up.
    std::chrono::milliseconds statement_timeout{5'000};
    /// How much longer than `statement_timeout` a statement's answer is
    /// awaited (the server's own cancellation, a network's delay) before
    /// the connection is given up and closed.
    std::chrono::milliseconds server_grace{1'000};
    backoff::policy reconnect{std::chrono::milliseconds(100), std::chrono::milliseconds(5'000)};
};

/// Thread safety: one strand; every member and every query runs on it.
class pg_pool {
public:
    pg_pool(asio::any_io_executor ex, pool_options opts, uniform01 rand, const log::logger& log);
    pg_pool(const pg_pool&) = delete;
    pg_pool& operator=(const pg_pool&) = delete;

    /// One statement on a free connection. Fails at once with 08000 while
    /// the database is refusing connections (until the backoff allows the
    /// next attempt), with 57014 when no connection came free in time or
    /// the server cancelled the statement at its timeout (the connection
    /// stays). A connection-level failure closes that connection; nothing
    /// is retried (a statement may have taken effect).
    awaitable<pg_result<pg_rows>> query(std::string sql, std::vector<std::optional<std::string>> params);

    struct statement {
        std::string sql;
        std::vector<std::optional<std::string>> params;
        /// A condition: when this statement returns no row, the rest are
        /// not run and the transaction is rolled back.
        bool rest_only_if_rows = false;
    };
    /// The statements in one transaction on one connection (BEGIN ...
    /// COMMIT; ROLLBACK on the first failure); each statement's rows, fewer
    /// than the statements when a condition stopped it.
    awaitable<pg_result<std::vector<pg_rows>>> transaction(std::vector<statement> statements);

    [[nodiscard]] std::size_t in_use() const noexcept { return in_use_; }
    [[nodiscard]] std::size_t open() const noexcept;

private:
    struct slot {
        std::unique_ptr<pg_connection> conn;
        bool busy = false;
    };
    /// A free slot, connected; or an error. Waits for a slot up to `deadline`.
    awaitable<pg_result<slot*>> acquire(std::chrono::steady_clock::time_point deadline);
    void release(slot& s);
    /// A connection that could not be made or set up: closed, and no
    /// other is tried until the backoff allows.
    void connect_failed(slot& s, const pg_error& e);
    /// After a statement: a connection that broke is closed, then the slot is free.
    void give_back(slot& s, const std::optional<pg_error>& failed);
    /// How long a statement's answer is awaited: the server cancels it at
    /// statement_timeout, and its answer is then on the way.
    [[nodiscard]] std::chrono::milliseconds answer_within() const
    {
        return opts_.statement_timeout + opts_.server_grace;
    }

    asio::any_io_executor ex_;
    pool_options opts_;
    const log::logger& log_;
    std::vector<slot> slots_;
    std::size_t in_use_ = 0;
    backoff reconnect_;
    std::chrono::steady_clock::time_point next_connect_{};
    std::list<timer*> waiters_;  // oldest first; a release wakes the oldest
};

}  // namespace tether::gateway::postgres
