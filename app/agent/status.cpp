// `tether status`: what this node is, from its state directory. Reads only;
// never takes the lock, so it works next to a running agent.
#include "app/agent/commands.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/one_shot.hpp"
#include "auth/state_store.hpp"
#include "base/utf8.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "settings/config_store.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

namespace tether::app {

namespace {

/// The PID holding the state lock, or 0 when no agent runs on this directory.
long running_pid(const auth::state_paths& p)
{
    const int fd = ::open(p.lock_file().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    long pid = 0;
    if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
        char buf[32] = {};
        if (::pread(fd, buf, sizeof buf - 1, 0) > 0) pid = std::strtol(buf, nullptr, 10);
        if (pid == 0) pid = -1;  // locked, PID unreadable
    }
    ::close(fd);
    return pid;
}

/// GET http://ADDR/status from a running agent; nullopt when it does not answer.
std::optional<boost::json::object> live_status(const std::string& addr)
{
    auto u = net::parse_url("http://" + addr + "/status");
    if (!u) throw cli::usage_error("--health-listen: " + u.error());
    asio::io_context ioc;
    net::http_client http(ioc.get_executor(), nullptr);
    std::optional<boost::json::object> out;
    run_to_completion(ioc, [&]() -> awaitable<void> {
        net::http::request req;
        req.target = u->target();
        auto r = co_await http.request(*u, req, std::chrono::seconds(2));
        if (!r || r->status != 200) co_return;
        boost::system::error_code ec;
        auto v = boost::json::parse(r->body, ec);
        if (!ec && v.is_object()) out = std::move(v.get_object());
    }());
    return out;
}

/// The counters `tether status` shows from a live agent, when the answer
/// has them: whatever listens on that address may be another program or
/// another version, and its answer must not end the command.
struct live_counters {
    std::int64_t sent = 0, failed = 0;
    bool realtime = false;
};

std::optional<live_counters> counters_of(const boost::json::object& o)
{
    const auto* sent = o.if_contains("heartbeatsSent");
    const auto* failed = o.if_contains("heartbeatsFailed");
    const auto* realtime = o.if_contains("realtimeConnected");
    if (!sent || !sent->is_int64() || !failed || !failed->is_int64() || !realtime || !realtime->is_bool())
        return std::nullopt;
    return live_counters{sent->get_int64(), failed->get_int64(), realtime->get_bool()};
}

}  // namespace

int agent_show_status(invocation& inv)
{
    const auto paths = resolve_state_dir(inv);
    auth::node_state st;
    try {
        st = auth::load_state(paths);
    } catch (const auth::state_error& e) {
        throw fatal_exit(exit_status::usage, e.what());
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const bool session_valid = !st.session_token.empty() && st.session_expires_ms > now + st.server_offset_ms;
    const std::int64_t config_at = settings::load_config_file(paths.config_file(), inv.log)->updated_at;
    const long pid = running_pid(paths);
    boost::json::object out{{"nodeId", st.node_id},           {"orgId", st.org_id},
                            {"nodeName", st.node_name},       {"server", st.server_url},
                            {"stateDir", paths.dir.string()}, {"sessionValid", session_valid},
                            {"configUpdatedAt", config_at},   {"agentRunning", pid != 0}};
    if (st.session_expires_ms > 0)
        out["sessionExpiresAt"] = net::protojson::format_timestamp(
            net::protojson::sys_time{std::chrono::milliseconds(st.session_expires_ms)});
    if (pid > 0) out["agentPid"] = pid;
    std::optional<boost::json::object> live;
    std::optional<live_counters> counters;
    if (auto addr = inv.args.value("health-listen")) {
        live = live_status(*addr);
        if (live) counters = counters_of(*live);
        out["health"] = !live ? "unreachable" : counters ? "reachable" : "not a tether agent";
        if (counters)
            for (const char* k : {"heartbeatsSent", "heartbeatsFailed", "lastHeartbeatOkMs",
                                  "realtimeConnected", "configRejections", "streamConnects"})
                if (const auto* v = live->if_contains(k)) out[k] = *v;
    }
    if (inv.args.enabled("json")) {
        std::cout << boost::json::serialize(out) << "\n";
        return 0;
    }
    std::cout << "node:      " << terminal_safe(st.node_id) << " (" << terminal_safe(st.node_name) << ")\n"
              << "org:       " << terminal_safe(st.org_id) << "\n"
              << "server:    " << terminal_safe(st.server_url) << "\n"
              << "session:   " << (session_valid ? "valid until " : "none or expired")
              << (session_valid ? std::string(out["sessionExpiresAt"].as_string()) : std::string()) << "\n"
              << "config:    "
              << (config_at ? "configUpdatedAt " + std::to_string(config_at) : std::string("none applied"))
              << "\n"
              << (counters ? "heartbeats: " + std::to_string(counters->sent) + " ok, " +
                                 std::to_string(counters->failed) + " failed; realtime " +
                                 (counters->realtime ? "connected" : "not connected") + "\n"
                  : live ? std::string("health:    answered, but not as a tether agent\n")
                         : std::string())
              << "agent:     "
              << (pid > 0   ? "running, PID " + std::to_string(pid)
                  : pid < 0 ? std::string("running")
                            : std::string("not running"))
              << "\n";
    return 0;
}

}  // namespace tether::app
