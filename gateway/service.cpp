#include "gateway/service.hpp"

#include "auth/keys.hpp"
#include "net/host_port.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace tether::gateway {

namespace pj = net::protojson;
namespace json = boost::json;
using net::connect::code;

namespace {

/// What a console session keeps of the admin token it was opened with: a
/// hash of its own kind, not the token, since it lands in the store.
std::string fingerprint_of(const secret& token)
{
    return auth::sha256_hex("tether console admin token\n" + std::string(token.reveal())).substr(0, 32);
}

/// Whether a failure window that began at `start` is over at `now`. One
/// that begins ahead of now is over too: the wall clock went back (an NTP
/// step), and the window would otherwise last as long as the step.
bool window_over(std::int64_t start, std::int64_t now, std::int64_t length)
{
    return now - start >= length || start > now;
}

}  // namespace

namespace detail {

std::string timestamp(std::int64_t ms)
{
    return pj::format_timestamp(pj::sys_time{std::chrono::milliseconds{ms}});
}

std::optional<std::string> bearer(const net::http::request& req)
{
    const auto h = req.headers.get("Authorization");
    if (!h || h->size() < 7 || !net::http::iequals(h->substr(0, 7), "Bearer ")) return std::nullopt;
    return std::string(h->substr(7));
}

rpc_error invalid(const pj::field_error& e)
{
    return fail(code::invalid_argument, e.message());
}

}  // namespace detail

inline constexpr std::string_view node_service = "tether.v1.NodeService";
inline constexpr std::string_view admin_service = "tether.v1.AdminService";

const service::route service::routes_[] = {
    {node_service, "Enroll", rpc_guard::login, &service::enroll},
    {node_service, "BeginAuth", rpc_guard::login, &service::begin_auth},
    {node_service, "CompleteAuth", rpc_guard::login, &service::complete_auth},
    {node_service, "Heartbeat", rpc_guard::session, &service::heartbeat},
    {node_service, "GetRuntimeConfig", rpc_guard::session, &service::get_runtime_config},
    {node_service, "CreateStreamToken", rpc_guard::session, &service::create_stream_token},
    {admin_service, "CreateEnrollmentCode", rpc_guard::admin, &service::create_enrollment_code},
    {admin_service, "RevokeEnrollmentCode", rpc_guard::admin, &service::revoke_enrollment_code},
    {admin_service, "PublishConfig", rpc_guard::admin, &service::publish_config},
    {admin_service, "ListNodes", rpc_guard::admin, &service::list_nodes},
    {admin_service, "RevokeNode", rpc_guard::admin, &service::revoke_node},
    {admin_service, "ForgetNodes", rpc_guard::admin, &service::forget_nodes},
    {admin_service, "GetRollout", rpc_guard::admin, &service::get_rollout},
    {admin_service, "GetConfig", rpc_guard::admin, &service::get_config},
    {admin_service, "GetOnlineHistory", rpc_guard::admin, &service::get_online_history},
};

service::service(store& db, secret admin_token, gateway_options opts, const log::logger& log,
                 session_registry::clock_fn now)
    : db_(db),
      admin_token_(std::move(admin_token)),
      admin_fingerprint_(fingerprint_of(admin_token_)),
      opts_(opts),
      log_(log),
      sessions_(std::move(now), opts.sessions),
      hub_(opts.hub)
{
    db_.set_event_sink([this](const std::vector<event_record>& events) { deliver(events); });
}

void service::deliver(const std::vector<event_record>& events)
{
    counters_.events_fanned_out += events.size();
    for (const auto& e : events) {
        hub_.publish(e);
        if (e.type != "node-revoked") continue;
        boost::system::error_code ec;
        const auto v = json::parse(e.data, ec);
        if (ec || !v.is_object()) continue;
        if (const auto* id = v.as_object().if_contains("nodeId"); id && id->is_string())
            hub_.close_node(std::string(id->get_string()), e.id);
    }
}

awaitable<void> service::housekeeping()
{
    const auto ex = co_await asio::this_coro::executor;
    for (;;) {
        timer t{ex, std::chrono::seconds(30)};
        co_await t.async_wait(use_awaitable);
        try {
            co_await sessions_.prune(db_);
        } catch (const boost::system::system_error& e) {
            if (e.code() == asio::error::operation_aborted) throw;
            storage_failed(e);  // the next round tries again
        } catch (const std::exception& e) {
            storage_failed(e);
        }
    }
}

