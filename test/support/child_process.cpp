#include "support/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace tether::test {

temp_dir::temp_dir()
{
    std::string tmpl = (std::filesystem::temp_directory_path() / "tether-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

temp_dir::~temp_dir()
{
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::filesystem::path& p, const std::string& content)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
}

void write_private_file(const std::filesystem::path& p, const std::string& content)
{
    write_file(p, content);
    std::filesystem::permissions(p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

std::filesystem::path binary(const std::string& name)
{
    return std::filesystem::path(TETHER_BIN_DIR) / name;
}

child_process::child_process(std::filesystem::path exe, std::vector<std::string> args, options opts)
{
    const auto out_path = capture_.path() / "stdout";
    const auto err_path = capture_.path() / "stderr";
    const auto in_path = capture_.path() / "stdin";
    write_file(in_path, opts.stdin_data.value_or(""));

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (opts.workdir) posix_spawn_file_actions_addchdir_np(&fa, opts.workdir->c_str());

    std::vector<std::string> argv_s{exe.string()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    // A minimal, predictable environment: the caller's TETHER_* must not leak
    // into a test, but sanitizer settings and PATH must.
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
        const std::string_view kv(*e);
        if (kv.starts_with("PATH=") || kv.starts_with("ASAN_OPTIONS=") || kv.starts_with("UBSAN_OPTIONS=") ||
            kv.starts_with("LSAN_OPTIONS=") || kv.starts_with("HOME="))
            env_s.emplace_back(kv);
    }
    env_s.insert(env_s.end(), opts.env_extra.begin(), opts.env_extra.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    // Its own process group: the destructor's SIGKILL then also takes what
    // it started (a `tether exec` child, a shell pipeline), nothing outlives
    // the test.
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    const int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("posix_spawn " + exe.string() + " failed: " + std::to_string(rc));
}

child_process::~child_process()
{
    if (pid_ > 0 && !status_) {
        // The group while its leader is unreaped: its id cannot be anyone
        // else's yet.
        ::kill(-pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
}

void child_process::signal(int signo) const
{
    ::kill(pid_, signo);
}

std::optional<int> child_process::wait_for(std::chrono::milliseconds cap)
{
    if (status_) return status_;
    const auto deadline = std::chrono::steady_clock::now() + cap;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool child_process::wait_output(const std::function<bool(const std::string&)>& pred,
                                std::chrono::milliseconds cap, bool from_stdout) const
{
    const auto deadline = std::chrono::steady_clock::now() + cap;
    for (;;) {
        if (pred(from_stdout ? out() : err())) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::string child_process::out() const
{
    return read_file(capture_.path() / "stdout");
}

std::string child_process::err() const
{
    return read_file(capture_.path() / "stderr");
}

std::ostream& operator<<(std::ostream& os, const child_process::output_when_printed& o)
{
    return os << (o.from_stdout ? o.proc->out() : o.proc->err());
}

run_result run(const std::filesystem::path& exe, std::vector<std::string> args, child_process::options opts,
               std::chrono::milliseconds cap)
{
    child_process p(exe, std::move(args), std::move(opts));
    const auto st = p.wait_for(cap);
    if (!st) throw std::runtime_error(exe.string() + " did not finish within the cap");
    return {*st, p.out(), p.err()};
}

std::vector<char> child_states(pid_t parent)
{
    std::vector<char> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        std::ifstream stat(e.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 1));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == parent) out.push_back(state);
    }
    return out;
}

pid_t first_child(pid_t parent)
{
    std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
    pid_t c = -1;
    in >> c;
    return c;
}

}  // namespace tether::test
