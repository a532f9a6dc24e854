// The event streams: /v1/events (a node, with a single-use stream token) and
// /v1/admin/events (an operator, with the admin token).
#include "gateway/service.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <charconv>

namespace tether::gateway {

using net::connect::code;

namespace {

/// `token` from the query string, for clients that cannot set headers.
std::optional<std::string> query_token(std::string_view target)
{
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto part = rest.substr(0, amp);
        if (part.starts_with("token=")) return std::string(part.substr(6));
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

}  // namespace

awaitable<net::reply> service::open_stream(const net::http::request& req, const net::peer_info& peer,
                                           bool admin)
{
    auto token = detail::bearer(req);
    if (!token) token = query_token(req.target);
    stream_start start;
    session_info grant;
    if (admin) {
        if (!token || !constant_time_equal(*token, admin_token_.reveal()))
            co_return net::connect::error_reply(code::unauthenticated, "missing or wrong admin token");
        grant.expires_ms = INT64_MAX;
    } else {
        std::optional<session_info> g;
        if (token) {
            secret presented(*token);
            auto taken = co_await sessions_.take_stream_token(db_, std::move(presented));
            g = std::move(taken);
        }
        if (!g)
            co_return net::connect::error_reply(code::unauthenticated,
                                                "stream token missing, expired or already used");
        grant = *g;
    }
    start.expires_ms = grant.expires_ms;
    if (const auto h = req.headers.get("Last-Event-ID"); h && !h->empty()) {
        std::int64_t v = 0;
        const auto [p, ec] = std::from_chars(h->data(), h->data() + h->size(), v);
        start.last_id_valid = ec == std::errc{} && p == h->data() + h->size() && v >= 0;
        start.last_id = v;
    }

    const auto ex = co_await asio::this_coro::executor;
    event_hub::refusal why = event_hub::refusal::none;
    start.sub = hub_.subscribe(grant.org_id, grant.node_id, peer.address, ex, &why);
    if (!start.sub) {
        if (why == event_hub::refusal::per_ip)
            co_return net::connect::error_reply(code::resource_exhausted,
                                                "too many event streams from this address");
        co_return net::connect::error_reply(code::unavailable, "the gateway is at its event stream limit");
    }

    net::reply r;
    r.head.headers.set("Content-Type", "text/event-stream");
    r.head.headers.set("Cache-Control", "no-store");
    r.head.headers.set("X-Accel-Buffering", "no");
    // Not a coroutine lambda: it only starts the named coroutine, whose
    // frame owns a copy of `start` (a capturing coroutine lambda would keep
    // its captures in the lambda object, which std::function may destroy
    // while the coroutine still runs).
    r.stream = [this, start](net::body_writer& w) {
        return send_events(start, w);
    };
    co_return r;
}

awaitable<error_code> service::send_events(stream_start start, net::body_writer& w)
{
    const auto& sub = start.sub;
    std::int64_t sent = 0;
    // Subscribed before reading the history: an event published in
    // between arrives both ways and the id check below drops the copy.
    if (start.last_id) {
        const std::string org = sub->org_id();
        std::optional<std::int64_t> want;
        if (start.last_id_valid) want = *start.last_id;
        event_history h;
        bool replayed = false;
        try {
            auto read = co_await db_.replay(org, want, opts_.history);
            h = std::move(read);
            replayed = true;
        } catch (const boost::system::system_error& e) {
            if (e.code() == asio::error::operation_aborted) throw;
            storage_failed(e);
        } catch (const std::exception& e) {
            storage_failed(e);
        }
        // Without its history the stream would skip events: end it, and the
        // client comes back with the same Last-Event-ID.
        if (!replayed) co_return error_code(asio::error::try_again);
        std::string chunk;
        if (h.reset) chunk += format_event(event_record{0, org, "reset", "{}"});
        for (const auto& e : h.events) {
            chunk += format_event(e);
            sent = std::max(sent, e.id);
        }
        if (!chunk.empty())
            if (auto wec = co_await w.write(chunk)) co_return wec;
    }
    for (;;) {
        const auto now = sessions_.now_ms();
        if (now >= start.expires_ms) co_return error_code{};  // the session behind the token ended
        const auto until_expiry = std::chrono::milliseconds(start.expires_ms - now);
        auto b = co_await sub->next(std::min(opts_.idle_comment, until_expiry));
        if (b.st == subscription::state::evicted) {
            log_.warn("gateway.stream_evicted", {{"node", sub->node_id()}, {"reason", "queue full"}});
            co_return error_code{};
        }
        if (b.st == subscription::state::closed) co_return error_code{};
        std::string chunk;
        for (const auto& e : b.events) {
            if (e.id <= sent) continue;
            chunk += format_event(e);
            sent = e.id;
        }
        if (b.idle) chunk = ": keep-alive\n\n";
        if (!chunk.empty()) {
            // A peer that stopped reading blocks this write; its queue
            // overflowing meanwhile ends the stream now.
            using namespace asio::experimental::awaitable_operators;
            auto done = co_await (w.write(chunk) || sub->evicted());
            if (done.index() == 1) {
                log_.warn("gateway.stream_evicted",
                          {{"node", sub->node_id()}, {"reason", "queue full while a write was blocked"}});
                co_return error_code(asio::error::operation_aborted);
            }
            if (const auto wec = std::get<0>(done)) {
                // Write timeout: a consumer that stopped reading.
                log_.warn("gateway.stream_write_failed",
                          {{"node", sub->node_id()}, {"error", wec.message()}});
                co_return wec;
            }
        }
        if (const auto ca = sub->close_after(); ca > 0 && sent >= ca) co_return error_code{};
    }
}

}  // namespace tether::gateway
