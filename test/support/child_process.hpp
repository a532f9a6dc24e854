// Real child processes for tests: spawn a binary, capture its output in
// files, wait with a cap, send signals.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tether::test {

/// A scratch directory removed at destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content);
/// write_file, then 0600: what tether refuses when others may read it
/// (state, credential and token files).
void write_private_file(const std::filesystem::path& p, const std::string& content);

/// Path of a built binary (`tether`, `tether-gateway`).
std::filesystem::path binary(const std::string& name);

class child_process {
public:
    struct options {
        std::vector<std::string> env_extra;  ///< "NAME=value", added to a minimal environment
        std::optional<std::string> stdin_data;
        std::optional<std::filesystem::path> workdir;
    };

    child_process(std::filesystem::path exe, std::vector<std::string> args, options opts);
    child_process(std::filesystem::path exe, std::vector<std::string> args)
        : child_process(std::move(exe), std::move(args), options{})
    {
    }
    ~child_process();  ///< kills (SIGKILL) and reaps a child still running

    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    void signal(int signo) const;

    /// Exit status (0-255), or 128+signal; nullopt if still running at the cap.
    std::optional<int> wait_for(std::chrono::milliseconds cap);

    /// Polls the captured stderr (or stdout) until `pred` holds or the cap passes.
    bool wait_output(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds cap,
                     bool from_stdout = false) const;

    [[nodiscard]] std::string out() const;
    [[nodiscard]] std::string err() const;

    /// What stdout / stderr hold when a failed check prints its message.
    /// For a check's message, not out() / err(): Boost.Test evaluates the
    /// message before the condition (GCC takes the arguments right to left),
    /// so `BOOST_TEST(p.wait_output(...), p.err())` would show the output as
    /// it was before the wait, which looks like a process gone silent.
    struct output_when_printed {
        const child_process* proc;
        bool from_stdout;
    };
    [[nodiscard]] output_when_printed out_when_printed() const noexcept { return {this, true}; }
    [[nodiscard]] output_when_printed err_when_printed() const noexcept { return {this, false}; }

private:
    temp_dir capture_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

std::ostream& operator<<(std::ostream& os, const child_process::output_when_printed& o);

/// Runs to completion (with a cap) and returns {status, stdout, stderr}.
/// States ('R', 'S', 'Z', ...) of the processes whose parent is `parent`,
/// read from /proc.
std::vector<char> child_states(pid_t parent);

/// The first child of `parent` (e.g. the process `unshare --fork` started).
pid_t first_child(pid_t parent);

struct run_result {
    int status = -1;
    std::string out;
    std::string err;
};
run_result run(const std::filesystem::path& exe, std::vector<std::string> args,
               child_process::options opts = {}, std::chrono::milliseconds cap = std::chrono::seconds(30));

}  // namespace tether::test
