// `tether exec [--upstream URL] [--credential-file F] -- CMD ARGS...`: runs
// CMD with the credential broker on fd 3. The pieces: credentials.hpp (where
// the secret comes from), child_process.hpp (the spawn), tasks/ (the watch,
// the reaper) and auth/broker.hpp.
#include "app/agent/commands.hpp"
#include "app/common/client_flags.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/supervisor.hpp"

#if defined(__linux__)
#include "app/agent/child_process.hpp"
#include "app/agent/credentials.hpp"
#include "app/agent/tasks/child_watch_task.hpp"
#include "app/agent/tasks/reaper_task.hpp"
#include "auth/broker.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "base/random_bytes.hpp"
#include "settings/config_store.hpp"

#include <boost/asio/thread_pool.hpp>

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
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

int agent_exec(invocation& inv)
{
    const auto& argv = inv.args.positionals();
    if (argv.empty()) throw cli::usage_error("exec needs a command: tether exec [flags] -- CMD [ARGS...]");

    std::optional<net::url> upstream;
    if (auto v = inv.args.value("upstream")) upstream = parse_url_flag(*v, inv.args.origin("upstream"));
    std::optional<secret> file_secret;
    if (auto f = inv.args.value("credential-file"))
        file_secret = read_credential_file(*f, inv.args.origin("credential-file"));
    if (upstream && !file_secret)
        throw cli::usage_error(
            "--upstream needs --credential-file (or TETHER_CREDENTIAL_FILE): the node's own "
            "session token is only ever sent to its gateway");

    const auto paths = resolve_state_dir(inv);
    std::optional<auth::node_state> st;
    secret key;
    std::optional<auth::state_lock> lock;
    bool persist = true;
    if (!upstream) {
        try {
            st = auth::load_state(paths);
            key = auth::load_key(paths);
        } catch (const auth::state_error& e) {
            throw fatal_exit(exit_status::usage,
                             std::string(e.what()) +
                                 " (without --upstream, exec forwards to the node's gateway "
                                 "and needs an enrolled identity)");
        }
        // With several gateway URLs the broker forwards to the first: one
        // upstream origin, so the credential goes to exactly one place.
        const auto listed = net::split_server_list(st->server_url);
        auto u = net::parse_url(listed.empty() ? std::string() : listed.front());
        if (!u)
            throw fatal_exit(exit_status::usage, paths.state_file().string() + " serverUrl: " + u.error());
        upstream = *u;
        try {
            lock.emplace(paths, false);
        } catch (const auth::state_error&) {
            persist = false;  // `tether run` owns the directory: log in, keep it in memory
        }
    } else {
        // The runtime config's allow-list, when the node has one.
        const auto cfg = settings::load_config_file(paths.config_file(), inv.log);
        if (!cfg->allowed_egress_hosts.empty() && !cfg->egress_host_allowed(upstream->host))
            throw cli::usage_error(inv.args.origin("upstream") + ": host " + upstream->host +
                                   " is not in the node's allowedEgressHosts");
    }
    const auto tls = client_tls(inv, upstream->tls());
    std::chrono::milliseconds upstream_timeout{30'000};
    if (auto v = inv.args.value("upstream-timeout"))
        upstream_timeout = cli::parse_duration(*v, "--upstream-timeout");

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
    const pid_t child = spawn_child(argv, child_environment(sentinel), theirs);
    ::close(theirs);
    inv.log.info("exec.started",
                 {{"pid", child}, {"command", argv.front()}, {"upstream", upstream->redacted()}});

    supervisor_options sopts;
    sopts.handle_signals = false;  // forwarded to the child instead; its exit stops us
    if (auto v = inv.args.value("drain-timeout")) sopts.drain = cli::parse_duration(*v, "--drain-timeout");
    supervisor sup(inv.log, sopts);
    asio::thread_pool blocking(1);
    std::unique_ptr<auth::session_manager> session;
    std::unique_ptr<auth::credential_source> creds;
    if (file_secret) {
        creds = std::make_unique<file_credential>(*file_secret);
    } else {
        session = std::make_unique<auth::session_manager>(
            sup.context().get_executor(), blocking.get_executor(), *upstream, tls, paths, *st, key, inv.log);
        session->persist_logins(persist);
        creds = std::make_unique<session_credential>(*session, inv.log);
    }
    auth::broker_options bopts;
    bopts.upstream = *upstream;
    bopts.tls = tls;
    bopts.sentinel = sentinel;
    bopts.upstream_timeout = upstream_timeout;
    bopts.child = child;
    auth::broker brk(bopts, *creds, inv.log);
    std::optional<int> exit_code;
    child_watch_task watch({child, exit_code, sup, inv.log});
    sup.add("child", [&] { return watch.run(); });
    sup.add("broker", [&brk, fd = ours] { return brk.run(fd); });
    reaper_task reaper({child, inv.log});
    sup.add("reaper", [&reaper] { return reaper.run(); });
    const int code = sup.run();
    blocking.join();
    if (exit_code) return *exit_code;
    return code;
}

#endif

}  // namespace tether::app
