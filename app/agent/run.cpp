// `tether run`: the supervisor and the agent's long-lived tasks.
#include "app/agent/commands.hpp"
#include "app/agent/config_api.hpp"
#include "app/agent/event_handlers.hpp"
#include "app/agent/tasks/config_render_task.hpp"
#include "app/agent/tasks/config_sync_task.hpp"
#include "app/agent/tasks/dispatch_task.hpp"
#include "app/agent/tasks/health_task.hpp"
#include "app/agent/tasks/heartbeat_task.hpp"
#include "app/agent/tasks/realtime_task.hpp"
#include "app/agent/tasks/reaper_task.hpp"
#include "app/common/client_flags.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/listen_address.hpp"
#include "app/common/one_shot.hpp"
#include "app/common/supervisor.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "net/host_port.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "net/tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

namespace tether::app {

namespace {

namespace json = boost::json;
namespace pj = net::protojson;

/// --config-out, --config-mode, --config-group; nullopt without --config-out.
std::optional<settings::projection_options> projection_flags(const invocation& inv,
                                                             const std::filesystem::path& state_dir)
{
    const auto dir = inv.args.value("config-out");
    for (const char* f : {"config-mode", "config-group"})
        if (!dir && inv.args.value(f)) throw cli::usage_error(inv.args.origin(f) + " needs --config-out DIR");
    if (!dir) return std::nullopt;
    settings::projection_options o;
    if (dir->empty()) throw cli::usage_error(inv.args.origin("config-out") + " must name a directory");
    o.dir = std::filesystem::absolute(*dir);
    std::error_code ec;
    if (std::filesystem::equivalent(o.dir, state_dir, ec))
        throw cli::usage_error(inv.args.origin("config-out") +
                               " must not be the state directory (it is private to the agent)");
    if (auto m = inv.args.value("config-mode")) {
        const auto mode = settings::parse_file_mode(*m);
        if (!mode)
            throw cli::usage_error(inv.args.origin("config-mode") +
                                   " must be an octal mode like 0640, not '" + *m + "'");
        o.mode = *mode;
    }
    if (auto g = inv.args.value("config-group")) {
        if (!g->empty() && g->find_first_not_of("0123456789") == std::string::npos) {
            o.group = static_cast<gid_t>(std::stoul(*g));
        } else {
            group gr{};
            group* found = nullptr;
            std::vector<char> buf(16384);
            if (::getgrnam_r(g->c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
                throw cli::usage_error(inv.args.origin("config-group") + ": no group named '" + *g + "'");
            o.group = found->gr_gid;
        }
    }
    return o;
}

}  // namespace

int agent_run(invocation& inv)
{
    const auto paths = resolve_state_dir(inv);
    std::error_code ec;
    if (!std::filesystem::exists(paths.state_file(), ec)) {
        throw fatal_exit(
            exit_status::usage,
            "no enrolled identity: " + paths.state_file().string() +
                " does not exist. Enroll this node first: tether enroll --server URL --code CODE" +
                (inv.args.has("state-dir") ? " --state-dir " + paths.dir.string() : ""));
    }
    auth::node_state st;
    try {
        st = auth::load_state(paths);
    } catch (const auth::state_error& e) {
        throw fatal_exit(exit_status::usage, e.what());
    }
    // The URL policy applies before any request.
    const auto rand = process_random();
    const auto server = parse_server_list(st.server_url, paths.state_file().string() + " serverUrl", rand);
    std::vector<net::url> given;
    for (const auto& v : inv.args.values("realtime-url"))
        given.push_back(parse_url_flag(v, inv.args.origin("realtime-url")));
    net::sse_options stream;
    stream.candidates = realtime_candidates(server, given);
    // Several --server URLs and no --realtime-url: the streams are the
    // replicas', equals in the shuffled order; a dead one is left at once.
    stream.peers = given.empty() && server.size() > 1;
    // Realtime only speeds updates up (heartbeats catch up on the rest): a
    // proxy's login page or a 4xx is retried slowly, never the end of it.
    stream.never_give_up = true;
    if (auto v = inv.args.value("stream-read-timeout"))
        stream.read_timeout = cli::parse_duration(*v, "--stream-read-timeout");
    const bool tls_needed = any_tls(server) || std::any_of(stream.candidates.begin(), stream.candidates.end(),
                                                           [](const net::url& u) { return u.tls(); });
    const auto tls = client_tls(inv, tls_needed);

    supervisor_options opts;
    if (auto v = inv.args.value("threads"))
        opts.threads = static_cast<unsigned>(cli::parse_count(*v, "--threads", 1, 64));
    if (auto v = inv.args.value("drain-timeout")) opts.drain = cli::parse_duration(*v, "--drain-timeout");
    const auto projection = projection_flags(inv, paths.dir);
    std::chrono::milliseconds beat_every{30'000};
    if (auto v = inv.args.value("heartbeat-interval"))
        beat_every = cli::parse_duration(*v, "--heartbeat-interval");

    // Signals are handled from here on: nothing below can block unstoppably.
    supervisor sup(inv.log, opts);
    std::optional<auth::state_lock> lock;
    secret key;
    try {
        lock.emplace(paths, false);
        key = auth::load_key(paths);
    } catch (const auth::state_error& e) {
        throw fatal_exit(exit_status::usage, e.what());
    }
    const auto ex = sup.context().get_executor();
    asio::thread_pool blocking(1);
    agent_metrics metrics;
    // The last good config is enforced from the first moment, gateway or not.
    settings::config_store store(ex, settings::load_config_file(paths.config_file(), inv.log));
    metrics.config_updated_at = store.updated_at();
    auth::session_manager session(ex, blocking.get_executor(), server, tls, paths, st, key, inv.log);
    config_sync_task sync(
        {ex, store, session, server, tls, paths, blocking.get_executor(), metrics, inv.log, rand});
    dispatch_task dispatch({ex, metrics.dispatch, inv.log, rand});
    add_agent_handlers(dispatch, sync, st.node_id, confirm_with_gateway(session, server, tls), inv.log);
    heartbeat_task heartbeat({session,
                              server,
                              tls,
                              store,
                              sync,
                              metrics,
                              inv.log,
                              rand,
                              beat_every,
                              TETHER_VERSION,
                              {"heartbeat", "config", "events"}});
    realtime_task realtime({stream, session, server, tls, dispatch, sync, metrics, inv.log, rand});
    reaper_task reaper({-1, inv.log});
    std::optional<config_render_task> render;
    if (projection) {
        render.emplace(
            config_render_task::deps{store, *projection, blocking.get_executor(), metrics, inv.log});
        try {
            render->render_now();
        } catch (const std::runtime_error& e) {
            throw fatal_exit(exit_status::usage, std::string("--config-out: ") + e.what());
        }
    }
    const config_api local_config(store);
    std::optional<health_task> health;
    if (auto v = inv.args.value("health-listen")) {
        const auto listen = parse_listen(inv, "health-listen", *v);
        if (!listen.endpoint.address().is_loopback())
            throw cli::usage_error(inv.args.origin("health-listen") +
                                   " must be a loopback IP address, not '" + *v +
                                   "': health and metrics are not for the network");
        health.emplace(health_task::deps{
            ex,
            listen.endpoint,
            {&metrics, [&session] { return session.refreshes(); }, [&session] { return session.valid(); },
             st.node_id, &local_config, inv.args.enabled("require-config")},
            inv.log});
        const auto ep = health->local_endpoint();
        inv.log.info("health.listening", {{"address", ep.address().to_string()}, {"port", ep.port()}});
    }
    inv.log.info("agent.start", {{"node", st.node_id},
                                 {"org", st.org_id},
                                 {"server", server.current().redacted()},
                                 {"servers", server.size()},
                                 {"stream", stream.candidates.front().redacted()},
                                 {"pid", ::getpid()},
                                 {"configUpdatedAt", store.updated_at()}});

    // One task per long-lived activity, each one `sup.add` of its run():
    // the long-lived ones restart with backoff if they fail, and a
    // fatal_exit from any of them ends the agent.
    task_policy restart;
    restart.failure = task_policy::on_failure::restart;
    sup.add(
        "heartbeat", [&] { return heartbeat.run(); }, restart);
    sup.add(
        "config-sync", [&] { return sync.run(); }, restart);
    sup.add(
        "dispatcher", [&] { return dispatch.run(); }, restart);
    if (!inv.args.enabled("no-realtime"))
        sup.add(
            "realtime", [&] { return realtime.run(); }, restart);
#if defined(__linux__)
    // As a container's PID 1 we inherit every orphan in it: reap them.
    if (::getpid() == 1) sup.add("reaper", [&] { return reaper.run(); });
#endif
    if (health) sup.add("health", [&] { return health->run(); });
    if (render)
        sup.add(
            "config-render", [&] { return render->run(); }, restart);
    const int code = sup.run();
    health.reset();
    blocking.join();
    return code;
}

}  // namespace tether::app
