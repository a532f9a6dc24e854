// `tether run`: the supervisor and the agent's long-lived tasks.
#include "app/agent/agent_core.hpp"
#include "app/agent/commands.hpp"
#include "app/agent/config_api.hpp"
#include "app/agent/tasks/config_render_task.hpp"
#include "app/agent/tasks/health_task.hpp"
#include "app/agent/tasks/local_socket_task.hpp"
#include "app/agent/tasks/reaper_task.hpp"
#include "app/common/client_flags.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/listen_address.hpp"
#include "app/common/one_shot.hpp"
#include "app/common/supervisor.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "net/http_server.hpp"

#include <boost/asio/thread_pool.hpp>

#include <unistd.h>

#include <iostream>

namespace tether::app {

int agent_run(invocation& inv)
{
    const auto paths = resolve_state_dir(inv);
    std::error_code ec;
    if (!std::filesystem::exists(paths.state_file(), ec)) {
        throw fatal_exit(
            exit_status::usage,
            "no enrolled identity: " + paths.state_file().string() +
                " does not exist. Enroll this node first: tether enroll --server URL --code-file FILE" +
                (inv.args.has("state-dir") ? " --state-dir " + paths.dir.string() : ""));
    }
    auth::node_state st;
    try {
        st = auth::load_state(paths);
    } catch (const auth::state_error& e) {
        throw fatal_exit(exit_status::usage, e.what());
    }
    supervisor_options opts;
    if (auto v = inv.args.count("threads", 1, 64)) opts.threads = static_cast<unsigned>(*v);
    if (auto v = inv.args.duration("drain-timeout")) opts.drain = *v;
    const auto projection = projection_flags(inv, paths.dir);

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
    const auto rand = process_random();
    asio::thread_pool blocking(1);
    agent_metrics metrics;
    // The last good config is enforced from the first moment, gateway or not.
    settings::config_store store(ex, settings::load_config_file(paths.config_file(), inv.log));
    metrics.config_updated_at = store.updated_at();
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
    // With --config-out a version counts as applied once the workloads'
    // file holds it: a node that cannot write it stays behind in the
    // gateway's rollout, where a deployment gate sees it.
    std::function<std::int64_t()> applied;
    if (render)
        applied = [&render] {
            return render->rendered();
        };
    agent_core core(
        {inv, paths, st, std::move(key), ex, blocking.get_executor(), store, metrics, rand, applied});
    auto& session = core.session();
    reaper_task reaper({-1, inv.log});
    const config_api local_config(store);
    const health_sources sources{&metrics,
                                 [&session] { return session.refreshes(); },
                                 [&session] { return session.valid(); },
                                 st.node_id,
                                 &local_config,
                                 inv.args.enabled("require-config")};
    std::optional<health_task> health;
    if (auto v = inv.args.value("health-listen")) {
        const auto listen = parse_listen(inv, "health-listen", *v);
        if (!listen.endpoint.address().is_loopback())
            throw cli::usage_error(inv.args.origin("health-listen") +
                                   " must be a loopback IP address, not '" + *v +
                                   "': health and metrics are not for the network");
        health.emplace(health_task::deps{ex, listen.endpoint, sources, inv.log});
        const auto ep = health->local_endpoint();
        inv.log.info("health.listening", {{"address", ep.address().to_string()}, {"port", ep.port()}});
    }
    std::optional<local_socket_task> local;
    if (auto v = inv.args.value("local-socket")) {
        try {
            local.emplace(local_socket_task::deps{ex, *v, group_flag(inv, "local-socket-group"),
                                                  health_handler(sources), inv.log});
        } catch (const std::runtime_error& e) {
            throw fatal_exit(exit_status::usage, inv.args.origin("local-socket") + ": " + e.what());
        }
        inv.log.info("local.listening", {{"path", *v}});
    } else if (inv.args.value("local-socket-group")) {
        throw cli::usage_error(inv.args.origin("local-socket-group") + " needs --local-socket PATH");
    }
    inv.log.info("agent.start", {{"node", st.node_id},
                                 {"org", st.org_id},
                                 {"server", core.server().current().redacted()},
                                 {"servers", core.server().size()},
                                 {"stream", core.stream().candidates.front().redacted()},
                                 {"pid", ::getpid()},
                                 {"configUpdatedAt", store.updated_at()}});

    // One task per long-lived activity, each one `sup.add` of its run():
    // the long-lived ones restart with backoff if they fail, and a
    // fatal_exit from any of them ends the agent.
    core.add_tasks(sup);
#if defined(__linux__)
    // As a container's PID 1 we inherit every orphan in it: reap them.
    if (::getpid() == 1) sup.add("reaper", [&] { return reaper.run(); });
#endif
    if (health) sup.add("health", [&] { return health->run(); });
    if (local) sup.add("local-socket", [&] { return local->run(); });
    if (render) {
        task_policy restart;
        restart.failure = task_policy::on_failure::restart;
        sup.add(
            "config-render", [&] { return render->run(); }, restart);
    }
    const int code = sup.run();
    health.reset();
    local.reset();
    blocking.join();
    return code;
}

}  // namespace tether::app
