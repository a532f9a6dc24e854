#include "app/agent/child_process.hpp"

#include "app/common/exit_status.hpp"
#include "auth/broker_rewrite.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <system_error>

extern char** environ;

namespace tether::app {

std::vector<std::string> child_environment(const std::string& sentinel, const std::vector<std::string>& extra,
                                           const std::vector<std::string>& withheld)
{
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view kv(*e);
        if (kv.starts_with("TETHER_CREDENTIAL") || kv.starts_with("TETHER_CRED_FD=") ||
            kv.starts_with("TETHER_API_BASE=") || kv.starts_with("TETHER_SENTINEL=") ||
            kv.starts_with("TETHER_CONFIG_FILE=") || kv.starts_with("TETHER_CONFIG_URL="))
            continue;
        // A container's one environment often serves `tether enroll
        // --skip-if-enrolled && tether exec -- CMD`: an enrollment code
        // (shared by a fleet, valid for days) must not reach the workload.
        const auto name = kv.substr(0, kv.find('='));
        if (std::find(withheld.begin(), withheld.end(), name) != withheld.end()) continue;
        env.emplace_back(kv);
    }
    env.push_back("TETHER_CRED_FD=3");
    env.push_back("TETHER_API_BASE=" + std::string(auth::broker_api_base));
    env.push_back("TETHER_SENTINEL=" + sentinel);
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

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

sigset_t forwarded_signals()
{
    sigset_t s;
    ::sigemptyset(&s);
    for (const int signo : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaddset(&s, signo);
    return s;
}

}  // namespace tether::app
