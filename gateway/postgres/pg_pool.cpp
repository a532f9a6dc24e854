#include "gateway/postgres/pg_pool.hpp"

namespace tether::gateway::postgres {

namespace {

using clock = std::chrono::steady_clock;

/// Class 08 (connection exception) and 57P01 (terminated by an
/// administrator): the connection is gone, the next use makes a new one.
/// A 57014 from the server (its statement_timeout) leaves the connection
/// usable; our own give-up closed it already.
bool connection_lost(const pg_error& e)
{
    return e.sqlstate.rfind("08", 0) == 0 || e.sqlstate == "57P01";
}

}  // namespace

void pg_pool::give_back(slot& s, const std::optional<pg_error>& failed)
{
    if (failed && (connection_lost(*failed) || !s.conn->connected())) {
        s.conn->close();
        log_.warn("postgres.connection_lost", {{"sqlstate", failed->sqlstate}, {"error", failed->message}});
    }
    release(s);
}

void pg_pool::connect_failed(slot& s, const pg_error& e)
{
    s.conn->close();
    const auto delay = reconnect_.next();
    next_connect_ = clock::now() + delay;
    log_.warn("postgres.connect_failed", {{"error", e.message}, {"retry_in_ms", delay.count()}});
    release(s);
}

pg_pool::pg_pool(asio::any_io_executor ex, pool_options opts, uniform01 rand, const log::logger& log)
    : ex_(ex), opts_(std::move(opts)), log_(log), reconnect_(opts_.reconnect, std::move(rand))
{
    slots_.resize(std::max<std::size_t>(opts_.size, 1));
}

std::size_t pg_pool::open() const noexcept
{
    std::size_t n = 0;
    for (const auto& s : slots_)
        if (s.conn && s.conn->connected()) ++n;
    return n;
}

void pg_pool::release(slot& s)
{
    s.busy = false;
    --in_use_;
    // Woken waiters leave the list now: a second release before the first
    // one runs must wake the next, not the same one again.
    if (!waiters_.empty()) {
        waiters_.front()->cancel();
        waiters_.pop_front();
    }
}

awaitable<pg_result<pg_pool::slot*>> pg_pool::acquire(clock::time_point deadline)
{
    for (;;) {
        slot* free = nullptr;
        // A connected free slot first, then any free one. An idle connection
        // the server ended (a restart) is noticed here and remade, instead
        // of failing the caller's statement.
        for (auto& s : slots_)
            if (!s.busy && s.conn && s.conn->still_open()) {
                free = &s;
                break;
            }
        if (!free)
            for (auto& s : slots_)
                if (!s.busy) {
                    free = &s;
                    break;
                }
        if (free) {
            free->busy = true;
            ++in_use_;
            if (free->conn && free->conn->connected()) {
                pg_result<slot*> ok = free;
                co_return ok;
            }
            if (clock::now() < next_connect_) {
                release(*free);
                pg_result<slot*> later = pg_error{"08000", "the database refused connections; retrying soon"};
                co_return later;
            }
            if (!free->conn) free->conn = std::make_unique<pg_connection>(ex_);
            auto c = co_await free->conn->connect(opts_.conninfo, opts_.connect_timeout);
            if (!c) {
                connect_failed(*free, c.error());
                pg_result<slot*> bad = c.error();
                co_return bad;
            }
            // The server ends what this pool gives up (see pool_options).
            // Refused, it is a failed connect like any other: a server that
            // takes every login and then fails the setup must not get a new
            // connection per caller.
            std::vector<std::optional<std::string>> none;
            auto limited = co_await free->conn->query(
                "SET statement_timeout = " + std::to_string(opts_.statement_timeout.count()), none,
                opts_.connect_timeout);
            if (!limited) {
                connect_failed(*free, limited.error());
                pg_result<slot*> bad = limited.error();
                co_return bad;
            }
            if (reconnect_.failures() > 0)
                log_.info("postgres.connected", {{"after_failures", reconnect_.failures()}});
            reconnect_.reset();
            pg_result<slot*> ok = free;
            co_return ok;
        }
        // All busy: wait for a release (or the deadline).
        if (clock::now() >= deadline) {
            pg_result<slot*> late = pg_error{"57014", "no database connection came free in time"};
            co_return late;
        }
        // A timer of its own per waiter: one shared timer re-armed by each
        // waiter would cancel the others' waits and make them spin.
        timer wake(ex_, deadline);
        waiters_.push_back(&wake);
        auto [ec] = co_await wake.async_wait();
        waiters_.remove(&wake);
        (void)ec;  // cancelled: a slot came free; expired: the loop reports the deadline
    }
}

awaitable<pg_result<pg_rows>> pg_pool::query(std::string sql, std::vector<std::optional<std::string>> params)
{
    const auto deadline = clock::now() + opts_.statement_timeout;
    auto got = co_await acquire(deadline);
    if (!got) {
        pg_result<pg_rows> bad = got.error();
        co_return bad;
    }
    slot& s = **got;
    auto out = co_await s.conn->query(std::move(sql), std::move(params), answer_within());
    give_back(s, out ? std::nullopt : std::optional<pg_error>(out.error()));
    co_return out;
}

awaitable<pg_result<std::vector<pg_rows>>> pg_pool::transaction(std::vector<statement> statements)
{
    using out_t = pg_result<std::vector<pg_rows>>;
    const auto deadline = clock::now() + opts_.statement_timeout;
    auto got = co_await acquire(deadline);
    if (!got) {
        out_t bad = got.error();
        co_return bad;
    }
    slot& s = **got;
    std::vector<std::optional<std::string>> none;
    std::vector<pg_rows> rows;
    std::optional<pg_error> failed;
    bool stopped = false;
    auto begun = co_await s.conn->query("BEGIN", none, answer_within());
    if (!begun) failed = begun.error();
    for (auto& st : statements) {
        if (failed || stopped) break;
        // Each statement is bounded by the server; the whole by the call's
        // deadline, checked between them.
        if (clock::now() >= deadline) {
            failed = pg_error{"57014", "the transaction ran out of time"};
            break;
        }
        auto r = co_await s.conn->query(std::move(st.sql), std::move(st.params), answer_within());
        if (!r) {
            failed = r.error();
        } else {
            stopped = st.rest_only_if_rows && r->rows.empty();
            rows.push_back(std::move(*r));
        }
    }
    if (!failed && !stopped) {
        auto committed = co_await s.conn->query("COMMIT", none, answer_within());
        if (!committed) failed = committed.error();
    } else if (s.conn->connected()) {
        // A failure, or a condition that did not hold.
        auto rolled = co_await s.conn->query("ROLLBACK", none, answer_within());
        (void)rolled;
    }
    give_back(s, failed);
    out_t out = failed ? out_t(*failed) : out_t(std::move(rows));
    co_return out;
}

}  // namespace tether::gateway::postgres