awaitable<void> service::sample_fleet()
{
    const auto ex = co_await asio::this_coro::executor;
    for (;;) {
        try {
            const auto orgs = co_await db_.node_orgs(fleet_history::max_orgs);
            for (const auto& org : orgs) {
                const auto cfg = co_await db_.latest_config(org);
                const auto now = sessions_.now_ms();
                const auto r =
                    co_await db_.rollout(org, cfg ? cfg->updated_at : 0, online_at(now, cfg), "", 0);
                fleet_.record(org, now, r.applied + r.behind);
            }
        } catch (const boost::system::system_error& e) {
            if (e.code() == asio::error::operation_aborted) throw;
            storage_failed(e);  // a gap in the chart; the next round tries again
        } catch (const std::exception& e) {
            storage_failed(e);
        }
        timer t{ex, opts_.fleet_sample_every};
        co_await t.async_wait(use_awaitable);
    }
}

void service::storage_failed(const std::exception& e)
{
    ++counters_.storage_errors;
    if (std::uint64_t left_out = 0; storage_log_.allow(left_out))
        log_.error("gateway.storage_failed", {{"error", e.what()}, {"suppressed", left_out}});
}

bool service::is_admin(const net::http::request& req) const
{
    const auto token = detail::bearer(req);
    return token && admin_token_is(*token);
}

bool service::admin_token_is(std::string_view presented) const
{
    const std::lock_guard lock(admin_mutex_);
    return !presented.empty() && constant_time_equal(presented, admin_token_.reveal());
}

std::string service::admin_fingerprint() const
{
    const std::lock_guard lock(admin_mutex_);
    return admin_fingerprint_;
}

bool service::replace_admin_token(secret token)
{
    {
        const std::lock_guard lock(admin_mutex_);
        if (constant_time_equal(token.reveal(), admin_token_.reveal())) return false;
        admin_fingerprint_ = fingerprint_of(token);
        admin_token_ = std::move(token);
    }
    ++admin_generation_;
    return true;
}

awaitable<net::reply> service::handle(net::http::request req, net::peer_info peer)
{
    // A store that fails under a stream's or the console's authorization
    // answers like an RPC's (unary catches its own): unavailable, not 500.
    try {
        auto r = co_await dispatch(req, peer);
        co_return r;
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) throw;
        storage_failed(e);
    } catch (const std::exception& e) {
        storage_failed(e);
    }
    co_return net::connect::error_reply(code::unavailable, "storage unavailable; retry");
}

awaitable<net::reply> service::dispatch(const net::http::request& req, const net::peer_info& peer)
{
    const std::string_view target = req.target;
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/v1/events" || path == "/v1/admin/events") {
        if (req.method != "GET")
            co_return net::connect::error_reply(405, code::unimplemented, "use GET for event streams");
        auto r = co_await open_stream(req, peer, path == "/v1/admin/events");
        co_return r;
    }
    for (const std::string_view svc : {node_service, admin_service}) {
        if (path.size() > svc.size() + 2 && path[0] == '/' && path.substr(1, svc.size()) == svc &&
            path[svc.size() + 1] == '/') {
            auto r = co_await unary(req, peer, svc, path.substr(svc.size() + 2));
            co_return r;
        }
    }
    if (path == "/ui" || path.starts_with("/ui/")) {
        auto r = co_await console(req, peer, path);
        co_return r;
    }
    if (path == "/metrics" && req.method == "GET") co_return metrics(req, peer);
    if (path == "/livez" && req.method == "GET") co_return net::json_reply("{\"status\":\"ok\"}");
    if (path == "/readyz" && req.method == "GET") {
        auto r = co_await ready();
        co_return r;
    }
    co_return net::connect::error_reply(404, code::unimplemented, "no such endpoint: " + std::string(path));
}

void rpc_counters::record(std::size_t route, std::size_t outcome, std::chrono::microseconds took) noexcept
{
    if (route < max_routes && outcome < outcomes) ++calls[route][outcome];
    const double seconds = static_cast<double>(took.count()) / 1e6;
    std::size_t b = 0;
    while (b < bounds.size() && seconds > bounds[b]) ++b;
    ++latency[b];
    latency_sum_us += static_cast<std::uint64_t>(took.count());
}

awaitable<void> service::readiness()
{
    const auto ex = co_await asio::this_coro::executor;
    timer forever{ex, timer::time_point::max()};
    auto [ec] = co_await forever.async_wait();
    draining_ = true;
    log_.info("gateway.draining", {{"readyz", 503}});
    (void)ec;
}

