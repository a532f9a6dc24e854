#include "app/agent/tasks/health_task.hpp"

#include "base/blocking_call.hpp"
#include "net/host_port.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

namespace tether::app {

namespace {

net::reply text(unsigned status, std::string body, std::string type = "text/plain; charset=utf-8")
{
    net::reply r;
    r.head.status = status;
    r.head.headers.set("Content-Type", type);
    r.head.headers.set("Cache-Control", "no-store");
    r.head.body = std::move(body);
    return r;
}

/// The Host of a request on a loopback listener names a loopback address
/// or `localhost`: a name a resolver cannot point elsewhere. A web page
/// whose own DNS name was pointed at 127.0.0.1 after it loaded (DNS
/// rebinding) would otherwise read this listener as its own origin: the
/// node's config, its watch stream and its status. Absent is allowed
/// (HTTP/1.0); every browser sends one.
bool names_loopback(std::optional<std::string_view> host)
{
    if (!host) return true;
    // The port is optional in a Host; parse_host_port wants one.
    auto parsed = net::parse_host_port(*host);
    if (!parsed) parsed = net::parse_host_port(std::string(*host) + ":0");
    return parsed && net::is_loopback_host(parsed->host);
}

net::handler loopback_hosts_only(net::handler inner)
{
    return [inner = std::move(inner)](net::http::request req, net::peer_info peer) -> awaitable<net::reply> {
        if (!names_loopback(req.headers.get("Host")))
            co_return text(403,
                           "Host must be a loopback address or localhost (this listener is loopback only)\n");
        auto r = co_await inner(std::move(req), std::move(peer));
        co_return r;
    };
}

}  // namespace

health_task::health_task(deps d)
    : server_(d.ex, d.listen, loopback_hosts_only(health_handler(std::move(d.sources))), d.log)
{
}

std::uint64_t resident_memory_bytes()
{
    std::ifstream in("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    in >> size >> resident;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

namespace {

class prom {
public:
    void family(std::string_view name, std::string_view type, std::string_view help)
    {
        out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    }
    void sample(std::string_view name, std::int64_t v, std::string_view labels = {})
    {
        out_ << name;
        if (!labels.empty()) out_ << '{' << labels << '}';
        out_ << ' ' << v << '\n';
    }
    std::string str() const { return out_.str(); }

private:
    std::ostringstream out_;
};

std::string label(std::string_view k, std::string_view v)
{
    return std::string(k) + "=\"" + std::string(v) + "\"";
}

std::string metrics_text(const agent_metrics& m, const health_sources& src)
{
    prom p;
    p.family("tether_heartbeats_total", "counter", "Heartbeats sent, by result.");
    p.sample("tether_heartbeats_total", m.heartbeats_sent.load(), label("result", "ok"));
    p.sample("tether_heartbeats_total", m.heartbeats_failed.load(), label("result", "failed"));
    p.family("tether_heartbeat_failures_total", "counter", "Failed heartbeats, by Connect code.");
    for (std::size_t i = 0; i < m.heartbeats_failed_by_code.size(); ++i) {
        const auto n = m.heartbeats_failed_by_code[i].load();
        if (n > 0)
            p.sample("tether_heartbeat_failures_total", n,
                     label("reason", net::connect::to_string(static_cast<net::connect::code>(i))));
    }
    p.family("tether_last_heartbeat_success_timestamp_seconds", "gauge",
             "Wall time of the last successful heartbeat.");
    p.sample("tether_last_heartbeat_success_timestamp_seconds", m.last_heartbeat_ok_ms.load() / 1000);
    p.family("tether_session_refreshes_total", "counter", "Logins (initial and refreshes).");
    p.sample("tether_session_refreshes_total",
             static_cast<std::int64_t>(src.session_refreshes ? src.session_refreshes() : 0));
    p.family("tether_stream_connects_total", "counter", "Event stream connections established.");
    p.sample("tether_stream_connects_total", m.stream_connects.load());
    p.family("tether_stream_disconnects_total", "counter", "Event stream connections lost or closed.");
    p.sample("tether_stream_disconnects_total", m.stream_disconnects.load());
    p.family("tether_stream_connected", "gauge", "1 while the event stream is connected.");
    p.sample("tether_stream_connected", m.realtime_connected.load() ? 1 : 0);
    p.family("tether_events_received_total", "counter", "Stream events received, by type.");
    for (std::size_t i = 0; i < event_type_labels.size(); ++i)
        p.sample("tether_events_received_total", m.events_by_type[i].load(),
                 label("type", event_type_labels[i]));
    p.family("tether_config_updated_at", "gauge", "configUpdatedAt of the applied runtime config.");
    p.sample("tether_config_updated_at", m.config_updated_at.load());
    p.family("tether_config_applies_total", "counter", "Runtime config versions applied.");
    p.sample("tether_config_applies_total", m.config_applies.load());
    p.family("tether_config_rejections_total", "counter", "Runtime config documents rejected by validation.");
    p.sample("tether_config_rejections_total", m.config_rejections.load());
    p.family("tether_config_persisted_at", "gauge",
             "configUpdatedAt of the config in the state directory (behind while the disk refuses it).");
    p.sample("tether_config_persisted_at", m.config_persisted_at.load());
    p.family("tether_config_persist_failures_total", "counter",
             "Failed writes of the applied config to the state directory.");
    p.sample("tether_config_persist_failures_total", m.config_persist_failures.load());
    p.family("tether_config_fetches_total", "counter", "GetRuntimeConfig calls that answered.");
    p.sample("tether_config_fetches_total", m.config_fetches.load());
    p.family("tether_dispatch_queue_depth", "gauge", "Events waiting for their handlers.");
    p.sample("tether_dispatch_queue_depth", m.dispatch.depth.load());
    p.family("tether_dispatch_retries_total", "counter", "Handler retries run.");
    p.sample("tether_dispatch_retries_total", m.dispatch.retries.load());
    p.family("tether_dispatch_failures_total", "counter", "Handler runs that failed.");
    p.sample("tether_dispatch_failures_total", m.dispatch.failures.load());
    p.family("tether_dispatch_dropped_total", "counter", "Events or retries dropped, by reason.");
    p.sample("tether_dispatch_dropped_total", m.dispatch.overflow_dropped.load(),
             label("reason", "overflow"));
    p.sample("tether_dispatch_dropped_total", m.dispatch.stale_retries_dropped.load(),
             label("reason", "stale"));
    p.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    p.sample("process_resident_memory_bytes", static_cast<std::int64_t>(resident_memory_bytes()));
    return p.str();
}

}  // namespace

net::handler health_handler(health_sources src)
{
    return [src](net::http::request req, net::peer_info) -> awaitable<net::reply> {
        const auto& m = *src.metrics;
        const auto now = wall_ms();
        const auto interval = std::max<std::int64_t>(m.interval_ms.load(), 1000);
        const std::string path = req.target.substr(0, req.target.find('?'));
        if (req.method != "GET" && req.method != "HEAD") co_return text(405, "GET only\n");
        if (src.config && config_api::handles(path)) {
            auto r = co_await src.config->answer(req);
            co_return r;
        }
        if (path == "/livez") {
            // Wedged: the heartbeat loop has not come round for far longer
            // than an interval (plus the longest call it may be waiting on).
            const bool alive = now - m.last_loop_ms.load() < 2 * interval + 30'000;
            co_return text(alive ? 200 : 503, alive ? "ok\n" : "heartbeat loop stalled\n");
        }
        if (path == "/readyz") {
            const auto last_ok = m.last_heartbeat_ok_ms.load();
            const bool session = !src.session_valid || src.session_valid();
            const bool recent = last_ok > 0 && now - last_ok <= 2 * interval;
            if (src.require_config && m.config_updated_at.load() == 0)
                co_return text(503, "no config applied yet\n");
            if (session && recent) co_return text(200, "ready\n");
            co_return text(
                503, !session ? "no valid session\n" : "no successful heartbeat within two intervals\n");
        }
        if (path == "/metrics")
            co_return text(200, metrics_text(m, src), "text/plain; version=0.0.4; charset=utf-8");
        if (path == "/status") {
            boost::json::object o{{"nodeId", src.node_id},
                                  {"heartbeatsSent", m.heartbeats_sent.load()},
                                  {"heartbeatsFailed", m.heartbeats_failed.load()},
                                  {"lastHeartbeatOkMs", m.last_heartbeat_ok_ms.load()},
                                  {"configUpdatedAt", m.config_updated_at.load()},
                                  {"configRejections", m.config_rejections.load()},
                                  {"streamConnects", m.stream_connects.load()},
                                  {"realtimeConnected", m.realtime_connected.load()}};
            boost::json::object config{{"version", m.config_updated_at.load()},
                                       {"persistedVersion", m.config_persisted_at.load()}};
            const auto applied = m.config_applied_at_ms.load();
            config["appliedAt"] = applied > 0 ? boost::json::value(applied) : boost::json::value(nullptr);
            const auto confirmed = m.config_confirmed_ms.load();
            config["staleSeconds"] =
                confirmed > 0 ? boost::json::value(std::max<std::int64_t>(0, now - confirmed) / 1000)
                              : boost::json::value(nullptr);
            if (const auto e = m.config_last_error.get())
                config["lastError"] = boost::json::object{
                    {"message", e->message}, {"configUpdatedAt", e->config_updated_at}, {"atMs", e->at_ms}};
            else
                config["lastError"] = nullptr;
            o["config"] = std::move(config);
            co_return text(200, boost::json::serialize(o), "application/json");
        }
        co_return text(404, "not found\n");
    };
}

}  // namespace tether::app
