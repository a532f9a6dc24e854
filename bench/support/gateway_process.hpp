// A real tether-gateway for a benchmark: started with posix_spawn on a
// loopback port in a private data directory, its admin token read once it
// exists, stopped with SIGTERM and cleaned up when this object goes.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace tether::bench {

class gateway_process {
public:
    /// Starts `binary serve --listen 127.0.0.1:PORT --data-dir DIR` plus
    /// `extra` flags; `name` names the temp directory. nullopt when it did
    /// not start or wrote no admin token within 20 s (a profiler may slow its start).
    static std::optional<gateway_process> start(const std::string& binary, const std::string& name,
                                                const std::vector<std::string>& extra)
    {
        gateway_process g;
        g.dir_ = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
        std::filesystem::create_directories(g.dir_);
        g.port_ = 20000 + ::getpid() % 20000;
        std::vector<std::string> args{binary,       "serve",
                                      "--listen",   "127.0.0.1:" + std::to_string(g.port_),
                                      "--data-dir", (g.dir_ / "gw").string()};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (::posix_spawn(&g.pid_, binary.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
            return std::nullopt;
        const auto token_file = g.dir_ / "gw" / "admin.token";
        for (int i = 0; i < 400 && !std::filesystem::exists(token_file); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the listener is up by now
        std::ifstream tf(token_file);
        tf >> g.token_;
        if (g.token_.empty()) return std::nullopt;
        return g;
    }

    gateway_process(gateway_process&& o) noexcept
        : dir_(std::move(o.dir_)),
          port_(o.port_),
          pid_(std::exchange(o.pid_, -1)),
          token_(std::move(o.token_))
    {
    }
    gateway_process& operator=(gateway_process&&) = delete;
    ~gateway_process() { stop(); }

    [[nodiscard]] int port() const noexcept { return port_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] const std::string& admin_token() const noexcept { return token_; }
    [[nodiscard]] std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    void stop()
    {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

private:
    gateway_process() = default;

    std::filesystem::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
    std::string token_;
};

}  // namespace tether::bench
