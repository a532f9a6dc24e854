// `tether exec [--upstream URL] [--credential-file F] -- CMD ARGS...`: runs
// CMD with the credential broker on fd 3. The pieces: credentials.hpp (where
// the secret comes from), child_process.hpp (the spawn), tasks/ (the watch,
// the reaper) and auth/broker.hpp.
#include "app/agent/commands.hpp"
#include "app/common/client_flags.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/supervisor.hpp"

#if defined(__linux__)
#include "app/agent/agent_core.hpp"
#include "app/agent/child_process.hpp"
#include "app/agent/config_api.hpp"
#include "app/agent/credentials.hpp"
#include "app/agent/tasks/ca_file_task.hpp"
#include "app/agent/tasks/child_watch_task.hpp"
#include "app/agent/tasks/config_follow_task.hpp"
#include "app/agent/tasks/health_task.hpp"
#include "app/agent/tasks/reaper_task.hpp"
#include "app/agent/tasks/reload_task.hpp"
#include "app/common/listen_address.hpp"
#include "auth/broker.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "base/random_bytes.hpp"
#include "net/tls.hpp"
#include "settings/config_store.hpp"

#include <boost/asio/thread_pool.hpp>

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <system_error>
#endif

namespace tether::app {

#if !defined(__linux__)

int agent_exec(invocation& inv)
{
    inv.log.error("exec.unsupported",
                  {{"reason", "the credential broker needs Linux (SOCK_SEQPACKET, SCM_RIGHTS)"}});
    return to_int(exit_status::usage);
}

#else

namespace {

/// What --on-config-change, --config-wait, --kill-signal, --kill-timeout ask.
struct config_flags {
    reload_policy policy;
    bool wait_for_config = false;
    int kill_signal = SIGTERM;
    std::chrono::milliseconds kill_timeout{10'000};
};

/// nullopt when exec is not asked to hand the node's config to its child.
std::optional<config_flags> parse_config_flags(const invocation& inv)
{
    const bool asked = inv.args.value("on-config-change") || inv.args.enabled("wait-for-config") ||
                       inv.args.value("config-out");
    for (const char* f : {"config-wait", "kill-signal", "kill-timeout", "config-listen"})
        if (!asked && inv.args.value(f))
            throw cli::usage_error(inv.args.origin(f) +
                                   " needs --on-config-change, --wait-for-config or --config-out");
    if (!asked) return std::nullopt;
    config_flags out;
    out.wait_for_config = inv.args.enabled("wait-for-config");
    if (auto v = inv.args.value("on-config-change")) {
        const auto p = parse_reload_mode(*v);
        if (!p)
            throw cli::usage_error(inv.args.origin("on-config-change") +
                                   " must be none, restart or signal:NAME (signal:SIGHUP), not '" + *v + "'");
        out.policy = *p;
    }
    if (auto v = inv.args.value("config-wait")) {
        const auto colon = v->find(':');
        out.policy.wait_min = cli::parse_duration(v->substr(0, colon), inv.args.origin("config-wait"));
        out.policy.wait_max = colon == std::string::npos
                                  ? 4 * out.policy.wait_min
                                  : cli::parse_duration(v->substr(colon + 1), inv.args.origin("config-wait"));
        if (out.policy.wait_max < out.policy.wait_min)
            throw cli::usage_error(inv.args.origin("config-wait") + ": MAX must not be below MIN in '" + *v +
                                   "'");
    }
    if (auto v = inv.args.value("kill-signal")) {
        const auto s = parse_signal(*v);
        if (!s)
            throw cli::usage_error(inv.args.origin("kill-signal") + " must name a signal, not '" + *v + "'");
        out.kill_signal = *s;
    }
    if (auto v = inv.args.duration("kill-timeout")) out.kill_timeout = *v;
    return out;
}

}  // namespace

int agent_exec(invocation& inv)
{
    const auto& argv = inv.args.positionals();
    if (argv.empty()) throw cli::usage_error("exec needs a command: tether exec [flags] -- CMD [ARGS...]");

    std::optional<net::url> upstream;
    if (auto v = inv.args.value("upstream")) upstream = parse_url_flag(*v, inv.args.origin("upstream"));
    // Without --upstream the broker forwards to the node's gateway: a
    // credential meant for another service must not go there.
    if (!upstream && inv.args.value("credential-file"))
        throw cli::usage_error(inv.args.origin("credential-file") +
                               " needs --upstream (or TETHER_UPSTREAM): without it the broker forwards to "
                               "the node's gateway, which must not be sent another service's credential");
    std::optional<secret> file_secret;
    if (auto f = inv.args.value("credential-file"))
        file_secret = read_credential_file(*f, inv.args.origin("credential-file"));
    if (upstream && !file_secret)
        throw cli::usage_error(
            "--upstream needs --credential-file (or TETHER_CREDENTIAL_FILE): the node's own "
            "session token is only ever sent to its gateway");

    const auto paths = resolve_state_dir(inv);
    const auto config = parse_config_flags(inv);
    std::optional<auth::node_state> st;
    secret key;
    std::optional<auth::state_lock> lock;
    bool persist = true;
    const auto load_identity = [&](const char* why) {
        if (st) return;
        try {
            st = auth::load_state(paths);
            key = auth::load_key(paths);
        } catch (const auth::state_error& e) {
            throw fatal_exit(exit_status::usage, std::string(e.what()) + " (" + why + ")");
        }
    };
    const auto take_lock = [&] {
        if (lock || !persist) return;
        try {
            lock.emplace(paths, false);
        } catch (const auth::state_error&) {
            // `tether run` owns the directory: log in and keep the session
            // in memory, follow the config it applies.
            persist = false;
        }
    };
    if (config) {
        load_identity(
            "--on-config-change, --wait-for-config and --config-out follow the node's config and need an "
            "enrolled identity");
        take_lock();
    }
    if (!upstream) {
        load_identity(
            "without --upstream, exec forwards to the node's gateway and needs an enrolled identity");
        // With several gateway URLs the broker forwards to the first: one
        // upstream origin, so the credential goes to exactly one place.
        const auto listed = net::split_server_list(st->server_url);
        auto u = net::parse_url(listed.empty() ? std::string() : listed.front());
        if (!u)
            throw fatal_exit(exit_status::usage, paths.state_file().string() + " serverUrl: " + u.error());
        upstream = *u;
        take_lock();
    } else {
        // The runtime config's allow-list, when the node has one.
        const auto cfg = settings::load_config_file(paths.config_file(), inv.log);
        if (!cfg->allowed_egress_hosts.empty() && !cfg->egress_host_allowed(upstream->host))
            throw cli::usage_error(inv.args.origin("upstream") + ": host " + upstream->host +
                                   " is not in the node's allowedEgressHosts");
    }
    const auto upstream_timeout =
        inv.args.duration("upstream-timeout", cli::at_least(std::chrono::milliseconds(100)))
            .value_or(std::chrono::seconds(30));

    // Orphans the child leaves behind are re-parented to us and reaped.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    const auto sentinel = "tether-sentinel-" + random_token(16);
    const auto [ours, theirs] = auth::make_control_pair();
    // Until watch_child has its handler, a SIGTERM would kill us with the
    // default action and leave the child running without its broker: such
    // signals wait, blocked (the child's own mask is reset at the spawn; the
    // threads started below inherit the block, so only ours takes them).
    const sigset_t forwarded = forwarded_signals();
    ::pthread_sigmask(SIG_BLOCK, &forwarded, nullptr);

    supervisor_options sopts;
    sopts.handle_signals = false;  // forwarded to the child instead; its exit stops us
    if (auto v = inv.args.duration("drain-timeout")) sopts.drain = *v;
    supervisor sup(inv.log, sopts);
    const auto ex = sup.context().get_executor();
    asio::thread_pool blocking(1);
    agent_metrics metrics;

    // The node's config for the child, when asked: rendered for it
    // (TETHER_CONFIG_FILE) and served to it (TETHER_CONFIG_URL), from our
    // own session, or from the `tether run` that holds the state directory.
    std::optional<settings::config_store> store;
    std::unique_ptr<agent_core> core;
    std::unique_ptr<config_follow_task> follow;
    std::optional<config_api> api;
    std::optional<health_task> api_server;
    std::optional<settings::projection_options> out;
    // Ours alone (no --config-out): removed however we leave.
    struct scratch_dir {
        std::filesystem::path path;
        ~scratch_dir()
        {
            std::error_code ignored;
            if (!path.empty()) std::filesystem::remove_all(path, ignored);
        }
    } temp_out;
    std::vector<std::string> extra_env;
    if (config) {
        store.emplace(ex, settings::load_config_file(paths.config_file(), inv.log));
        metrics.config_updated_at = store->updated_at();
        if (lock) {
            core = std::make_unique<agent_core>(agent_core::deps{
                inv, paths, *st, key, ex, blocking.get_executor(), *store, metrics, process_random()});
        } else {
            follow = std::make_unique<config_follow_task>(
                config_follow_task::deps{*store, paths, blocking.get_executor(), metrics, inv.log});
        }
        out = projection_flags(inv, paths.dir);
        if (!out) {
            std::string tmpl = (std::filesystem::temp_directory_path() / "tether-exec-XXXXXX").string();
            if (!::mkdtemp(tmpl.data()))
                throw fatal_exit(exit_status::usage, "cannot create a directory for the child's config in " +
                                                         std::filesystem::temp_directory_path().string());
            temp_out.path = tmpl;
            out.emplace();
            out->dir = temp_out.path;
        }
        api.emplace(*store);
        const auto listen =
            parse_listen(inv, "config-listen", inv.args.value("config-listen").value_or("127.0.0.1:0"));
        if (!listen.endpoint.address().is_loopback())
            throw cli::usage_error(inv.args.origin("config-listen") + " must be a loopback IP address");
        health_sources src{&metrics, {}, {}, st->node_id, &*api, false};
        if (core) {
            src.session_refreshes = [s = &core->session()] {
                return s->refreshes();
            };
            src.session_valid = [s = &core->session()] {
                return s->valid();
            };
        }
        api_server.emplace(health_task::deps{ex, listen.endpoint, src, inv.log});
        const auto ep = api_server->local_endpoint();
        extra_env.push_back("TETHER_CONFIG_FILE=" + (out->dir / "config.json").string());
        extra_env.push_back("TETHER_CONFIG_URL=http://127.0.0.1:" + std::to_string(ep.port()) + "/v1/config");
    }

    // With the core, its context when it has one: the same --ca-file,
    // read once and followed once (by the core's ca-file task).
    auto tls = core && core->tls() && upstream->tls() ? followed_client_tls{core->tls(), std::nullopt, {}}
                                                      : make_followed_client_tls(inv, upstream->tls());

    // Opt-in: a listening socket the child connects to per stream, in a
    // directory only we can enter; its peers are checked like fd 3's senders.
    scratch_dir broker_dir;
    int listen_fd = -1;
    if (inv.args.enabled("broker-socket")) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "tether-broker-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            throw fatal_exit(exit_status::usage, "--broker-socket: cannot create a private directory in " +
                                                     std::filesystem::temp_directory_path().string());
        broker_dir.path = tmpl;
        const auto socket_path = (broker_dir.path / "broker.sock").string();
        try {
            listen_fd = auth::make_broker_listener(socket_path);
        } catch (const std::system_error& e) {
            throw fatal_exit(exit_status::usage, std::string("--broker-socket: ") + e.what());
        }
        extra_env.push_back("TETHER_BROKER_SOCKET=" + socket_path);
    }

