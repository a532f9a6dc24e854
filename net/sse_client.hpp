// A resilient server-sent events client: one long-lived operation that owns
// URL selection, connecting, reading, reconnecting and backoff.
#pragma once

#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "base/log.hpp"
#include "net/http.hpp"
#include "net/sse_parser.hpp"
#include "net/url.hpp"

#include <chrono>
#include <functional>
#include <vector>

namespace tether::net {

class http_client;

struct sse_options {
    /// Candidate stream URLs, preferred first (new), then fallbacks (old).
    std::vector<url> candidates;
    /// The candidates are equals (replicas of one gateway, already in a
    /// shuffled order): no preference, no probing; an attempt or a stream
    /// that fails before it became healthy moves to the next one.
    bool peers = false;
    /// No byte for this long means a dead stream (the server comments every 15 s).
    std::chrono::milliseconds read_timeout{45'000};
    /// Connect, TLS, request and response header.
    std::chrono::milliseconds connect_timeout{10'000};
    backoff::policy reconnect{std::chrono::seconds(1), std::chrono::seconds(60)};
    /// A server's `retry:` is clamped to [min_retry, reconnect.cap]: `retry: 0`
    /// must not turn reconnects into a storm.
    std::chrono::milliseconds min_retry{1000};
    /// When set, answers that mean "this is not a stream" (a status classify
    /// stops on, 204, a 200 that is not text/event-stream) do not end run():
    /// it retries after about `slow_retry` (jittered), for as long as it runs.
    bool never_give_up = false;
    std::chrono::milliseconds slow_retry{std::chrono::minutes(5)};
    /// A stream that stayed up this long (steady clock) resets the backoff.
    std::chrono::milliseconds healthy_after{30'000};
    std::size_t max_event_bytes = sse_parser::default_max_event_bytes;
    unsigned max_redirects = 5;
    /// Probing: any HTTP response within `probe_timeout` = reachable;
    /// `probe_delays.size() + 1` tries per candidate.
    std::chrono::milliseconds probe_timeout{5'000};
    std::vector<std::chrono::milliseconds> probe_delays{std::chrono::seconds(1), std::chrono::seconds(2)};
    /// While on a fallback, how often to check whether the preferred URL is
    /// back (checked between reads, so within one server heartbeat of due).
    std::chrono::milliseconds reprobe_every{std::chrono::minutes(10)};
};

/// What the last attempt ended with, handed to the hook before the next one.
struct sse_attempt {
    unsigned number = 0;       ///< 1 for the first connect
    unsigned last_status = 0;  ///< HTTP status of the last refused attempt, 0 if none
    error_code last_error;     ///< why the last attempt or stream ended
    const url* target = nullptr;
};

/// Decides what a non-200, non-redirect, non-204 status means.
enum class status_action { retry, stop };
status_action default_status_action(unsigned status) noexcept;  ///< retry 408/429/5xx, stop otherwise

class sse_client {
public:
    /// Called before every connect (the stream token is single-use): returns
    /// the headers to add (Authorization), or an error, which counts as a
    /// failed attempt (backoff) — except operation_aborted and
    /// errc::credentials_refused, which end run() with that error.
    using prepare_fn = std::function<awaitable<result<http::fields>>(const sse_attempt&)>;
    /// Events in order; the next read waits for this to finish.
    using event_fn = std::function<awaitable<void>(const sse_event&)>;
    /// Connection state changes, for logs and metrics.
    using state_fn = std::function<void(bool connected, const url& where)>;
    using classify_fn = std::function<status_action(unsigned status)>;

    sse_client(http_client& client, sse_options opts, uniform01 rand, const log::logger& log);

    /// Runs until cancelled (returns asio::error::operation_aborted), until the
    /// server answers 204 (errc::stream_ended), until `prepare` refuses for
    /// good (errc::credentials_refused), or until `classify` says stop
    /// for a status (errc::bad_status; the status is in last_status()), or a
    /// 200 is not an event stream (errc::not_event_stream).
    awaitable<error_code> run(prepare_fn prepare, event_fn on_event, state_fn on_state = {},
                              classify_fn classify = default_status_action);

    [[nodiscard]] unsigned last_status() const noexcept { return last_status_; }
    [[nodiscard]] const std::string& last_event_id() const noexcept { return parser_.last_event_id(); }

    /// Probes `candidates` in order; returns the index of the first that
    /// answers any HTTP response, or errc::unreachable.
    awaitable<result<std::size_t>> select_candidate();

private:
    struct session_end {
        error_code ec;
        bool stop = false;     ///< do not reconnect
        bool healthy = false;  ///< stayed up for healthy_after
        bool back_to_preferred = false;
        bool slow = false;  ///< retry after slow_retry (never_give_up)
    };
    awaitable<session_end> session(const url& base, const http::fields& extra, const event_fn& on_event,
                                   const state_fn& on_state, const classify_fn& classify, bool on_fallback);
    awaitable<bool> reachable(const url& u);
    awaitable<bool> pause(std::chrono::milliseconds d);

    http_client& client_;
    sse_options opts_;
    backoff backoff_;
    uniform01 rand_;
    const log::logger& log_;
    sse_parser parser_;
    unsigned last_status_ = 0;
    std::chrono::steady_clock::time_point reprobe_at_ = std::chrono::steady_clock::time_point::max();
};

}  // namespace tether::net
