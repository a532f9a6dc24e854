// A throwaway PostgreSQL 15 for one test: initdb and pg_ctl (as the
// `postgres` user when we are root) in a temp directory, a Unix socket only
// (no TCP listener), fsync off; stopped and removed with this object. Never
// a system-wide server.
#pragma once

#include "support/child_process.hpp"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace tether::test {

class postgres_server {
public:
    /// `data_dir`, when given, holds the databases' files (a small disk
    /// that fills); the write-ahead log and the server's log stay in the
    /// cluster's own temp directory, so a full `data_dir` fails statements
    /// but does not stop the server.
    explicit postgres_server(const std::filesystem::path& data_dir = {})
    {
        const std::filesystem::path bin = "/usr/lib/postgresql/15/bin";
        data_ = data_dir.empty() ? dir_.path() / "data" : data_dir;
        socket_dir_ = dir_.path() / "sock";
        std::filesystem::create_directories(socket_dir_);
        std::filesystem::create_directories(data_);
        if (::geteuid() == 0) {
            // initdb refuses root: the cluster belongs to `postgres`.
            for (const auto& mine : {dir_.path(), data_}) {
                const auto chown = run("/bin/chown", {"-R", "postgres:postgres", mine.string()});
                if (chown.status != 0) throw std::runtime_error("chown for postgres: " + chown.err);
            }
        }
        std::vector<std::string> init_args{"-D",       data_.string(), "-A", "trust", "-U",
                                           "postgres", "--no-sync",    "-E", "UTF8",  "--locale=C"};
        if (!data_dir.empty()) init_args.push_back("--waldir=" + (dir_.path() / "wal").string());
        const auto init = as_owner(bin / "initdb", std::move(init_args));
        if (init.status != 0) throw std::runtime_error("initdb failed: " + init.err + init.out);
        start();
    }
    ~postgres_server() { stop(); }
    postgres_server(const postgres_server&) = delete;
    postgres_server& operator=(const postgres_server&) = delete;

    /// Starts the cluster (again, after stop(): a database outage drill).
    void start()
    {
        if (running_) return;
        const std::filesystem::path bin = "/usr/lib/postgresql/15/bin";
        const auto start =
            as_owner(bin / "pg_ctl", {"-D", data_.string(), "-l", (dir_.path() / "server.log").string(), "-w",
                                      "-t", "30", "-o",
                                      "-k " + socket_dir_.string() +
                                          " -c listen_addresses= -c fsync=off -c synchronous_commit=off"
                                          " -c full_page_writes=off",
                                      "start"});
        if (start.status != 0) throw std::runtime_error("pg_ctl start failed: " + start.err + start.out);
        running_ = true;
    }

    /// libpq connection string for `database`.
    [[nodiscard]] std::string conninfo(const std::string& database = "postgres") const
    {
        return "host=" + socket_dir_.string() + " user=postgres dbname=" + database;
    }

    /// A new empty database (t1, t2, ...): a test case's own, on a cluster
    /// the executable shares (a cluster per case costs a second each).
    std::string new_database()
    {
        const std::string name = "t" + std::to_string(++databases_);
        const auto made = psql("postgres", "CREATE DATABASE " + name);
        if (made.status != 0) throw std::runtime_error("CREATE DATABASE failed: " + made.err);
        return name;
    }

    /// The rows of every table of `database`, as pg_dump prints them.
    [[nodiscard]] std::string dump(const std::string& database) const
    {
        const auto d = run("/usr/lib/postgresql/15/bin/pg_dump",
                           {"-h", socket_dir_.string(), "-U", "postgres", "--data-only", "-d", database});
        if (d.status != 0) throw std::runtime_error("pg_dump failed: " + d.err);
        return d.out;
    }

    [[nodiscard]] run_result psql(const std::string& database, const std::string& sql) const
    {
        return run("/usr/lib/postgresql/15/bin/psql", {"-h", socket_dir_.string(), "-U", "postgres", "-d",
                                                       database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql});
    }

    /// `pg_ctl restart -m fast`: sessions are ended, the server is back in
    /// a moment (a database restart drill).
    void restart()
    {
        const auto r = as_owner("/usr/lib/postgresql/15/bin/pg_ctl",
                                {"-D", data_.string(), "-l", (dir_.path() / "server.log").string(), "-m",
                                 "fast", "-w", "-t", "30", "restart"});
        if (r.status != 0) throw std::runtime_error("pg_ctl restart failed: " + r.err + r.out);
    }

    /// `immediate` is a crash: with this cluster's synchronous_commit=off
    /// the last commits may be gone after it. `fast` ends sessions and keeps
    /// every commit (a database restart, not a crash).
    void stop(const std::string& mode = "immediate")
    {
        if (!running_) return;
        running_ = false;
        (void)as_owner("/usr/lib/postgresql/15/bin/pg_ctl", {"-D", data_.string(), "-m", mode, "-w", "stop"});
    }

private:
    static run_result as_owner(const std::filesystem::path& exe, std::vector<std::string> args)
    {
        if (::geteuid() != 0) return run(exe, std::move(args));
        args.insert(args.begin(), {"-u", "postgres", "--", exe.string()});
        return run("/usr/sbin/runuser", std::move(args));
    }

    temp_dir dir_;
    int databases_ = 0;
    std::filesystem::path data_;
    std::filesystem::path socket_dir_;
    bool running_ = false;
};

/// The executable's one cluster, started on first use and stopped at exit.
inline postgres_server& shared_postgres()
{
    static postgres_server server;
    return server;
}

}  // namespace tether::test