    const auto env = child_environment(sentinel, extra_env, secret_variables());
    const auto start_child = [&] {
        const pid_t pid = spawn_child(argv, env, theirs);
        inv.log.info("exec.started",
                     {{"pid", pid}, {"command", argv.front()}, {"upstream", upstream->redacted()}});
        return pid;
    };
    std::optional<int> exit_code;
    pid_t first = -1;
    if (!config) {
        // As always without a config to wait for: the child starts now.
        first = start_child();
        ::close(theirs);
    }

    std::unique_ptr<auth::session_manager> session;
    std::unique_ptr<auth::credential_source> creds;
    if (file_secret) {
        creds = std::make_unique<file_credential>(*file_secret);
    } else if (core) {
        creds = std::make_unique<session_credential>(core->session(), inv.log);
    } else {
        session = std::make_unique<auth::session_manager>(ex, blocking.get_executor(), *upstream, tls.tls,
                                                          paths, *st, key, inv.log);
        session->persist_logins(persist);
        creds = std::make_unique<session_credential>(*session, inv.log);
    }
    auth::broker_options bopts;
    bopts.upstream = *upstream;
    bopts.tls = tls.tls;
    bopts.sentinel = sentinel;
    bopts.upstream_timeout = upstream_timeout;
    bopts.listen_fd = listen_fd;
    // A restarted child is another process: then every process started
    // under us may use the channel (our tree, as before the child's own).
    bopts.child = config ? ::getpid() : first;
    auth::broker brk(bopts, *creds, inv.log);

