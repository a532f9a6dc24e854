// `tether enroll` and `tether run`.
#include "app/agent_commands.hpp"
#include "app/cli_io.hpp"
#include "app/config_sync.hpp"
#include "app/event_dispatcher.hpp"
#include "app/exit_status.hpp"
#include "app/health_endpoint.hpp"
#include "app/heartbeat_task.hpp"
#include "app/realtime_task.hpp"
#include "app/reaper.hpp"
#include "app/supervisor.hpp"
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

#include <unistd.h>

#include <algorithm>
#include <iostream>

namespace tether::app {

namespace {

namespace json = boost::json;
namespace pj = net::protojson;

net::url server_url(const std::string& text, const std::string& origin)
{
    auto u = net::parse_url(text);
    if (!u) throw cli::usage_error(origin + ": " + u.error());
    return *u;
}

std::shared_ptr<asio::ssl::context> tls_for(bool needed, const invocation& inv)
{
    if (!needed) return nullptr;
    std::optional<std::filesystem::path> ca;
    if (auto v = inv.args.value("ca-file")) ca = *v;
    try {
        return net::make_client_tls(ca);
    } catch (const std::runtime_error& e) {
        throw cli::usage_error(e.what());
    }
}

std::string host_name()
{
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "node";
    return buf;
}

}  // namespace

int agent_enroll(invocation& inv)
{
    const auto server_text = inv.args.value("server");
    const auto code = inv.args.value("code");
    if (!server_text || server_text->empty()) throw cli::usage_error("--server is required");
    if (!code || code->empty()) throw cli::usage_error("--code is required");
    const auto server = server_url(*server_text, inv.args.origin("server"));
    const auto tls = tls_for(server.tls(), inv);
    const auto paths = resolve_state_dir(inv);
    std::error_code ec;
    if (std::filesystem::exists(paths.state_file(), ec) && !inv.args.enabled("force"))
        throw fatal_exit(exit_status::usage, "this node is already enrolled (" + paths.state_file().string() +
                                                 "); pass --force to replace its identity");
    const auth::state_lock lock(paths, true);
    const auto key = auth::generate_key();
    const std::string name = inv.args.value("name").value_or(host_name());

    asio::io_context ioc;
    net::http_client http(ioc.get_executor(), tls);
    net::rpc_client rpc(http, server);
    std::optional<net::rpc_result<json::object>> out;
    const json::object req{{"enrollmentCode", *code},
                           {"nodeName", name},
                           {"publicKey", pj::base64_encode(key.public_raw)},
                           {"capabilities", json::array{"heartbeat", "config", "events"}}};
    run_to_completion(ioc, [&]() -> awaitable<void> {
        const secret none;
        auto r =
            co_await rpc.call(std::string(net::node_service), "Enroll", req, none, std::chrono::seconds(30));
        out = std::move(r);
    }());
    if (!*out) {
        const auto& e = out->error();
        if (e.c == net::connect::code::permission_denied || e.c == net::connect::code::invalid_argument)
            throw fatal_exit(exit_status::usage, "enrollment refused: " + e.message);
        throw fatal_exit(
            exit_status::failure,
            "enrollment failed: " + std::string(net::connect::to_string(e.c)) + ": " + e.message);
    }
    auth::node_state st;
    st.server_url = *server_text;
    st.node_id = pj::value_or(pj::get_string(**out, "nodeId"), "");
    st.org_id = pj::value_or(pj::get_string(**out, "orgId"), "");
    st.api_key = secret(pj::value_or(pj::get_string(**out, "apiKey"), ""));
    st.node_name = name;
    if (st.node_id.empty() || st.api_key.empty())
        throw fatal_exit(exit_status::failure, "Enroll answered without an identity");
    // Key first: a state.json that names a key which is not on disk would be
    // an identity nobody can use.
    auth::save_key(paths, key.private_pem);
    std::filesystem::remove(paths.config_file(), ec);
    auth::save_state(paths, st);

    // Prove the identity works before declaring success.
    asio::io_context ioc2;
    asio::thread_pool blocking(1);
    std::optional<auth::session_result<secret>> login;
    {
        auth::session_manager session(ioc2.get_executor(), blocking.get_executor(), server, tls, paths, st,
                                      key.private_pem, inv.log);
        run_to_completion(ioc2, [&]() -> awaitable<void> {
            login = co_await session.token();
        }());
    }
    blocking.join();
    if (!*login)
        throw fatal_exit(exit_status::failure, "enrolled as " + st.node_id + " but the first login failed: " +
                                                   login->error().error.message);
    std::cout << "enrolled " << st.node_id << " in org " << st.org_id << " (state in " << paths.dir.string()
              << ")\n";
    return 0;
}

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
    const auto server = server_url(st.server_url, paths.state_file().string() + " serverUrl");
    std::vector<net::url> given;
    for (const auto& v : inv.args.values("realtime-url"))
        given.push_back(server_url(v, inv.args.origin("realtime-url")));
    net::sse_options stream;
    stream.candidates = realtime_candidates(server, given);
    // Realtime only speeds updates up (heartbeats catch up on the rest): a
    // proxy's login page or a 4xx is retried slowly, never the end of it.
    stream.never_give_up = true;
    if (auto v = inv.args.value("stream-read-timeout"))
        stream.read_timeout = parse_duration(*v, "--stream-read-timeout");
    const bool any_tls = server.tls() || std::any_of(stream.candidates.begin(), stream.candidates.end(),
                                                     [](const net::url& u) { return u.tls(); });
    const auto tls = tls_for(any_tls, inv);

