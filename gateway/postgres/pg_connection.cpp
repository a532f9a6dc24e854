#include "gateway/postgres/pg_connection.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <poll.h>

#include <libpq-fe.h>

namespace tether::gateway::postgres {

namespace {

using clock = std::chrono::steady_clock;

/// libpq's messages span lines ("...failed: ...\n\tIs the server running..."):
/// one line for the log and the operator's terminal.
std::string trimmed(const char* text)
{
    std::string s;
    for (const char* p = text ? text : ""; *p; ++p) {
        const bool space = *p == '\n' || *p == '\t' || *p == '\r';
        if (space && (s.empty() || s.back() == ' ')) continue;
        s += space ? ' ' : *p;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

}  // namespace

pg_connection::pg_connection(asio::any_io_executor ex) : ex_(std::move(ex)) {}

pg_connection::~pg_connection()
{
    close();
}

bool pg_connection::connected() const noexcept
{
    return conn_ && PQstatus(conn_) == CONNECTION_OK;
}

void pg_connection::close() noexcept
{
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    pending_.clear();
    prepared_.clear();  // they lived in the server session that just ended
}

bool pg_connection::still_open()
{
    if (!connected()) return false;
    // An ended connection is readable: the server's goodbye, then EOF.
    for (int round = 0; round < 4; ++round) {
        pollfd p{PQsocket(conn_), POLLIN, 0};
        const int r = ::poll(&p, 1, 0);
        if (r == 0) return true;
        if (r < 0 || PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
            close();
            return false;
        }
        take_notifications();
    }
    return true;
}

void pg_connection::take_notifications()
{
    while (PGnotify* n = PQnotifies(conn_)) {
        // Bounded: a flood (or a listener nobody drains) drops the oldest.
        // Notifications are wake-ups; readers of the events read the table.
        if (pending_.size() >= max_pending_notifications) pending_.pop_front();
        pending_.push_back({n->relname ? n->relname : "", n->extra ? n->extra : ""});
        PQfreemem(n);
    }
}

pg_error pg_connection::failure(std::string sqlstate, std::string fallback) const
{
    std::string why = conn_ ? trimmed(PQerrorMessage(conn_)) : std::string();
    return {std::move(sqlstate), why.empty() ? std::move(fallback) : why};
}

awaitable<bool> pg_connection::wait(wait_for what, clock::time_point deadline)
{
    using namespace asio::experimental::awaitable_operators;
    const int fd = conn_ ? PQsocket(conn_) : -1;
    if (fd < 0) co_return false;
    // libpq owns the socket: the descriptor only watches it and is released,
    // never closed. It is made anew for each wait because the socket may
    // change while connecting (another host of the list).
    asio::posix::stream_descriptor watch(ex_, fd);
    timer limit(ex_, deadline);
    const auto type = what == wait_for::read ? asio::posix::stream_descriptor::wait_read
                                             : asio::posix::stream_descriptor::wait_write;
    bool ready = false;
    try {
        auto done = co_await (watch.async_wait(type, nothrow) || limit.async_wait());
        ready = done.index() == 0 && !std::get<0>(std::get<0>(done));
    } catch (...) {
        watch.release();
        throw;
    }
    watch.release();
    co_return ready;
}

awaitable<pg_result<bool>> pg_connection::connect(std::string conninfo, std::chrono::milliseconds timeout)
{
    close();
    const auto deadline = clock::now() + timeout;
    // expand_dbname = 1: the one "dbname" value may be a whole connection
    // string or URI, as `--database` is given.
    const char* keys[] = {"dbname", nullptr};
    const char* values[] = {conninfo.c_str(), nullptr};
    conn_ = PQconnectStartParams(keys, values, 1);
    if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
        pg_result<bool> bad = failure("08000", "cannot start a connection (out of memory?)");
        close();
        co_return bad;
    }
    for (;;) {
        const auto st = PQconnectPoll(conn_);
        if (st == PGRES_POLLING_OK) break;
        if (st == PGRES_POLLING_FAILED) {
            pg_result<bool> bad = failure("08000", "connection failed");
            close();
            co_return bad;
        }
        const bool ready =
            co_await wait(st == PGRES_POLLING_WRITING ? wait_for::write : wait_for::read, deadline);
        if (!ready) {
            pg_result<bool> late = pg_error{"57014", "connecting timed out"};
            close();
            co_return late;
        }
    }
    // libpq prints NOTICEs and WARNINGs to stderr by default: raw lines in
    // the middle of the structured log. Nothing the gateway sends needs them.
    PQsetNoticeReceiver(
        conn_, [](void*, const PGresult*) {}, nullptr);
    if (PQsetnonblocking(conn_, 1) != 0) {
        pg_result<bool> bad = failure("08000", "cannot set non-blocking mode");
        close();
        co_return bad;
    }
    pg_result<bool> ok = true;
    co_return ok;
}

awaitable<pg_result<pg_rows>> pg_connection::query(std::string sql,
                                                   std::vector<std::optional<std::string>> params,
                                                   std::chrono::milliseconds timeout)
{
    if (!connected()) {
        pg_result<pg_rows> down = pg_error{"08003", "not connected"};
        co_return down;
    }
    auto deadline = clock::now() + timeout;
    // Statements with parameters are the store's fixed set: each is parsed
    // and planned once per connection, then only bound and executed.
    // Parameterless ones (BEGIN, COMMIT, LISTEN) go unnamed.
    std::string name;
    if (!params.empty()) {
        if (const auto it = prepared_.find(sql); it != prepared_.end()) {
            name = it->second;
        } else if (prepared_.size() < max_prepared) {
            const std::string fresh = "tether_" + std::to_string(prepared_.size() + 1);
            if (PQsendPrepare(conn_, fresh.c_str(), sql.c_str(), static_cast<int>(params.size()), nullptr) !=
                1) {
                pg_result<pg_rows> bad = failure("08000", "cannot send the statement");
                close();
                co_return bad;
            }
            auto parsed = co_await finish(deadline);
            if (!parsed) co_return parsed;  // a statement that does not parse is not kept
            prepared_.emplace(sql, fresh);
            name = fresh;
            // The server's statement_timeout starts again for the Execute,
            // which may wait for a lock as long as the Prepare did. Bounded
            // by what the Prepare left, it would be given up here while the
            // server still runs it, and commit after the caller was told
            // it had failed.
            deadline = clock::now() + timeout;
        }
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    const int sent = name.empty() ? PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                                      nullptr, values.data(), nullptr, nullptr, 0)
                                  : PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()),
                                                        values.data(), nullptr, nullptr, 0);
    if (sent != 1) {
        pg_result<pg_rows> bad = failure("08000", "cannot send the statement");
        close();
        co_return bad;
    }
    auto out = co_await finish(deadline);
    co_return out;
}