awaitable<net::reply> service::ready()
{
    net::reply r;
    r.head.headers.set("Cache-Control", "no-store");
    if (draining_) {
        r.head.status = 503;
        r.head.body = "{\"status\":\"draining\"}";
        co_return r;
    }
    // The store answers (a trivial read on its thread) within a second.
    using namespace asio::experimental::awaitable_operators;
    const auto ex = co_await asio::this_coro::executor;
    timer deadline{ex, std::chrono::seconds(1)};
    auto done = co_await (store_answers() || deadline.async_wait());
    const bool answers = done.index() == 0 && std::get<0>(done);
    // A replica whose event feed is down or behind would serve streams
    // that miss events: not ready either.
    const auto st = db_.status();
    const bool ok = answers && st.feed_ready;
    r.head.status = ok ? 200 : 503;
    r.head.headers.set("Content-Type", "application/json");
    r.head.body = ok ? "{\"status\":\"ready\"}"
                  : !answers
                      ? "{\"status\":\"storage unavailable\"}"
                      : "{\"status\":\"event feed " + std::string(st.listening ? "behind" : "not listening") +
                            "\",\"lagMs\":" + std::to_string(st.tail_lag_ms) + "}";
    co_return r;
}

awaitable<bool> service::store_answers()
{
    bool ok = false;
    try {
        co_await db_.ping();
        ok = true;
    } catch (const std::exception& e) {
        storage_failed(e);
    }
    co_return ok;
}

void service::count_refusal(unsigned status) noexcept
{
    switch (status) {
        case 0:
            ++counters_.connections_refused;
            break;
        case 429:
            ++counters_.refused_429;
            break;
        case 431:
            ++counters_.refused_431;
            break;
        default:
            ++counters_.refused_400;
            break;
    }
}

