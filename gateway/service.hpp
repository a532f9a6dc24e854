// The gateway's HTTP surface: Connect unary RPCs of NodeService and
// AdminService, and the event streams.
#pragma once

#include "base/log.hpp"
#include "base/secret.hpp"
#include "gateway/event_hub.hpp"
#include "gateway/fleet_history.hpp"
#include "gateway/rpc.hpp"
#include "gateway/sessions.hpp"
#include "gateway/store.hpp"
#include "net/connect_reply.hpp"
#include "net/http_server.hpp"
#include "net/protojson.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace tether::gateway {

/// What a hostile or broken client caused, for /metrics.
struct gateway_counters {
    std::atomic<std::uint64_t> enroll_failures{0};
    std::atomic<std::uint64_t> login_failures{0};  ///< BeginAuth and CompleteAuth refused
    std::atomic<std::uint64_t> auth_throttled{0};  ///< refused unheard: too many failures from the address
    std::atomic<std::uint64_t> admin_auth_failures{0};  ///< admin calls, streams, /metrics without the token
    std::atomic<std::uint64_t> refused_400{0};          ///< malformed HTTP
    std::atomic<std::uint64_t> refused_429{0};          ///< body over the limit
    std::atomic<std::uint64_t> refused_431{0};          ///< header (or trailers) over the limit
    std::atomic<std::uint64_t> connections_refused{0};  ///< over the per-address connection limit
    std::atomic<std::uint64_t> storage_errors{0};       ///< storage calls that threw (answered unavailable)
    std::atomic<std::uint64_t> events_fanned_out{0};    ///< committed events handed to the hub
};

/// Unary RPCs by route and outcome, and their latency, for /metrics.
struct rpc_counters {
    static constexpr std::size_t max_routes = 16;
    static constexpr std::size_t outcomes = 17;  ///< 0: ok, 1 + connect::code
    static constexpr std::array<double, 9> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5};
    std::array<std::array<std::atomic<std::uint64_t>, outcomes>, max_routes> calls{};
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> latency{};  ///< per bucket, not cumulative
    std::atomic<std::uint64_t> latency_sum_us{0};
    void record(std::size_t route, std::size_t outcome, std::chrono::microseconds took) noexcept;
};