    supervisor_options opts;
    if (auto v = inv.args.value("threads"))
        opts.threads = static_cast<unsigned>(parse_count(*v, "--threads", 1, 64));
    if (auto v = inv.args.value("drain-timeout")) opts.drain = parse_duration(*v, "--drain-timeout");
    heartbeat_options hb;
    if (auto v = inv.args.value("heartbeat-interval"))
        hb.interval = parse_duration(*v, "--heartbeat-interval");
    hb.interval = clamp_interval(hb.interval);
    hb.agent_version = TETHER_VERSION;
    hb.capabilities = {"heartbeat", "config", "events"};

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
    const auto rand = net::process_random();
    config_sync sync(ex,
                     {store, session, server, tls, paths, blocking.get_executor(), metrics, inv.log, rand});
    event_dispatcher dispatch(ex, dispatcher_options{}, rand, metrics.dispatch, inv.log);
    add_agent_handlers(dispatch, sync, st.node_id, confirm_with_gateway(session, server, tls), inv.log);
    inv.log.info("agent.start", {{"node", st.node_id},
                                 {"org", st.org_id},
                                 {"server", server.redacted()},
                                 {"stream", stream.candidates.front().redacted()},
                                 {"pid", ::getpid()},
                                 {"configUpdatedAt", store.updated_at()}});

    // One task per long-lived activity; each restarts with backoff if it
    // fails, and a fatal_exit from any of them ends the agent.
    task_policy restart;
    restart.failure = task_policy::on_failure::restart;
    sup.add(
        "heartbeat",
        [&] { return run_heartbeats(hb, session, server, tls, store, sync, metrics, inv.log, rand); },
        restart);
    sup.add(
        "config-sync", [&] { return sync.run(); }, restart);
    sup.add(
        "dispatcher", [&] { return dispatch.run(); }, restart);
    if (!inv.args.enabled("no-realtime"))
        sup.add(
            "realtime",
            [&] {
                return run_realtime(stream, session, server, tls, dispatch, sync, metrics, inv.log, rand);
            },
            restart);
        // As a container's PID 1 we inherit every orphan in it: reap them.
#if defined(__linux__)
    if (::getpid() == 1) sup.add("reaper", [&inv] { return reap_orphans(-1, inv.log); });
#endif
    std::unique_ptr<net::http_server> health;
    if (auto v = inv.args.value("health-listen")) {
        const auto listen = parse_listen(inv, "health-listen", *v);
        if (!listen.endpoint.address().is_loopback())
            throw cli::usage_error(inv.args.origin("health-listen") +
                                   " must be a loopback IP address, not '" + *v +
                                   "': health and metrics are not for the network");
        health = std::make_unique<net::http_server>(
            ex, listen.endpoint,
            health_handler({&metrics, [&session] { return session.refreshes(); },
                            [&session] { return session.valid(); }, st.node_id}),
            inv.log);
        const auto ep = health->local_endpoint();
        inv.log.info("health.listening", {{"address", ep.address().to_string()}, {"port", ep.port()}});
        sup.add("health", [&health] { return health->run(); });
    }
    const int code = sup.run();
    health.reset();
    blocking.join();
    return code;
}

}  // namespace tether::app