net::reply service::metrics(const net::http::request& req, const net::peer_info& peer)
{
    // The operator's scraper brings the admin token: the counters say where
    // an attack comes from and how it goes.
    if (!is_admin(req)) return admin_refused(peer, "/metrics");
    std::string out;
    const auto family = [&out](std::string_view name, std::string_view type, std::string_view help) {
        out.append("# HELP ").append(name).append(" ").append(help).append("\n");
        out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    };
    const auto sample = [&out](std::string_view name, std::uint64_t v, std::string_view labels = {}) {
        out.append(name).append(labels).append(" ").append(std::to_string(v)).append("\n");
    };
    family("tether_gateway_enroll_failures_total", "counter", "Enroll calls refused");
    sample("tether_gateway_enroll_failures_total", counters_.enroll_failures.load());
    family("tether_gateway_login_failures_total", "counter", "BeginAuth and CompleteAuth calls refused");
    sample("tether_gateway_login_failures_total", counters_.login_failures.load());
    family("tether_gateway_auth_throttled_total", "counter",
           "login or enrollment calls refused unheard after repeated failures from the address");
    sample("tether_gateway_auth_throttled_total", counters_.auth_throttled.load());
    family("tether_gateway_admin_auth_failures_total", "counter",
           "admin calls, admin streams and /metrics refused for a missing or wrong admin token");
    sample("tether_gateway_admin_auth_failures_total", counters_.admin_auth_failures.load());
    family("tether_gateway_requests_refused_total", "counter",
           "requests refused before any handler, by status");
    sample("tether_gateway_requests_refused_total", counters_.refused_400.load(), "{status=\"400\"}");
    sample("tether_gateway_requests_refused_total", counters_.refused_429.load(), "{status=\"429\"}");
    sample("tether_gateway_requests_refused_total", counters_.refused_431.load(), "{status=\"431\"}");
    family("tether_gateway_connections_refused_total", "counter",
           "connections closed over the per-address limit");
    sample("tether_gateway_connections_refused_total", counters_.connections_refused.load());
    family("tether_gateway_storage_errors_total", "counter",
           "storage calls that failed (answered unavailable)");
    sample("tether_gateway_storage_errors_total", counters_.storage_errors.load());
    family("tether_gateway_rpcs_total", "counter", "unary RPCs answered, by method and code");
    for (std::size_t i = 0; i < std::size(routes_) && i < rpc_counters::max_routes; ++i)
        for (std::size_t o = 0; o < rpc_counters::outcomes; ++o)
            if (const auto n = rpcs_.calls[i][o].load(); n > 0)
                sample("tether_gateway_rpcs_total", n,
                       "{method=\"" + std::string(routes_[i].method) + "\",code=\"" +
                           std::string(o == 0 ? "ok" : net::connect::to_string(static_cast<code>(o - 1))) +
                           "\"}");
    family("tether_gateway_rpc_duration_seconds", "histogram", "unary RPC time from request to answer");
    {
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b <= rpc_counters::bounds.size(); ++b) {
            cumulative += rpcs_.latency[b].load();
            char le[32];
            if (b < rpc_counters::bounds.size())
                std::snprintf(le, sizeof le, "%g", rpc_counters::bounds[b]);
            else
                std::snprintf(le, sizeof le, "+Inf");
            sample("tether_gateway_rpc_duration_seconds_bucket", cumulative,
                   "{le=\"" + std::string(le) + "\"}");
        }
        char sum[48];
        std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(rpcs_.latency_sum_us.load()) / 1e6);
        out.append("tether_gateway_rpc_duration_seconds_sum ").append(sum).append("\n");
        sample("tether_gateway_rpc_duration_seconds_count", cumulative);
    }
    family("tether_gateway_streams", "gauge", "open event streams");
    sample("tether_gateway_streams", hub_.connections());
    family("tether_gateway_stream_evictions_total", "counter", "streams evicted for not keeping up");
    sample("tether_gateway_stream_evictions_total", hub_.evictions());
    family("tether_gateway_events_fanned_out_total", "counter",
           "committed events handed to this replica's streams (from any replica)");
    sample("tether_gateway_events_fanned_out_total", counters_.events_fanned_out.load());
    const auto st = db_.status();
    const std::string backend = "{backend=\"" + std::string(db_.backend()) + "\"}";
    family("tether_gateway_store_pool_in_use", "gauge", "storage connections running a statement");
    sample("tether_gateway_store_pool_in_use", st.pool_in_use, backend);
    family("tether_gateway_store_pool_open", "gauge", "storage connections open");
    sample("tether_gateway_store_pool_open", st.pool_open, backend);
    family("tether_gateway_event_feed_listening", "gauge",
           "1 while the event feed is connected (PostgreSQL: the LISTEN connection)");
    sample("tether_gateway_event_feed_listening", st.listening ? 1 : 0, backend);
    family("tether_gateway_event_feed_lag_seconds", "gauge",
           "time since the event feed last read everything committed");
    {
        char lag[48];
        std::snprintf(lag, sizeof lag, "%.3f",
                      st.tail_lag_ms == INT64_MAX ? 1e9 : static_cast<double>(st.tail_lag_ms) / 1e3);
        out.append("tether_gateway_event_feed_lag_seconds")
            .append(backend)
            .append(" ")
            .append(lag)
            .append("\n");
    }
    family("tether_gateway_event_feed_cursor", "gauge", "the newest event id this replica fanned out");
    sample("tether_gateway_event_feed_cursor",
           static_cast<std::uint64_t>(std::max<std::int64_t>(st.feed_cursor, 0)), backend);
    if (const auto not_after = tls_not_after_.load(); not_after > 0) {
        family("tether_gateway_tls_not_after_seconds", "gauge",
               "when the TLS certificate this replica serves to new connections ends (Unix time)");
        sample("tether_gateway_tls_not_after_seconds", static_cast<std::uint64_t>(not_after));
    }
    net::reply r;
    r.head.headers.set("Content-Type", "text/plain; version=0.0.4");
    r.head.body = std::move(out);
    return r;
}

bool service::auth_throttled(const std::string& ip)
{
    const auto now = sessions_.now_ms();
    const std::lock_guard lock(failures_m_);
    const auto it = failures_.find(net::address_group(ip));
    if (it == failures_.end()) return false;
    if (window_over(it->second.window_start, now, opts_.auth_failure_window_ms)) {
        failures_.erase(it);
        return false;
    }
    return it->second.count >= opts_.auth_failures_per_window;
}

