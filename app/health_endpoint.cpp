#include "app/health_endpoint.hpp"

#include "net/blocking_call.hpp"

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

}  // namespace

std::uint64_t resident_memory_bytes()
{
    std::ifstream in("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    in >> size >> resident;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

net::handler health_handler(health_sources src)
{
    return [src](net::http::request req, net::peer_info) -> awaitable<net::reply> {
        const auto& st = *src.status;
        const auto now = net::wall_ms();
        const auto interval = std::max<std::int64_t>(st.interval_ms.load(), 1000);
        const std::string path = req.target.substr(0, req.target.find('?'));
        if (req.method != "GET") co_return text(405, "GET only\n");
        if (path == "/livez") {
            // Wedged: the heartbeat loop has not come round for far longer
            // than an interval (plus the longest call it may be waiting on).
            const bool alive = now - st.last_loop_ms.load() < 2 * interval + 30'000;
            co_return text(alive ? 200 : 503, alive ? "ok\n" : "heartbeat loop stalled\n");
        }
        if (path == "/readyz") {
            const auto last_ok = st.last_heartbeat_ok_ms.load();
            const bool ready = last_ok > 0 && now - last_ok <= 2 * interval;
            co_return text(ready ? 200 : 503,
                           ready ? "ready\n" : "no successful heartbeat within two intervals\n");
        }
        if (path == "/metrics") {
            std::ostringstream m;
            m << "# HELP tether_heartbeats_total Heartbeats by result.\n"
              << "# TYPE tether_heartbeats_total counter\n"
              << "tether_heartbeats_total{result=\"ok\"} " << st.heartbeats_sent.load() << "\n"
              << "tether_heartbeats_total{result=\"failed\"} " << st.heartbeats_failed.load() << "\n"
              << "# HELP tether_last_heartbeat_success_timestamp_seconds Wall time of the last successful "
                 "heartbeat.\n"
              << "# TYPE tether_last_heartbeat_success_timestamp_seconds gauge\n"
              << "tether_last_heartbeat_success_timestamp_seconds " << st.last_heartbeat_ok_ms.load() / 1000
              << "\n"
              << "# HELP tether_session_refreshes_total Logins (initial and refreshes).\n"
              << "# TYPE tether_session_refreshes_total counter\n"
              << "tether_session_refreshes_total " << (src.session_refreshes ? src.session_refreshes() : 0)
              << "\n"
              << "# HELP tether_config_updated_at configUpdatedAt of the applied runtime config.\n"
              << "# TYPE tether_config_updated_at gauge\n"
              << "tether_config_updated_at " << st.config_updated_at.load() << "\n"
              << "# HELP tether_config_applies_total Runtime config versions applied.\n"
              << "# TYPE tether_config_applies_total counter\n"
              << "tether_config_applies_total " << st.config_applies.load() << "\n"
              << "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
              << "# TYPE process_resident_memory_bytes gauge\n"
              << "process_resident_memory_bytes " << resident_memory_bytes() << "\n";
            co_return text(200, m.str(), "text/plain; version=0.0.4; charset=utf-8");
        }
        if (path == "/status") {
            boost::json::object o{{"nodeId", src.node_id},
                                  {"heartbeatsSent", st.heartbeats_sent.load()},
                                  {"heartbeatsFailed", st.heartbeats_failed.load()},
                                  {"lastHeartbeatOkMs", st.last_heartbeat_ok_ms.load()},
                                  {"configUpdatedAt", st.config_updated_at.load()},
                                  {"realtimeConnected", false}};
            co_return text(200, boost::json::serialize(o), "application/json");
        }
        co_return text(404, "not found\n");
    };
}

}  // namespace tether::app
