#include "app/agent/config_api.hpp"

#include "net/request_params.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <optional>
#include <string>
#include <vector>

namespace tether::app {

namespace json = boost::json;

namespace {

constexpr std::string_view document_path = "/v1/config";
constexpr std::string_view events_path = "/v1/config/events";

net::reply plain(unsigned status, std::string_view why)
{
    net::reply r;
    r.head.status = status;
    r.head.headers.set("Content-Type", "application/json");
    r.head.headers.set("Cache-Control", "no-store");
    r.head.body = json::serialize(json::object{{"error", why}}) + "\n";
    return r;
}

/// What a reader with `keys` gets of `cfg`, on one line.
std::string payload(const settings::runtime_config& cfg, const std::optional<std::vector<std::string>>& keys)
{
    if (!keys) return json::serialize(cfg.document);
    json::object some;
    for (const auto& k : *keys)
        if (const auto* v = cfg.document.if_contains(k)) some[k] = *v;
    return json::serialize(some);
}

std::string etag(std::int64_t version)
{
    return "\"" + std::to_string(version) + "\"";
}

}  // namespace

config_api::config_api(const settings::config_store& store, config_api_options o)
    : state_(std::make_shared<state>(store, o))
{
}

bool config_api::handles(std::string_view path) noexcept
{
    return path == document_path || path == events_path;
}

namespace {

struct stream_slot {
    std::atomic<std::size_t>& open;
    explicit stream_slot(std::atomic<std::size_t>& n) : open(n) { ++open; }
    ~stream_slot() { --open; }
    stream_slot(const stream_slot&) = delete;
    stream_slot& operator=(const stream_slot&) = delete;
};

/// The peer of a stream went: ends the wait at once instead of at the next
/// comment.
struct peer_watch {
    settings::change_signal& changed;
    net::body_writer& writer;
    bool gone = false;
    peer_watch(settings::change_signal& c, net::body_writer& w) : changed(c), writer(w)
    {
        writer.on_peer_gone(
            [](void* p) {
                auto& self = *static_cast<peer_watch*>(p);
                self.gone = true;
                self.changed.notify();
            },
            this);
    }
    ~peer_watch() { writer.on_peer_gone(nullptr, nullptr); }
    peer_watch(const peer_watch&) = delete;
    peer_watch& operator=(const peer_watch&) = delete;
};

template <class State>
awaitable<error_code> send_config_events(std::shared_ptr<State> st,
                                         std::optional<std::vector<std::string>> keys,
                                         std::optional<std::int64_t> last_id, net::body_writer& w)
{
    using namespace asio::experimental::awaitable_operators;
    const stream_slot slot(st->streams);
    const auto ex = co_await asio::this_coro::executor;
    // Taken before the first look: a change in between still wakes us.
    const auto changed = st->store.watch(ex);
    peer_watch peer(*changed, w);
    timer comment{ex};
    // Resuming: the version the reader has counts as sent, and a reader at
    // or past the current one gets nothing until the next change.
    std::optional<std::int64_t> sent = last_id;
    std::string sent_payload;
    for (bool first = true;; first = false) {
        const auto cfg = st->store.current();
        const bool resumed_past = first && last_id && cfg->updated_at <= *last_id;
        if (cfg->updated_at != 0 && cfg->updated_at != sent && !resumed_past) {
            auto body = payload(*cfg, keys);
            sent = cfg->updated_at;
            // With keys, a version that left them as they were sends nothing.
            if (!keys || body != sent_payload) {
                const std::string event =
                    "event: config\nid: " + std::to_string(cfg->updated_at) + "\ndata: " + body + "\n\n";
                sent_payload = std::move(body);
                if (auto ec = co_await w.write(event)) co_return ec;
            }
        }
        comment.expires_after(st->opts.comment_every);
        const auto woke = co_await (changed->wait() || comment.async_wait(nothrow));
        if (peer.gone) {
            const error_code none;
            co_return none;
        }
        if (woke.index() == 1) {
            if (auto ec = co_await w.write(": keep-alive\n\n")) co_return ec;
        }
    }
}

}  // namespace

awaitable<net::reply> config_api::answer(const net::http::request& req) const
{
    const std::string path = req.target.substr(0, req.target.find('?'));
    auto k = net::parse_keys_param(req.target);
    if (!k.refusal.empty()) co_return plain(400, k.refusal);
    if (path == events_path) {
        if (state_->streams.load() >= state_->opts.max_streams)
            co_return plain(503, "too many config event streams on this node");
        std::optional<std::int64_t> last_id;
        if (const auto h = req.headers.get("Last-Event-ID")) last_id = net::parse_decimal(*h);
        net::reply r;
        r.head.headers.set("Content-Type", "text/event-stream");
        r.head.headers.set("Cache-Control", "no-store");
        // Not a coroutine lambda: the named coroutine's frame owns copies of
        // what it needs (std::function may destroy the lambda meanwhile).
        r.stream = [st = state_, keys = std::move(k.keys), last_id](net::body_writer& w) {
            return send_config_events(st, keys, last_id, w);
        };
        co_return r;
    }
    const auto cfg = state_->store.current();
    if (cfg->updated_at == 0) {
        auto r = plain(503, "no config has been applied on this node yet");
        r.head.headers.set("Retry-After", "1");
        co_return r;
    }
    net::reply r;
    const auto tag = etag(cfg->updated_at);
    r.head.headers.set("ETag", tag);
    r.head.headers.set("Cache-Control", "no-cache");
    if (const auto inm = req.headers.get("If-None-Match"); inm && net::if_none_match(*inm, tag)) {
        r.head.status = 304;
        co_return r;
    }
    r.head.headers.set("Content-Type", "application/json");
    r.head.body = payload(*cfg, k.keys) + "\n";
    co_return r;
}

}  // namespace tether::app