void service::auth_failed(const std::string& ip, std::string_view method, const rpc_error& e)
{
    if (method == "Enroll")
        ++counters_.enroll_failures;
    else
        ++counters_.login_failures;
    const auto now = sessions_.now_ms();
    {
        const std::lock_guard lock(failures_m_);
        // Bounded: when full, windows that ended go first, then everything.
        if (failures_.size() >= 100'000) {
            std::erase_if(failures_, [&](const auto& kv) {
                return window_over(kv.second.window_start, now, opts_.auth_failure_window_ms);
            });
            if (failures_.size() >= 100'000) failures_.clear();
        }
        auto& f = failures_[net::address_group(ip)];
        if (f.count == 0 || window_over(f.window_start, now, opts_.auth_failure_window_ms)) f = {now, 0};
        ++f.count;
    }
    log_auth_failure(ip, method, e.code);
}

void service::log_auth_failure(std::string_view ip, std::string_view what, code c)
{
    if (std::uint64_t left_out = 0; auth_log_.allow(left_out))
        log_.warn(
            "gateway.auth_failed",
            {{"peer", ip}, {"method", what}, {"code", net::connect::to_string(c)}, {"suppressed", left_out}});
}

net::reply service::admin_refused(const net::peer_info& peer, std::string_view what)
{
    ++counters_.admin_auth_failures;
    log_auth_failure(peer.address, what, code::unauthenticated);
    return net::connect::error_reply(code::unauthenticated, "missing or wrong admin token");
}

awaitable<net::reply> service::unary(const net::http::request& req, const net::peer_info& peer,
                                     std::string_view service_name, std::string_view method)
{
    if (req.method != "POST") {
        auto r = net::connect::error_reply(405, code::unimplemented, "Connect unary calls use POST");
        r.head.headers.set("Allow", "POST");
        co_return r;
    }
    // The Connect protocol's request headers, answered as it says.
    if (const auto enc = req.headers.get("Content-Encoding"); enc && !net::http::iequals(*enc, "identity")) {
        auto r = net::connect::error_reply(
            code::unimplemented,
            "Content-Encoding " + std::string(*enc).substr(0, 64) + " is not supported: send identity");
        r.head.headers.set("Accept-Encoding", "identity");
        co_return r;
    }
    if (const auto v = req.headers.get(net::connect::protocol_version_header); v && *v != "1")
        co_return net::connect::error_reply(
            code::invalid_argument,
            "Connect-Protocol-Version must be 1, not " + std::string(*v).substr(0, 64));
    if (const auto t = req.headers.get(net::connect::timeout_header);
        t && (t->empty() || t->size() > 10 ||
              !std::all_of(t->begin(), t->end(), [](char c) { return c >= '0' && c <= '9'; })))
        co_return net::connect::error_reply(code::invalid_argument,
                                            "Connect-Timeout-Ms must be 1 to 10 digits");
    const auto ct = req.headers.get("Content-Type").value_or("");
    if (!net::http::iequals(ct.substr(0, ct.find(';')), "application/json"))
        co_return net::connect::error_reply(415, code::invalid_argument,
                                            "Content-Type must be application/json");
    auto body = pj::parse_object(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
    if (!body) co_return net::connect::error_reply(code::invalid_argument, body.error().message());

    const auto* r = std::find_if(std::begin(routes_), std::end(routes_), [&](const route& x) {
        return x.service == service_name && x.method == method;
    });
    if (r == std::end(routes_))
        co_return net::connect::error_reply(
            404, code::unimplemented,
            "unknown method " + std::string(service_name) + "/" + std::string(method));

    const auto started = std::chrono::steady_clock::now();
    const auto route_index = static_cast<std::size_t>(r - std::begin(routes_));
    rpc_result out = fail(code::unavailable, "the gateway's storage failed; retry later");
    // One catch for the guard's and the handler's storage calls: a store
    // that is down or broken answers unavailable now, not a hang or a 500
    // (agents treat unavailable as transient).
    try {
        std::optional<session_info> session;
        switch (r->guard) {
            case rpc_guard::admin:
                if (!is_admin(req)) {
                    const auto console_ok = co_await console_authorized(req, true);
                    if (!console_ok)
                        co_return admin_refused(peer, std::string(service_name) + "/" + std::string(method));
                }
                break;
            case rpc_guard::login:
                if (auth_throttled(peer.address)) {
                    ++counters_.auth_throttled;
                    co_return net::connect::error_reply(
                        code::resource_exhausted, "too many failed attempts from this address; retry later");
                }
                break;
            case rpc_guard::session: {
                if (const auto token = detail::bearer(req)) {
                    secret presented(*token);
                    auto found = co_await sessions_.find_session(db_, std::move(presented));
                    session = std::move(found);
                }
                if (!session)
                    co_return net::connect::error_reply(code::unauthenticated,
                                                        "missing, expired or unknown session token");
                break;
            }
        }
        const rpc_call call{*body, peer, session ? &*session : nullptr};
        out = co_await (this->*(r->handler))(call);
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) throw;
        storage_failed(e);
    } catch (const std::exception& e) {
        storage_failed(e);
    }
    rpcs_.record(
        route_index, out ? 0 : static_cast<std::size_t>(out.error().code) + 1,
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started));
    if (!out) {
        if (r->guard == rpc_guard::login && out.error().code != code::unavailable)
            auth_failed(peer.address, method, out.error());
        co_return net::connect::error_reply(out.error().code, out.error().message);
    }
    co_return net::json_reply(json::serialize(*out));
}

}  // namespace tether::gateway
