#include "gateway/postgres/pg_events.hpp"

#include <boost/asio/this_coro.hpp>

namespace tether::gateway::postgres {

std::string insert_event_sql(std::string_view data_sql)
{
    // The NOTIFY is queued with the insert and sent at commit; it names the
    // row this statement made (currval would be whatever this connection
    // drew last).
    return "WITH e AS (INSERT INTO events(id, org_id, type, data) VALUES (nextval('event_ids'), $1, $2, " +
           std::string(data_sql) + ") RETURNING id) SELECT id, pg_notify('" + std::string(events_channel) +
           "', id::text) FROM e";
}

awaitable<pg_result<std::int64_t>> publish_event(pg_pool& pool, const std::string& org,
                                                 const std::string& type, const std::string& data)
{
    std::vector<pg_pool::statement> steps;
    steps.push_back({"SELECT pg_advisory_xact_lock($1::bigint)", {std::to_string(publish_lock_key)}});
    steps.push_back({insert_event_sql("$3"), {org, type, data}});
    auto done = co_await pool.transaction(std::move(steps));
    if (!done) {
        pg_result<std::int64_t> bad = done.error();
        co_return bad;
    }
    const auto& inserted = (*done)[1];  // the insert's own row: currval would be the session's last
    pg_result<std::int64_t> id = inserted.rows.empty() || !inserted.rows[0][0]
                                     ? pg_result<std::int64_t>(pg_error{"XX000", "INSERT returned no id"})
                                     : pg_result<std::int64_t>(std::stoll(*inserted.rows[0][0]));
    co_return id;
}

event_tail::event_tail(pg_pool& pool, tail_options opts, std::int64_t cursor, deliver_fn deliver,
                       uniform01 rand, const log::logger& log)
    : pool_(pool),
      opts_(std::move(opts)),
      cursor_(cursor),
      deliver_(std::move(deliver)),
      reconnect_(opts_.reconnect, std::move(rand)),
      log_(log)
{
}

awaitable<bool> event_tail::catch_up()
{
    for (;;) {
        std::vector<std::optional<std::string>> params{std::to_string(cursor_.load()),
                                                       std::to_string(opts_.batch)};
        auto rows = co_await pool_.query(
            "SELECT id, org_id, type, data FROM events WHERE id > $1::bigint ORDER BY id LIMIT $2::int",
            std::move(params));
        if (!rows) {
            log_.warn("postgres.tail_failed",
                      {{"sqlstate", rows.error().sqlstate}, {"error", rows.error().message}});
            co_return false;
        }
        std::vector<event_record> batch;
        batch.reserve(rows->rows.size());
        for (const auto& r : rows->rows)
            batch.push_back(
                {std::stoll(r[0].value_or("0")), r[1].value_or(""), r[2].value_or(""), r[3].value_or("")});
        if (!batch.empty()) {
            cursor_ = batch.back().id;
            deliver_(batch);
        }
        if (batch.size() < opts_.batch) {
            caught_up_ = std::chrono::steady_clock::now().time_since_epoch().count();
            co_return true;
        }
    }
}

awaitable<void> event_tail::run()
{
    const auto ex = co_await asio::this_coro::executor;
    pg_connection listener(ex);
    auto next_listen = std::chrono::steady_clock::now();
    const auto cs = co_await asio::this_coro::cancellation_state;
    for (;;) {
        if (cs.cancelled() != asio::cancellation_type::none) co_return;
        if (!listener.connected() && std::chrono::steady_clock::now() >= next_listen) {
            listening_ = false;
            auto c = co_await listener.connect(opts_.conninfo, std::chrono::seconds(5));
            std::vector<std::optional<std::string>> none;
            pg_result<pg_rows> l = pg_rows{};
            if (c) {
                auto listened = co_await listener.query("LISTEN " + std::string(events_channel), none,
                                                        std::chrono::seconds(5));  // no co_await in a ternary
                l = std::move(listened);
            } else {
                l = c.error();
            }
            if (l) {
                listening_ = true;
                reconnect_.reset();
                log_.info("postgres.listening", {{"channel", events_channel}, {"cursor", cursor_.load()}});
            } else {
                listener.close();
                const auto delay = reconnect_.next();
                next_listen = std::chrono::steady_clock::now() + delay;
                log_.warn("postgres.listen_failed",
                          {{"error", l.error().message}, {"retry_in_ms", delay.count()}});
            }
        }
        // Listening or not, the table is the truth: read what is new.
        auto caught_up = co_await catch_up();
        (void)caught_up;
        if (listener.connected()) {
            // A notification, or the poll interval: whichever comes first.
            auto n = co_await listener.next_notification(opts_.poll);
            if (!n) {
                listening_ = false;
                log_.warn("postgres.listen_lost", {{"error", n.error().message}});
            }
        } else {
            timer pause(ex, opts_.poll);
            co_await pause.async_wait(use_awaitable);  // cancellation ends the task here
        }
    }
}

}  // namespace tether::gateway::postgres
