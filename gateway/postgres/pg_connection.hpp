// One PostgreSQL connection driven by the event loop: libpq in
// non-blocking mode, its socket watched by Asio. Nothing here blocks an
// event-loop thread (PQconnectStartParams/PQconnectPoll, PQsendQueryParams,
// PQflush, PQconsumeInput, PQgetResult, PQnotifies). The gateway's
// PostgreSQL backend (issue 15) is built on it; this is its first piece.
#pragma once

#include "base/asio.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct pg_conn;

namespace tether::gateway::postgres {

/// A failure: the server's SQLSTATE when it sent one ("42601"), or ours:
/// "08000" connection failure, "57014" timed out (the connection is then
/// closed: a statement cut off mid-protocol leaves it unusable). A 57014
/// the server sent (its statement_timeout) leaves the connection open.
struct pg_error {
    std::string sqlstate;
    std::string message;
};

/// Rows of text values (null: nullopt), as the text protocol returns them.
struct pg_rows {
    std::vector<std::string> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;
    std::int64_t affected = 0;  ///< rows an INSERT/UPDATE/DELETE touched
};

struct pg_notification {
    std::string channel;
    std::string payload;
};

template <class T>
using pg_result = boost::system::result<T, pg_error>;

/// Thread safety: one coroutine at a time uses a connection (a pool hands
/// connections out); every member runs on the caller's executor.
class pg_connection {
public:
    explicit pg_connection(asio::any_io_executor ex);
    ~pg_connection();
    pg_connection(const pg_connection&) = delete;
    pg_connection& operator=(const pg_connection&) = delete;

    /// `conninfo`: a libpq connection string or a postgres:// URI. Host
    /// names are resolved by libpq synchronously: give a Unix socket
    /// directory or an IP address (hostaddr) to keep it off the loop.
    awaitable<pg_result<bool>> connect(std::string conninfo, std::chrono::milliseconds timeout);

    /// One statement with text parameters ($1, $2, ...; nullopt is NULL).
    /// With parameters it is prepared on first use and reused after.
    /// `timeout` bounds each answer from the server: a first use waits for
    /// two, the Prepare's and then the Execute's, each `timeout` at most.
    awaitable<pg_result<pg_rows>> query(std::string sql, std::vector<std::optional<std::string>> params,
                                        std::chrono::milliseconds timeout);

    /// Several statements in one string (a migration), no parameters; the
    /// first failure, else the first statement's result.
    awaitable<pg_result<pg_rows>> script(std::string sql, std::chrono::milliseconds timeout);

    /// The next NOTIFY for a channel this connection LISTENs on (issued with
    /// query), or nullopt when none came within `timeout`.
    awaitable<pg_result<std::optional<pg_notification>>> next_notification(std::chrono::milliseconds timeout);

    [[nodiscard]] bool connected() const noexcept;
    /// For an idle connection, without blocking: false (and closed) when
    /// the server has ended it meanwhile (a restart, pg_terminate_backend),
    /// which libpq only notices at the next statement otherwise. Reads
    /// notifications that arrived.
    bool still_open();

    static constexpr std::size_t max_pending_notifications = 1024;
    /// Named prepared statements kept per connection; beyond it, unnamed.
    static constexpr std::size_t max_prepared = 128;
    void close() noexcept;

private:
    enum class wait_for { read, write };
    /// Waits until libpq's socket is ready; false on timeout or error.
    awaitable<bool> wait(wait_for what, std::chrono::steady_clock::time_point deadline);
    pg_error failure(std::string sqlstate, std::string fallback) const;
    /// Moves what libpq has received into `pending_`, keeping at most
    /// max_pending_notifications (the oldest go first).
    void take_notifications();
    /// Flushes the sent statement and collects its results.
    awaitable<pg_result<pg_rows>> finish(std::chrono::steady_clock::time_point deadline);

    asio::any_io_executor ex_;
    pg_conn* conn_ = nullptr;
    std::deque<pg_notification> pending_;
    std::map<std::string, std::string> prepared_;  // SQL text -> statement name
};

}  // namespace tether::gateway::postgres
