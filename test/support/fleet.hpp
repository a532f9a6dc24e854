// Real tether-gateway and tether processes for process-level tests and the
// end-to-end drills: a gateway on a loopback port (restartable on the same
// port and data), enrollment through the real CLIs.
#pragma once

#include "support/child_process.hpp"
#include "support/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace tether::test {

/// A loopback port nobody listens on right now (bind 0, read, close).
inline int free_port()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

/// Milliseconds of the day from a log line's "ts" (UTC ISO 8601 with ms):
/// for intervals measured by the processes themselves.
inline std::int64_t ts_ms(const std::string& line)
{
    const auto at = line.find("\"ts\":\"");
    if (at == std::string::npos) return -1;
    const auto t = line.substr(at + 6 + 11, 12);  // HH:MM:SS.mmm
    return ((std::stoll(t.substr(0, 2)) * 60 + std::stoll(t.substr(3, 2))) * 60 +
            std::stoll(t.substr(6, 2))) *
               1000 +
           std::stoll(t.substr(9, 3));
}

inline constexpr std::int64_t ms_per_day = 86'400'000;

/// Milliseconds of the day now (UTC), to compare with ts_ms.
inline std::int64_t now_ms_of_day()
{
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    return ms % ms_per_day;
}

/// Milliseconds from `from` to `to`, both of the day (UTC), across midnight.
inline std::int64_t ms_between(std::int64_t from, std::int64_t to)
{
    return ((to - from) % ms_per_day + ms_per_day) % ms_per_day;
}

/// The millisecond of the day of a configUpdatedAt: the gateway's wall clock
/// as it took the publish. Latencies count from there, not from the admin
/// CLI's start, which under ASan on a busy machine takes hundreds of ms.
inline std::int64_t ms_of_day(const std::string& config_updated_at)
{
    return std::stoll(config_updated_at) % ms_per_day;
}

/// Log lines of `text` containing `needle`.
inline std::vector<std::string> lines_with(const std::string& text, const std::string& needle)
{
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const auto line = text.substr(start, end - start);
        if (contains(line, needle)) out.push_back(line);
        start = end + 1;
    }
    return out;
}

/// A real tether-gateway on loopback. `port` 0: the OS picks one (and it
/// is kept for restarts).
struct gateway_process {
    temp_dir dir;
    std::unique_ptr<child_process> proc;
    std::string url;
    int port = 0;
    std::vector<std::string> extra;  ///< more serve flags (--database, ...)
    std::filesystem::path token_file = dir.path() / "gw" / "admin.token";

    explicit gateway_process(int fixed_port = 0, std::vector<std::string> serve_flags = {},
                             std::filesystem::path admin_token_file = {})
        : port(fixed_port), extra(std::move(serve_flags))
    {
        if (!admin_token_file.empty()) token_file = std::move(admin_token_file);
        start();
    }

    void start()
    {
        std::vector<std::string> args{"serve",
                                      "--listen",
                                      "127.0.0.1:" + std::to_string(port),
                                      "--data-dir",
                                      (dir.path() / "gw").string(),
                                      "--admin-token-file",
                                      token_file.string(),
                                      "--log-format",
                                      "json"};
        args.insert(args.end(), extra.begin(), extra.end());
        proc = std::make_unique<child_process>(binary("tether-gateway"), args);
        BOOST_TEST_REQUIRE(
            proc->wait_output([](const std::string& e) { return contains(e, "gateway.listening"); },
                              std::chrono::seconds(20)),
            proc->err_when_printed());
        const auto line = lines_with(proc->err(), "gateway.listening").front();
        port = static_cast<int>(boost::json::parse(line).at("port").as_int64());
        url = "http://127.0.0.1:" + std::to_string(port);
    }

    std::vector<std::string> admin(std::vector<std::string> rest) const
    {
        std::vector<std::string> a{"admin", "--server", url, "--admin-token-file", token_file.string()};
        a.insert(a.end(), rest.begin(), rest.end());
        return a;
    }

    std::string code(const std::string& org) const
    {
        const auto r = run(binary("tether-gateway"), admin({"create-enrollment-code", "--org", org}));
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
        return r.out.substr(0, r.out.find('\n'));
    }

    /// PublishConfig through the admin CLI; returns the new configUpdatedAt.
    std::string publish(const std::string& org, const std::string& config) const
    {
        child_process::options in;
        in.stdin_data = config;
        const auto r = run(binary("tether-gateway"), admin({"publish-config", "--org", org, "-"}), in);
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
        return r.out.substr(0, r.out.find('\n'));
    }
};

/// `tether enroll` into `state`; returns the node id.
inline std::string enroll(const gateway_process& gw, const std::filesystem::path& state,
                          const std::string& org = "acme", const std::string& name = "t1",
                          const std::string& server = {})
{
    // The code as a fleet should pass it: never on a command line.
    child_process::options o;
    o.env_extra = {"TETHER_CODE=" + gw.code(org)};
    const auto r = run(binary("tether"),
                       {"enroll", "--server", server.empty() ? gw.url : server, "--state-dir", state.string(),
                        "--name", name, "--log-format", "json"},
                       o);
    BOOST_TEST_REQUIRE(r.status == 0, r.err);
    BOOST_TEST(!contains(r.err, "code_on_command_line"), r.err);
    const auto s = boost::json::parse(read_file(state / "state.json"));
    return std::string(s.at("nodeId").as_string());
}

inline std::unique_ptr<child_process> run_agent(const std::filesystem::path& state,
                                                std::vector<std::string> extra = {})
{
    std::vector<std::string> args{"run", "--state-dir",  state.string(), "--heartbeat-interval",
                                  "5s",  "--log-format", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<child_process>(binary("tether"), args);
}

}  // namespace tether::test