awaitable<pg_result<pg_rows>> pg_connection::script(std::string sql, std::chrono::milliseconds timeout)
{
    if (!connected()) {
        pg_result<pg_rows> down = pg_error{"08003", "not connected"};
        co_return down;
    }
    const auto deadline = clock::now() + timeout;
    // The simple protocol: several statements in one string, no parameters.
    if (PQsendQuery(conn_, sql.c_str()) != 1) {
        pg_result<pg_rows> bad = failure("08000", "cannot send the script");
        close();
        co_return bad;
    }
    auto out = co_await finish(deadline);
    co_return out;
}

awaitable<pg_result<pg_rows>> pg_connection::finish(clock::time_point deadline)
{
    const auto timed_out = [this] {
        close();
        return pg_result<pg_rows>(pg_error{"57014", "the statement timed out; the connection is closed"});
    };
    // Flush what libpq could not write at once.
    for (;;) {
        const int f = PQflush(conn_);
        if (f == 0) break;
        if (f < 0) {
            pg_result<pg_rows> bad = failure("08000", "cannot send the statement");
            close();
            co_return bad;
        }
        const bool writable = co_await wait(wait_for::write, deadline);
        if (!writable) {
            auto late = timed_out();
            co_return late;
        }
    }
    std::optional<pg_result<pg_rows>> first;
    for (;;) {
        while (PQisBusy(conn_)) {
            const bool readable = co_await wait(wait_for::read, deadline);
            if (!readable) {
                auto late = timed_out();
                co_return late;
            }
            if (PQconsumeInput(conn_) != 1) {
                pg_result<pg_rows> bad = failure("08006", "the connection broke");
                close();
                co_return bad;
            }
        }
        PGresult* res = PQgetResult(conn_);
        if (!res) break;
        const auto status = PQresultStatus(res);
        const bool failed = status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK;
        // The first result, unless a later one (a script's next statement) failed.
        if (!first || (failed && *first)) {
            if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
                pg_rows rows;
                const int nf = PQnfields(res), nt = PQntuples(res);
                for (int c = 0; c < nf; ++c) rows.columns.emplace_back(PQfname(res, c));
                rows.rows.reserve(static_cast<std::size_t>(nt));
                for (int r = 0; r < nt; ++r) {
                    auto& row = rows.rows.emplace_back();
                    for (int c = 0; c < nf; ++c)
                        row.push_back(PQgetisnull(res, r, c)
                                          ? std::nullopt
                                          : std::optional<std::string>(PQgetvalue(res, r, c)));
                }
                const char* n = PQcmdTuples(res);
                rows.affected = n && *n ? std::stoll(n) : 0;
                first = std::move(rows);
            } else {
                const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                first = pg_error{state ? state : "XX000", trimmed(PQresultErrorMessage(res))};
            }
        }
        PQclear(res);
    }
    // Notifications that arrived with the answer wait for next_notification.
    take_notifications();
    pg_result<pg_rows> out = first ? std::move(*first) : pg_result<pg_rows>(pg_rows{});
    co_return out;
}

awaitable<pg_result<std::optional<pg_notification>>> pg_connection::next_notification(
    std::chrono::milliseconds timeout)
{
    using out_t = pg_result<std::optional<pg_notification>>;
    const auto deadline = clock::now() + timeout;
    for (;;) {
        if (!pending_.empty()) {
            out_t n = std::optional<pg_notification>(std::move(pending_.front()));
            pending_.pop_front();
            co_return n;
        }
        if (!connected()) {
            out_t down = pg_error{"08003", "not connected"};
            co_return down;
        }
        if (PQconsumeInput(conn_) != 1) {
            out_t bad = failure("08006", "the connection broke");
            close();
            co_return bad;
        }
        take_notifications();
        if (!pending_.empty()) continue;
        const bool readable = co_await wait(wait_for::read, deadline);
        if (!readable) {
            // A closed peer makes the socket readable, so a plain timeout is
            // the only way here: nothing came.
            out_t none = std::optional<pg_notification>();
            co_return none;
        }
    }
}

}  // namespace tether::gateway::postgres
