// The event streams: /v1/events (a node, with a single-use stream token) and
// /v1/admin/events (an operator, with the admin token).
#include "gateway/service.hpp"
#include "net/errc.hpp"
#include "net/host_port.hpp"

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
        grant.expires_ms = INT64_MAX;
        // Read before the check: a replacement in between ends the stream
        // at its first wake-up rather than letting the old token's live on.
        const auto generation = admin_generation_.load();
        if (token && admin_token_is(*token)) {
            start.admin_generation = generation;
        } else {
            // The web console's EventSource brings its cookie instead; the
            // stream lives no longer than that session.
            auto console = co_await console_authorized(req, false);
            if (!console) co_return admin_refused(peer, "/v1/admin/events");
            grant.expires_ms = console->expires_ms;
            start.console_session = std::move(console->session_hash);
        }
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
    start.sub = hub_.subscribe(grant.org_id, grant.node_id, net::address_group(peer.address), ex, &why);
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

namespace {

/// While attached, the hub writes events to the stream itself.
struct attachment {
    attachment(subscription& s, net::body_writer& w) : sub(s), writer(w)
    {
        sub.attach(&w);
        w.on_peer_gone([](void* p) { static_cast<subscription*>(p)->end(); }, &sub);
    }
    ~attachment()
    {
        writer.when_writable(nullptr, nullptr);
        writer.on_peer_gone(nullptr, nullptr);
        sub.attach(nullptr);
    }
    attachment(const attachment&) = delete;
    attachment& operator=(const attachment&) = delete;
    subscription& sub;
    net::body_writer& writer;
};

}  // namespace

awaitable<error_code> service::replay_history(const stream_start& start, net::body_writer& w)
{
    const auto& sub = start.sub;
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
    std::int64_t sent = 0;
    if (h.reset) chunk += format_event(event_record{0, org, "reset", "{}"});
    for (const auto& e : h.events) {
        if (!org.empty() && admin_only_event(e.type)) continue;
        chunk += format_event(e);
        sent = std::max(sent, e.id);
    }
    sub->sent_up_to(sent);
    if (chunk.empty()) co_return error_code{};
    auto wec = co_await w.write(chunk);
    co_return wec;
}

awaitable<error_code> service::send_events(stream_start start, net::body_writer& w)
{
    // This frame lives as long as the stream: the replay's locals live in
    // replay_history's instead.
    const auto& sub = start.sub;
    // Subscribed before reading the history: an event published in
    // between arrives both ways and the subscription drops the copy.
    if (start.last_id)
        if (auto ec = co_await replay_history(start, w)) co_return ec;
    const attachment attached(*sub, w);
    static const std::string keep_alive_chunk = net::encode_chunk(": keep-alive\n\n");
    std::vector<asio::const_buffer> out;
    for (;;) {
        const auto now = sessions_.now_ms();
        if (now >= start.expires_ms) co_return error_code{};  // the session behind the token ended
        const auto until_expiry = std::chrono::milliseconds(start.expires_ms - now);
        auto b = co_await sub->next(std::min(opts_.idle_comment, until_expiry));
        if (b.st == subscription::state::evicted) {
            log_.warn("gateway.stream_evicted", {{"node", sub->node_id()}, {"reason", "queue full"}});
            // Cut short, without the last chunk: its socket may be full.
            co_return error_code(asio::error::operation_aborted);
        }
        if (b.write_timed_out) {
            log_.warn("gateway.stream_write_failed",
                      {{"node", sub->node_id()}, {"error", "write timed out"}});
            co_return error_code(net::errc::timeout);
        }
        if (b.st == subscription::state::closed) co_return error_code{};
        if (start.admin_generation && *start.admin_generation != admin_generation_.load())
            co_return error_code{};  // the admin token it was opened with was replaced
        if (b.idle && !start.console_session.empty()) {
            const bool live = co_await console_session_live(start.console_session);
            if (!live) co_return error_code{};  // logged out (on any replica)
        }
        out.clear();
        if (b.idle) out.emplace_back(keep_alive_chunk.data(), keep_alive_chunk.size());
        for (std::size_t i = 0; i < b.frames.size(); ++i) {
            const auto& c = b.frames[i]->chunk;
            const std::size_t skip = i == 0 ? b.offset : 0;
            out.emplace_back(c.data() + skip, c.size() - skip);
        }
        // A peer that stopped reading blocks this write; its queue
        // overflowing meanwhile aborts it, so the stream ends now rather
        // than at the write timeout.
        if (const auto wec = co_await w.write_encoded(out)) {
            const auto st = sub->current();
            if (st == subscription::state::closed) co_return wec;  // the peer went: nothing to say
            if (st == subscription::state::evicted) {
                log_.warn("gateway.stream_evicted",
                          {{"node", sub->node_id()}, {"reason", "queue full while a write was blocked"}});
                co_return error_code(asio::error::operation_aborted);
            }
            // Write timeout: a consumer that stopped reading.
            log_.warn("gateway.stream_write_failed", {{"node", sub->node_id()}, {"error", wec.message()}});
            co_return wec;
        }
        if (sub->finished()) co_return error_code{};
    }
}

}  // namespace tether::gateway