struct gateway_options {
    session_limits sessions{};
    hub_limits hub{};
    std::size_t history = 1024;                      ///< events kept per org for replay
    std::chrono::milliseconds idle_comment{15'000};  ///< comment on an idle stream this often
    std::int32_t heartbeat_interval_seconds = 0;     ///< CompleteAuth default; 0 = agent's own
    /// Failed Enroll/BeginAuth/CompleteAuth per address per window; beyond
    /// it the address gets resource_exhausted until the window ends.
    std::size_t auth_failures_per_window = 20;
    std::int64_t auth_failure_window_ms = 60'000;
    /// How often sample_fleet counts each org's online nodes (the console's chart).
    std::chrono::milliseconds fleet_sample_every{60'000};
    /// Web console sessions: lifetime, how many may be live at once, and
    /// whether the cookie is marked Secure (serving TLS).
    std::int64_t console_session_ms = 8 * 3'600'000;
    std::size_t console_sessions = 64;
    bool console_secure_cookie = false;
};

/// The HTTP server settings the gateway runs with.
inline net::server_options default_server_options()
{
    net::server_options o;
    // Bounds what one stream that stops reading pins in the kernel, so it
    // reaches its queue limit and is evicted in a few hundred events rather
    // than filling megabytes of autotuned buffer until the write timeout.
    o.send_buffer_bytes = 64 * 1024;
    // A node holds up to ~5 (stream, login, heartbeat, config, stream token);
    // 20 nodes behind one address (the stream limit per address) fit.
    o.max_connections_per_ip = 256;
    // One strand per event-loop thread (serve sets how many): a publish is
    // then one job per thread, which writes to every idle stream itself.
    o.connection_strands = 1;
    o.refusal = net::connect::refusal_reply;
    return o;
}

/// Thread-safe: handlers run on each connection's strand; shared state is
/// the session registry and hub (internally locked) and the store (awaitable,
/// thread-safe). Events reach the hub from the store's feed only, so a
/// replica's streams see what every replica published, in id order.
///
/// The code is split by what it serves: routing, guards and /metrics in
/// service.cpp, NodeService in node_rpcs.cpp, AdminService in
/// admin_rpcs.cpp, the event streams in event_stream.cpp.
class service {
public:
    /// Sets the store's event sink; `db` outlives the service and stops
    /// feeding (its tasks end) before the service is destroyed.
    service(store& db, secret admin_token, gateway_options opts, const log::logger& log,
            session_registry::clock_fn now);

    /// The net::handler for http_server.
    awaitable<net::reply> handle(net::http::request req, net::peer_info peer);

    /// The gateway's housekeeping task: forgets expired challenges, sessions
    /// and stream tokens every 30 s. Runs until cancelled.
    awaitable<void> housekeeping();

    /// Records every org's online count in fleet_history (GetOnlineHistory),
    /// at once and then every gateway_options::fleet_sample_every. Runs
    /// until cancelled.
    awaitable<void> sample_fleet();

    [[nodiscard]] event_hub& hub() noexcept { return hub_; }
    [[nodiscard]] const gateway_counters& counters() const noexcept { return counters_; }
    /// Until cancelled; then /readyz answers 503 (the supervisor cancels
    /// every task at once on SIGTERM, before the drain).
    awaitable<void> readiness();

    /// For net::server_options::on_refused: an HTTP-level refusal (status) or,
    /// with 0, a connection refused over the per-address limit.
    void count_refusal(unsigned status) noexcept;

    /// The admin token was rotated (its file changed): from now on requests
    /// need the new one, and what the old one opened ends: console sessions
    /// at their next request, admin event streams at their next wake-up
    /// (within gateway_options::idle_comment). False, and nothing changes,
    /// when `token` is the one in use. Any thread.
    bool replace_admin_token(secret token);
    /// When the TLS certificate served ends (seconds since the epoch), for
    /// /metrics; any thread.
    void note_tls_certificate(std::int64_t not_after_unix) noexcept { tls_not_after_.store(not_after_unix); }

private:
    using rpc_handler = awaitable<rpc_result> (service::*)(const rpc_call&);
    struct route {
        std::string_view service;
        std::string_view method;
        rpc_guard guard;
        rpc_handler handler;
    };
    static const route routes_[];

    awaitable<net::reply> unary(const net::http::request& req, const net::peer_info& peer,
                                std::string_view service_name, std::string_view method);
    net::reply metrics(const net::http::request& req, const net::peer_info& peer);
    /// 200 while serving and the store answers within a second; 503 otherwise.
    awaitable<net::reply> ready();
    /// A trivial round trip to the store; false (counted, logged) when it throws.
    awaitable<bool> store_answers();
    [[nodiscard]] bool is_admin(const net::http::request& req) const;
    void storage_failed(const std::exception& e);
    /// Per-address failure accounting for the login and enrollment calls
    /// (an IPv6 address counts with its /64: net::address_group).
    bool auth_throttled(const std::string& ip);
    void auth_failed(const std::string& ip, std::string_view method, const rpc_error& e);
    /// What needed the admin token came without it (or with a wrong or a
    /// replaced one): counted and logged like a failed login, not
    /// throttled, as nodes behind the same address must still log in (and
    /// the token cannot be guessed). The refusal to send.
    net::reply admin_refused(const net::peer_info& peer, std::string_view what);
    /// The one `gateway.auth_failed` line of both, at most one a second.
    void log_auth_failure(std::string_view ip, std::string_view what, net::connect::code c);

    // NodeService (node_rpcs.cpp)
    awaitable<rpc_result> enroll(const rpc_call& c);
    awaitable<rpc_result> begin_auth(const rpc_call& c);
    awaitable<rpc_result> complete_auth(const rpc_call& c);
    awaitable<rpc_result> heartbeat(const rpc_call& c);
    awaitable<rpc_result> get_runtime_config(const rpc_call& c);
    awaitable<rpc_result> create_stream_token(const rpc_call& c);

    // AdminService (admin_rpcs.cpp)
    awaitable<rpc_result> create_enrollment_code(const rpc_call& c);
    awaitable<rpc_result> revoke_enrollment_code(const rpc_call& c);
    awaitable<rpc_result> publish_config(const rpc_call& c);
    awaitable<rpc_result> list_nodes(const rpc_call& c);
    awaitable<rpc_result> revoke_node(const rpc_call& c);
    awaitable<rpc_result> forget_nodes(const rpc_call& c);
    awaitable<rpc_result> get_rollout(const rpc_call& c);
    awaitable<rpc_result> get_config(const rpc_call& c);
    awaitable<rpc_result> get_online_history(const rpc_call& c);
    /// When, seen from `now_ms`, a node of an org with `cfg` counts as online.
    [[nodiscard]] online_span online_at(std::int64_t now_ms, const std::optional<config_record>& cfg) const;
    static boost::json::object node_json(const node_record& n, online_span online);

    awaitable<net::reply> dispatch(const net::http::request& req, const net::peer_info& peer);

    // The web console (console.cpp)
    awaitable<net::reply> console(const net::http::request& req, const net::peer_info& peer,
                                  std::string_view path);
    awaitable<net::reply> console_api(const net::http::request& req, const net::peer_info& peer,
                                      std::string_view what);
    /// A live console session behind the request's cookie (and, when it
    /// changes state, that session's CSRF token): its hash and expiry.
    struct console_grant {
        std::string session_hash;
        std::int64_t expires_ms = 0;
    };
    awaitable<std::optional<console_grant>> console_authorized(const net::http::request& req,
                                                               bool changes_state);
    /// Whether the console session (by hash) is still live: a stream it
    /// opened asks again on each idle wake, so a logout ends it.
    awaitable<bool> console_session_live(std::string session_hash);

    // Event streams (event_stream.cpp)
    struct stream_start {
        std::shared_ptr<subscription> sub;
        std::optional<std::int64_t> last_id;  ///< Last-Event-ID, when sent
        bool last_id_valid = true;
        std::int64_t expires_ms = 0;  ///< the grant's end: the stream ends with it
        std::string console_session;  ///< opened by the web console: its session's hash
        /// Opened with the admin token: admin_generation_ then.
        std::optional<std::uint64_t> admin_generation;
    };
    awaitable<net::reply> open_stream(const net::http::request& req, const net::peer_info& peer, bool admin);
    /// The body of one event stream: replay after Last-Event-ID, then live
    /// events and idle comments until the grant ends, the subscription is
    /// closed or evicted, or a write fails.
    awaitable<error_code> send_events(stream_start start, net::body_writer& w);
    /// The events after Last-Event-ID, as one write.
    awaitable<error_code> replay_history(const stream_start& start, net::body_writer& w);

    /// The store's event sink: fans committed events out to local streams,
    /// and ends a revoked node's streams after its `node-revoked` event
    /// (whichever replica revoked it).
    void deliver(const std::vector<event_record>& events);

    /// Whether `presented` is the admin token in use.
    [[nodiscard]] bool admin_token_is(std::string_view presented) const;
    /// What a console session carries of the token it was opened with: a
    /// session whose fingerprint is not the current token's has ended.
    [[nodiscard]] std::string admin_fingerprint() const;

    store& db_;
    mutable std::mutex admin_mutex_;
    secret admin_token_;             // admin_mutex_
    std::string admin_fingerprint_;  // admin_mutex_
    /// Bumped by each replacement: an admin stream opened with the token
    /// ends when it sees another value.
    std::atomic<std::uint64_t> admin_generation_{0};
    std::atomic<std::int64_t> tls_not_after_{0};  ///< 0: no TLS
    gateway_options opts_;
    const log::logger& log_;
    session_registry sessions_;
    event_hub hub_;
    gateway_counters counters_;
    rpc_counters rpcs_;
    fleet_history fleet_;
    std::atomic<bool> draining_{false};
    struct failures {
        std::int64_t window_start = 0;
        std::size_t count = 0;
    };
    std::mutex failures_m_;
    std::map<std::string, failures> failures_;  // by net::address_group, bounded
    log::throttle auth_log_;
    log::throttle storage_log_;
};

/// Helpers the handler files share.
namespace detail {
std::string timestamp(std::int64_t ms);
std::optional<std::string> bearer(const net::http::request& req);
rpc_error invalid(const net::protojson::field_error& e);
/// The heartbeatIntervalSeconds `cfg` sets (clamped as agents clamp it), or
/// `fallback`.
std::int32_t heartbeat_interval_of(const std::optional<config_record>& cfg, std::int32_t fallback);
}  // namespace detail

}  // namespace tether::gateway