    std::unique_ptr<reload_task> reload;
    child_watch_task watch({ex, start_child, exit_code, sup, inv.log, first,
                            config && config->wait_for_config ? std::function<awaitable<void>()>([&reload] {
                                return reload->rendered_once();
                            })
                                                              : std::function<awaitable<void>()>(),
                            config ? config->kill_signal : SIGTERM,
                            config ? config->kill_timeout : std::chrono::milliseconds(10'000)});
    if (config) {
        reload = std::make_unique<reload_task>(reload_task::deps{ex, *store, *out, blocking.get_executor(),
                                                                 watch, config->policy, metrics, inv.log});
        try {
            reload->render_now();  // the child starts with what the node had
        } catch (const std::runtime_error& e) {
            throw fatal_exit(exit_status::usage, std::string("--config-out: ") + e.what());
        }
    }
    sup.add("child", [&] { return watch.run(); });
    sup.add("broker", [&brk, fd = ours] { return brk.run(fd); });
    tls.add_task(sup, blocking.get_executor(), inv.log);
    reaper_task reaper({first, inv.log,
                        config ? std::function<pid_t()>([&watch] { return watch.collecting(); })
                               : std::function<pid_t()>()});
    sup.add("reaper", [&reaper] { return reaper.run(); });
    if (config) {
        task_policy restart;
        restart.failure = task_policy::on_failure::restart;
        if (core) core->add_tasks(sup);
        if (follow)
            sup.add(
                "config-follow", [&] { return follow->run(); }, restart);
        sup.add(
            "config-reload", [&] { return reload->run(); }, restart);
        sup.add("config-api", [&] { return api_server->run(); });
    }
    const int code = sup.run();
    api_server.reset();
    blocking.join();
    if (config) ::close(theirs);
    if (exit_code) return *exit_code;
    return code;
}

#endif

}  // namespace tether::app
