// The gateway's HTTP surface: Connect unary RPCs of NodeService and
// AdminService, and the event streams.
#pragma once

#include "gateway/event_hub.hpp"
#include "gateway/sessions.hpp"
#include "gateway/storage.hpp"
#include "net/http_server.hpp"
#include "net/log.hpp"
#include "net/secret.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>

namespace tether::gateway {

/// What a hostile or broken client caused, for /metrics.
struct gateway_counters {
    std::atomic<std::uint64_t> enroll_failures{0};
    std::atomic<std::uint64_t> login_failures{0};  ///< BeginAuth and CompleteAuth refused
    std::atomic<std::uint64_t> auth_throttled{0};  ///< refused unheard: too many failures from the address
    std::atomic<std::uint64_t> refused_400{0};     ///< malformed HTTP
    std::atomic<std::uint64_t> refused_429{0};     ///< body over the limit
    std::atomic<std::uint64_t> refused_431{0};     ///< header (or trailers) over the limit
    std::atomic<std::uint64_t> connections_refused{0};  ///< over the per-address connection limit
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
    return o;
}

struct rpc_error {
    std::string code;
    std::string message;
};
using rpc_result = boost::system::result<boost::json::object, rpc_error>;

/// Thread-safe: handlers run on each connection's strand; shared state is
/// the session registry and hub (internally locked) and storage, reached only
/// through `db_executor` (one thread, so the storage needs no locking).
class service {
public:
    service(storage& db, asio::any_io_executor db_executor, secret admin_token, gateway_options opts,
            const log::logger& log, session_registry::clock_fn now);

    /// The net::handler for http_server.
    awaitable<net::reply> handle(net::http::request req, net::peer_info peer);

    [[nodiscard]] event_hub& hub() noexcept { return hub_; }
    [[nodiscard]] const gateway_counters& counters() const noexcept { return counters_; }
    /// For net::server_options::on_refused: an HTTP-level refusal (status) or,
    /// with 0, a connection refused over the per-address limit.
    void count_refusal(unsigned status) noexcept;
    [[nodiscard]] session_registry& sessions() noexcept { return sessions_; }

private:
    template <class R>
    awaitable<R> db(std::function<R(storage&)> fn);

    awaitable<net::reply> unary(const net::http::request& req, const net::peer_info& peer,
                                std::string_view service_name, std::string_view method);
    net::reply metrics(const net::http::request& req) const;
    /// Per-address failure accounting for the login and enrollment calls.
    bool auth_throttled(const std::string& ip);
    void auth_failed(const std::string& ip, std::string_view method, const rpc_error& e);
    awaitable<net::reply> stream(const net::http::request& req, const net::peer_info& peer, bool admin);

    awaitable<rpc_result> enroll(const boost::json::object& in);
    awaitable<rpc_result> begin_auth(const boost::json::object& in);
    awaitable<rpc_result> complete_auth(const boost::json::object& in);
    /// False when the node was deleted or revoked after its session began.
    awaitable<bool> node_alive(const std::string& node_id);
    awaitable<rpc_result> heartbeat(const boost::json::object& in, const session_info& s);
    awaitable<rpc_result> get_runtime_config(const session_info& s);
    awaitable<rpc_result> create_stream_token(const session_info& s);
    awaitable<rpc_result> create_enrollment_code(const boost::json::object& in);
    awaitable<rpc_result> publish_config(const boost::json::object& in);
    awaitable<rpc_result> list_nodes(const boost::json::object& in);
    awaitable<rpc_result> revoke_node(const boost::json::object& in);

    /// Appends and fans out on the storage thread, so streams see id order.
    event_record append_and_publish(storage& st, const std::string& org, const std::string& type,
                                    const std::string& data);

    storage& db_;
    asio::any_io_executor db_exec_;
    secret admin_token_;
    gateway_options opts_;
    const log::logger& log_;
    session_registry sessions_;
    event_hub hub_;
    gateway_counters counters_;
    struct failures {
        std::int64_t window_start = 0;
        std::size_t count = 0;
    };
    std::mutex failures_m_;
    std::map<std::string, failures> failures_;  // by address, bounded
    log::throttle auth_log_;
};

}  // namespace tether::gateway
