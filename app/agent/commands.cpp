#include "app/agent/commands.hpp"

#include "app/agent/sse_decode.hpp"
#include "app/common/exit_status.hpp"
#include "net/sse_parser.hpp"

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>

namespace tether::app {

namespace {

constexpr cli::flag state_dir{"state-dir", "DIR", "where the node's identity is kept",
                              "/var/lib/tether for root, $XDG_STATE_HOME/tether otherwise"};
constexpr cli::flag ca_file{"ca-file", "FILE",
                            "PEM bundle of CAs trusted for https (instead of the system store)"};
constexpr cli::flag threads{"threads", "N", "event-loop threads", "1"};
constexpr cli::flag drain{"drain-timeout", "DURATION", "how long tasks may take to stop after SIGINT/SIGTERM",
                          "10s"};

int agent_sse_decode(invocation& inv)
{
    const std::size_t max =
        inv.args.count("max-event-size", 1, 1UL << 30).value_or(net::sse_parser::default_max_event_bytes);
    const auto read = [] {
        std::string buf(64 * 1024, '\0');
        for (;;) {
            const ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
            return buf;
        }
    };
    const auto write = [](std::string_view line) {
        std::cout.write(line.data(), static_cast<std::streamsize>(line.size()));
    };
    const auto ec = sse_decode(read, write, max);
    std::cout.flush();
    if (ec) {
        std::cerr << inv.program << " sse-decode: " << ec.message() << " (--max-event-size " << max << ")\n";
        return to_int(exit_status::failure);
    }
    return 0;
}

const std::vector<subcommand>& table()
{
    static const std::vector<subcommand> cmds = {
        {{"enroll",
          "Register this node with the gateway and store its identity.",
          {{"server", "URL[,URL...]",
            "gateway base URL (https, or http to loopback); several: replicas without a load balancer, "
            "shuffled once, failed over in order"},
           {.name = "code",
            .value_name = "CODE",
            .help =
                "enrollment code from the operator (better in TETHER_CODE or --code-file: a command line is "
                "readable by every user of the machine)",
            .secret = true},
           {"code-file", "FILE", "file holding the enrollment code (- for stdin)"},
           {"name", "NAME", "node name shown to operators", "the host name"},
           state_dir,
           ca_file,
           {"force", "", "replace an existing enrolled identity"},
           {"skip-if-enrolled", "",
            "exit 0 without enrolling when the state directory already holds an identity (an init step)"}}},
         agent_enroll},
        {{"run",
          "Keep a session, send heartbeats, follow the event stream, apply runtime config.",
          {state_dir,
           ca_file,
           {"heartbeat-interval", "DURATION", "time between heartbeats, clamped to [5s, 1h]", "30s"},
           {"realtime-url", "URL", "event stream base URL candidates, preferred first",
            "the server URL + /v1/events", true},
           {"no-realtime", "", "do not open the event stream (heartbeats still pick up config changes)"},
           {"stream-read-timeout", "DURATION", "silence after which the event stream counts as dead", "45s"},
           {"health-listen", "ADDR",
            "serve /livez, /readyz, /metrics, /status and the config API (/v1/config) on this loopback "
            "address",
            "off"},
           {"config-out", "DIR",
            "publish the applied config as DIR/config.json (atomic swaps, as a ConfigMap volume)", "off"},
           {"config-mode", "MODE", "file mode of DIR/config.json", "0640"},
           {"config-group", "GROUP", "group of DIR/config.json (name or number)", "ours"},
           {"require-config", "", "/readyz fails until a config has been applied"},
           {"local-socket", "PATH", "also serve health, /status and the config API on this Unix socket",
            "off"},
           {"local-socket-group", "GROUP", "members of this group may use --local-socket too (mode 0660)",
            "our uid only (0600)"},
           threads,
           drain}},
         agent_run},
        {{"status",
          "Show the node's identity, session and connection state.",
          {state_dir,
           {"json", "", "print one JSON object"},
           {"health-listen", "ADDR", "where a running agent serves its health endpoint"}}},
         agent_show_status},
        {{"probe",
          "GET a health endpoint on loopback once (a container health check or exec probe): exit 0 on 200.",
          {{"health-listen", "ADDR", "the agent's (or the gateway's) loopback address", "127.0.0.1:9464"},
           {"probe-timeout", "DURATION", "longest wait for the answer", "2s"}},
          "[PATH]  (/livez by default, or /readyz)"},
         agent_probe},
        {{"exec",
          "Run a command with an egress-auth credential broker on fd 3.",
          {{"upstream", "URL", "upstream API base URL (https)", "the node's gateway"},
           {"credential-file", "FILE", "file (mode 0600) holding the upstream credential"},
           {"upstream-timeout", "DURATION", "longest wait for an upstream response", "30s"},
           {"broker-socket", "",
            "also serve the child on a Unix socket in a private directory (TETHER_BROKER_SOCKET): one "
            "connect() per stream instead of the fd 3 handshake"},
           {"on-config-change", "MODE",
            "what the child gets when the node's config changes: signal:SIGHUP (any signal), restart or none",
            "none"},
           {"config-wait", "MIN[:MAX]",
            "act once the config was quiet for MIN, at the latest MAX after a change",
            "0 (at once); MAX 4 x MIN"},
           {"kill-signal", "SIGNAL", "how a restart stops the child", "SIGTERM"},
           {"kill-timeout", "DURATION", "how long a restart waits before SIGKILL", "10s"},
           {"wait-for-config", "", "start the child only once a config is available (last good or fresh)"},
           {"config-out", "DIR", "where the child's TETHER_CONFIG_FILE is rendered",
            "a private temporary directory"},
           {"config-mode", "MODE", "file mode of DIR/config.json", "0640"},
           {"config-group", "GROUP", "group of DIR/config.json (name or number)", "ours"},
           {"config-listen", "ADDR", "loopback address of the child's TETHER_CONFIG_URL", "127.0.0.1:0"},
           state_dir,
           ca_file,
           drain},
          "-- CMD [ARGS...]",
          "The child gets fd 3 (TETHER_CRED_FD), TETHER_API_BASE and TETHER_SENTINEL; it never sees the\n"
          "credential. Its exit status becomes ours; SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to it."},
         agent_exec},
        {{"sse-decode",
          "Decode a raw server-sent event stream from stdin into JSON lines.",
          {{"max-event-size", "BYTES", "largest event accepted", "1048576"}}},
         agent_sse_decode},
    };
    return cmds;
}

}  // namespace

std::span<const subcommand> agent_commands()
{
    return table();
}

std::vector<std::string> secret_variables()
{
    std::vector<std::string> out;
    for (const auto& c : table())
        for (const auto& f : c.spec.flags)
            if (f.secret) out.push_back(cli::env_name(f.name));
    return out;
}

auth::state_paths resolve_state_dir(const invocation& inv)
{
    if (auto v = inv.args.value("state-dir")) {
        if (v->empty()) throw cli::usage_error(inv.args.origin("state-dir") + " is empty");
        return {*v};
    }
    return {auth::default_state_dir(::geteuid() == 0, inv.env("XDG_STATE_HOME"), inv.env("HOME"))};
}

}  // namespace tether::app
