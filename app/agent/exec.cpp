// `tether exec [--upstream URL] [--credential-file F] -- CMD ARGS...`: runs
// CMD with the credential broker on fd 3.
#include "app/agent/commands.hpp"
#include "app/common/client_flags.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/supervisor.hpp"

#if defined(__linux__)
#include "app/agent/tasks/reaper_task.hpp"
#include "auth/broker.hpp"
#include "auth/broker_rewrite.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "base/random_bytes.hpp"
#include "net/tls.hpp"
#include "settings/config_store.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

extern char** environ;
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

/// The credential file: ours, 0600 (or stricter), one line.
secret read_credential_file(const std::string& path, const std::string& origin)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw cli::usage_error(origin + ": cannot read " + path + ": " +
                               std::generic_category().message(errno));
    if (!S_ISREG(st.st_mode)) throw cli::usage_error(origin + ": " + path + " is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw cli::usage_error(origin + ": " + path + " is readable by group or others (mode " + mode +
                               "); a credential file must be private: chmod 600 " + path);
    }
    if (st.st_uid != ::geteuid()) throw cli::usage_error(origin + ": " + path + " belongs to another user");
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
    if (text.empty()) throw cli::usage_error(origin + ": " + path + " is empty");
    if (text.find_first_of("\r\n") != std::string::npos)
        throw cli::usage_error(origin + ": " + path + " holds more than one line");
    return secret(std::move(text));
}

class file_credential final : public auth::credential_source {
public:
    explicit file_credential(secret s) : s_(std::move(s)) {}
    awaitable<result<secret>> get() override
    {
        result<secret> out = s_;
        co_return out;
    }
    awaitable<result<secret>> refresh(secret) override
    {
        result<secret> out = s_;
        co_return out;
    }

private:
    secret s_;
};

/// The node's session token. A failed login keeps its Connect code in the
/// error the broker logs, and its message in a log line of its own.
class session_credential final : public auth::credential_source {
public:
    session_credential(auth::session_manager& s, const log::logger& log) : s_(s), log_(log) {}
    awaitable<result<secret>> get() override
    {
        auto r = co_await s_.token();
        result<secret> out = r ? result<secret>(*r) : failed(r.error());
        co_return out;
    }
    awaitable<result<secret>> refresh(secret rejected) override
    {
        auto r = co_await s_.refresh(std::move(rejected));
        result<secret> out = r ? result<secret>(*r) : failed(r.error());
        co_return out;
    }

private:
    result<secret> failed(const auth::session_error& e) const
    {
        log_.warn("broker.login_failed", {{"code", net::connect::to_string(e.error.c)},
                                          {"message", e.error.message},
                                          {"permanent", e.permanent}});
        return net::connect::make_error_code(e.error.c);
    }

    auth::session_manager& s_;
    const log::logger& log_;
};

/// The child's environment: ours, minus anything that names a credential
/// source, plus the broker's three variables.
std::vector<std::string> child_environment(const std::string& sentinel)
{
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view kv(*e);
        if (kv.starts_with("TETHER_CREDENTIAL") || kv.starts_with("TETHER_CRED_FD=") ||
            kv.starts_with("TETHER_API_BASE=") || kv.starts_with("TETHER_SENTINEL="))
            continue;
        env.emplace_back(kv);
    }
    env.push_back("TETHER_CRED_FD=3");
    env.push_back("TETHER_API_BASE=" + std::string(auth::broker_api_base));
    env.push_back("TETHER_SENTINEL=" + sentinel);
    return env;
}

/// posix_spawn with `channel` as fd 3 and nothing else above 2.
pid_t spawn_child(const std::vector<std::string>& argv, const std::vector<std::string>& env, int channel)
{
    // dup2 onto itself would keep close-on-exec: move the fd out of the way.
    if (channel == 3) {
        channel = ::fcntl(3, F_DUPFD_CLOEXEC, 10);
        if (channel < 0) throw std::system_error(errno, std::generic_category(), "fcntl(F_DUPFD_CLOEXEC)");
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_adddup2(&fa, channel, 3);
    // Asio 1.81 opens its epoll/eventfd/signal pipe without close-on-exec.
    ::posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) sigaddset(&defaults, s);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&attr);
    // 127 and 126, as shells, env(1) and sudo(8) report them.
    if (rc == ENOENT) throw fatal_exit(static_cast<exit_status>(127), "command not found: " + argv[0]);
    if (rc != 0)
        throw fatal_exit(static_cast<exit_status>(126),
                         "cannot run " + argv[0] + ": " + std::generic_category().message(rc));
    return pid;
}

int status_code(int wstatus)
{
    if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
    return 1;
}

/// The signals `tether exec` passes on to its child.
sigset_t forwarded_signals()
{
    sigset_t s;
    ::sigemptyset(&s);
    for (const int signo : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaddset(&s, signo);
    return s;
}

/// Waits for the child (pidfd), forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT.
awaitable<void> watch_child(pid_t pid, std::optional<int>& exit_code, supervisor& sup, const log::logger& log)
{
    const auto ex = co_await asio::this_coro::executor;
    const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0) throw std::system_error(errno, std::generic_category(), "pidfd_open");
    asio::posix::stream_descriptor exited(ex, pfd);
    asio::signal_set signals(ex, SIGINT, SIGTERM);
    signals.add(SIGHUP);
    signals.add(SIGQUIT);
    std::function<void(error_code, int)> forward = [&](error_code ec, int signo) {
        if (ec) return;
        log.info("exec.forward_signal", {{"signal", signo}, {"pid", pid}});
        ::kill(pid, signo);
        signals.async_wait(forward);
    };
    signals.async_wait(forward);
    // Blocked since before the spawn; one that came meanwhile is pending and
    // arrives now, at the handler above.
    const sigset_t forwarded = forwarded_signals();
    ::pthread_sigmask(SIG_UNBLOCK, &forwarded, nullptr);
    auto [ec] = co_await exited.async_wait(asio::posix::stream_descriptor::wait_read, nothrow);
    signals.cancel();
    if (ec) {
        // Cancelled (drain): the child outlives us only if it ignores this.
        ::kill(pid, SIGTERM);
        co_return;
    }
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {}
    exit_code = status_code(wstatus);
    reap_exited(-1);
    log.info("exec.child_exited", {{"pid", pid}, {"status", *exit_code}});
    sup.request_stop(exit_status::ok, "the child exited");
}

}  // namespace

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
        auto u = net::parse_url(st->server_url);
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
    sup.add("child", [&] { return watch_child(child, exit_code, sup, inv.log); });
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
