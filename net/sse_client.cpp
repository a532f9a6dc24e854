#include "net/sse_client.hpp"

#include "net/errc.hpp"
#include "net/http_client.hpp"

#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cctype>

namespace tether::net {

using steady = std::chrono::steady_clock;

namespace {

bool is_redirect(unsigned s) noexcept
{
    return s == 301 || s == 302 || s == 307 || s == 308;
}

bool is_event_stream(std::optional<std::string_view> content_type)
{
    if (!content_type) return false;
    std::string_view mime = content_type->substr(0, content_type->find(';'));
    while (!mime.empty() && mime.back() == ' ') mime.remove_suffix(1);
    while (!mime.empty() && mime.front() == ' ') mime.remove_prefix(1);
    return http::iequals(mime, "text/event-stream");
}

/// Fields that carry credentials: never sent to an origin other than the
/// one they were meant for.
bool is_credential(std::string_view name)
{
    return http::iequals(name, "Authorization") || http::iequals(name, "Cookie") ||
           http::iequals(name, "Proxy-Authorization");
}

std::string reason_of(error_code ec)
{
    if (ec == asio::error::eof) return "server closed the stream";
    return ec.message();
}

}  // namespace

status_action default_status_action(unsigned status) noexcept
{
    if (status == 408 || status == 429 || status >= 500) return status_action::retry;
    return status_action::stop;
}

sse_client::sse_client(http_client& client, sse_options opts, uniform01 rand, const log::logger& log)
    : client_(client),
      opts_(std::move(opts)),
      backoff_(opts_.reconnect, rand),
      rand_(std::move(rand)),
      log_(log),
      parser_(opts_.max_event_bytes)
{
    if (opts_.candidates.empty()) throw std::invalid_argument("sse_client needs at least one candidate URL");
}

awaitable<bool> sse_client::pause(std::chrono::milliseconds d)
{
    const auto ex = co_await asio::this_coro::executor;
    timer t{ex, d};
    auto [ec] = co_await t.async_wait();
    const auto cs = co_await asio::this_coro::cancellation_state;
    co_return !ec && cs.cancelled() == asio::cancellation_type::none;
}

awaitable<bool> sse_client::reachable(const url& u)
{
    // "Any HTTP response" = a status line and headers; the body may be an
    // endless stream, so it is not read (the connection is dropped).
    http::request req;
    req.target = u.target();
    req.headers.set("Accept", "text/event-stream");
    auto r = co_await client_.open(u, req, opts_.probe_timeout);
    co_return r.has_value();
}

awaitable<result<std::size_t>> sse_client::select_candidate()
{
    for (std::size_t i = 0; i < opts_.candidates.size(); ++i) {
        for (std::size_t attempt = 0;; ++attempt) {
            if (co_await reachable(opts_.candidates[i])) {
                result<std::size_t> found = i;
                co_return found;
            }
            if (attempt >= opts_.probe_delays.size()) break;
            if (!co_await pause(opts_.probe_delays[attempt])) {
                result<std::size_t> aborted = error_code(asio::error::operation_aborted);
                co_return aborted;
            }
        }
        log_.warn("sse.candidate_unreachable", {{"url", opts_.candidates[i].redacted()}});
    }
    result<std::size_t> none = make_error_code(errc::unreachable);
    co_return none;
}

awaitable<error_code> sse_client::run(prepare_fn prepare, event_fn on_event, state_fn on_state,
                                      classify_fn classify)
{
    // Every operation reports cancellation as an error code; the loop head
    // checks the state, so the caller gets operation_aborted promptly.
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto cs = co_await asio::this_coro::cancellation_state;
    const auto cancelled = [&cs] {
        return cs.cancelled() != asio::cancellation_type::none;
    };

    sse_attempt info;
    std::optional<std::size_t> current;
    for (;;) {
        if (cancelled()) co_return asio::error::operation_aborted;
        if (!current) {
            current = 0;
            if (opts_.candidates.size() > 1 && !opts_.peers) {
                auto picked = co_await select_candidate();
                if (cancelled()) co_return asio::error::operation_aborted;
                // None reachable: keep trying the preferred one with backoff.
                if (picked) current = *picked;
            }
            reprobe_at_ = *current == 0 ? steady::time_point::max() : steady::now() + opts_.reprobe_every;
            if (*current != 0)
                log_.warn("sse.using_fallback", {{"url", opts_.candidates[*current].redacted()}});
        }
        const url& base = opts_.candidates[*current];
        ++info.number;
        info.target = &base;

        session_end end;
        auto headers = co_await prepare(info);
        if (cancelled()) co_return asio::error::operation_aborted;
        if (!headers) {
            // The caller's way of saying "stop": its credentials were refused for good.
            if (headers.error() == asio::error::operation_aborted ||
                headers.error() == errc::credentials_refused)
                co_return headers.error();
            end.ec = headers.error();
        } else {
            end = co_await session(base, *headers, on_event, on_state, classify, *current != 0);
            if (cancelled()) co_return asio::error::operation_aborted;
        }
        info.last_error = end.ec;
        info.last_status = last_status_;
        if (end.stop && !opts_.never_give_up) co_return end.ec;
        if (end.stop) end.slow = true;
        if (end.back_to_preferred) {
            log_.info("sse.preferred_back", {{"url", opts_.candidates[0].redacted()}});
            current = 0;
            reprobe_at_ = steady::time_point::max();
            backoff_.reset();
            continue;  // reconnect at once: the preferred URL just answered
        }
        if (end.healthy) backoff_.reset();
        if (opts_.peers && !end.healthy && opts_.candidates.size() > 1) {
            current = (*current + 1) % opts_.candidates.size();
            reprobe_at_ = steady::time_point::max();
        }
        auto delay = backoff_.next();
        if (end.slow) {
            const double r = std::clamp(rand_ ? rand_() : 0.5, 0.0, 1.0);
            delay = std::max(delay, std::chrono::milliseconds(static_cast<std::int64_t>(
                                        static_cast<double>(opts_.slow_retry.count()) * (0.5 + r / 2))));
        }
        log_.info("sse.reconnect", {{"attempt", info.number},
                                    {"delay_ms", delay.count()},
                                    {"reason", reason_of(end.ec)},
                                    {"status", last_status_}});
        if (!co_await pause(delay)) co_return asio::error::operation_aborted;
        if (!opts_.peers && *current != 0 && steady::now() >= reprobe_at_)
            current.reset();  // time to look again
    }
}

awaitable<sse_client::session_end> sse_client::session(const url& base, const http::fields& extra,
                                                       const event_fn& on_event, const state_fn& on_state,
                                                       const classify_fn& classify, bool on_fallback)
{
    session_end end;
    url target = base;
    const std::string origin = base.origin();
    std::unique_ptr<body_stream> stream;
    for (unsigned hop = 0;; ++hop) {
        http::request req;
        req.target = target.target();
        req.headers.set("Accept", "text/event-stream");
        req.headers.set("Cache-Control", "no-cache");
        // Only ids of completely received events: the parser updates it at dispatch.
        if (!parser_.last_event_id().empty()) req.headers.set("Last-Event-ID", parser_.last_event_id());
        // A redirect elsewhere gets no credentials: a stream token is as good
        // as a session to whoever receives it.
        for (const auto& f : extra)
            if (target.origin() == origin || !is_credential(f.name)) req.headers.set(f.name, f.value);

        auto opened = co_await client_.open(target, req, opts_.connect_timeout);
        if (!opened) {
            end.ec = opened.error();
            co_return end;
        }
        stream = std::move(*opened);
        const unsigned status = stream->head().status;
        if (!is_redirect(status)) break;

        const auto location = stream->head().headers.get("Location");
        if (!location || hop + 1 > opts_.max_redirects) {
            log_.warn(
                "sse.redirect_refused",
                {{"reason", location ? "too many redirects" : "no Location header"}, {"status", status}});
            end.ec = errc::redirect_refused;
            co_return end;
        }
        auto next = resolve_location(target, *location);
        if (!next || (target.tls() && !next->tls())) {
            log_.warn("sse.redirect_refused",
                      {{"reason", next ? std::string("https to http downgrade") : next.error()}});
            end.ec = errc::redirect_refused;
            co_return end;
        }
        if (next->origin() != origin)
            log_.warn("sse.redirect_other_origin",
                      {{"to", next->redacted()}, {"status", status}, {"credentials", "not sent"}});
        else
            log_.debug("sse.redirect", {{"to", next->redacted()}, {"status", status}});
        target = *next;
    }

    const auto& head = stream->head();
    if (head.status == 204) {
        end.ec = errc::stream_ended;
        end.stop = true;
        co_return end;
    }
    if (head.status != 200) {
        last_status_ = head.status;
        end.ec = errc::bad_status;
        end.stop = classify(head.status) == status_action::stop;
        co_return end;
    }
    if (!is_event_stream(head.headers.get("Content-Type"))) {
        end.ec = errc::not_event_stream;
        end.stop = true;
        co_return end;
    }

    last_status_ = 0;
    parser_.restart();
    log_.info("sse.connected", {{"url", target.redacted()}});
    if (on_state) on_state(true, target);
    const auto started = steady::now();
    std::vector<sse_event> batch;
    const auto cs = co_await asio::this_coro::cancellation_state;
    for (;;) {
        // A read that completes from buffered bytes is never attached to the
        // cancellation slot, so a stop emitted meanwhile would be lost and
        // the next read would wait for the server: look before each read.
        if (cs.cancelled() != asio::cancellation_type::none) {
            end.ec = asio::error::operation_aborted;
            break;
        }
        if (on_fallback && steady::now() >= reprobe_at_) {
            if (co_await reachable(opts_.candidates[0])) {
                end.back_to_preferred = true;
                break;
            }
            reprobe_at_ = steady::now() + opts_.reprobe_every;
        }
        auto chunk = co_await stream->read_some(opts_.read_timeout);
        if (!chunk) {
            end.ec = chunk.error();
            break;
        }
        if (chunk->empty()) {
            end.ec = asio::error::eof;  // a clean end still backs off: the server may be restarting
            break;
        }
        batch.clear();
        const auto ec = parser_.feed(*chunk, [&batch](const sse_event& e) { batch.push_back(e); });
        for (const auto& e : batch) co_await on_event(e);
        if (const auto r = parser_.retry()) {
            const auto cap = static_cast<std::uint64_t>(opts_.reconnect.cap.count());
            const auto floor = static_cast<std::uint64_t>(opts_.min_retry.count());
            backoff_.set_base(
                std::chrono::milliseconds(std::clamp<std::uint64_t>(*r, floor, std::max(floor, cap))));
        }
        if (ec) {
            end.ec = ec;
            break;
        }
    }
    end.healthy = steady::now() - started >= opts_.healthy_after;
    log_.info("sse.disconnected", {{"url", target.redacted()}, {"reason", reason_of(end.ec)}});
    if (on_state) on_state(false, target);
    co_return end;
}

}  // namespace tether::net
