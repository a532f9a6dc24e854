// Hostile requests against the real listeners (issue 13): the gateway and
// the agent's health endpoint must refuse them, close that connection and go
// on serving everyone else. (The broker's streams: broker_test.)
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/raw_http.hpp"
#include "support/test_pki.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace t = tether::test;
using t::contains;

namespace {

const std::string big_trailer_value =
    "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " +
    std::string(65534, 'a') + "\r\n\r\n";
const std::string big_trailer_name =
    "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" +
    std::string(65534, 'a') + ": v\r\n\r\n";

/// The gateway's admin token as its file holds it, without the line end.
std::string admin_token(const t::gateway_process& gw)
{
    auto token = t::read_file(gw.dir.path() / "gw" / "admin.token");
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    return token;
}

std::string status_line(const std::string& answer)
{
    return answer.substr(0, answer.find("\r\n"));
}

/// The refusals every listener owes, each on its own connection.
void refuses_hostile_framing(int port, const std::string& ok_request, const std::string& ok_status)
{
    for (const auto& attack : {big_trailer_value, big_trailer_name}) {
        const auto answer = t::raw_exchange(port, attack);
        BOOST_TEST(status_line(answer) == "HTTP/1.1 431 Request Header Fields Too Large");
    }
    for (const std::string te : {"chunked, identity", "gzip", "xchunked"}) {
        // Taken as an empty body, the rest would be read as a second request.
        const auto answer =
            t::raw_exchange(port, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: " + te +
                                      "\r\n\r\n0\r\n\r\n" + ok_request);
        BOOST_TEST(status_line(answer) == "HTTP/1.1 400 Bad Request", te);
        BOOST_TEST(t::count_responses(answer) == 1, te + ":\n" + answer);
    }
    BOOST_TEST(status_line(t::raw_exchange(port, "GET / HTTP/1.1\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
    BOOST_TEST(
        status_line(t::raw_exchange(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n 2\r\n\r\n")) ==
        "HTTP/1.1 400 Bad Request");
    // Still serving.
    BOOST_TEST(status_line(t::raw_exchange(port, ok_request)) == ok_status);
}

/// A node enrolled into `dir` and `tether run` with its health listener up;
/// the agent and the listener's port.
std::pair<std::unique_ptr<t::child_process>, int> agent_with_health(const t::gateway_process& gw,
                                                                    const t::temp_dir& dir)
{
    const auto state = dir.path() / "node";
    t::enroll(gw, state);
    const int port = t::free_port();
    auto agent = t::run_agent(state, {"--health-listen", "127.0.0.1:" + std::to_string(port)});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "health.listening"); }, 20s),
        agent->err_when_printed());
    return {std::move(agent), port};
}

/// Local TCP port of each socket inode in `pid`'s network namespace.
std::map<std::string, int> tcp_local_ports(int pid)
{
    std::map<std::string, int> ports;
    for (const char* table : {"tcp", "tcp6"}) {
        std::istringstream in(t::read_file("/proc/" + std::to_string(pid) + "/net/" + table));
        std::string line;
        std::getline(in, line);  // the heading
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
            if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
                  timeout >> inode))
                continue;
            const auto colon = local.rfind(':');
            if (colon == std::string::npos) continue;
            ports[inode] = std::stoi(local.substr(colon + 1), nullptr, 16);
        }
    }
    return ports;
}

/// Descriptors the process `pid` holds now, less its TCP sockets bound to a
/// port other than `port`: those are its own outbound connections (the
/// agent's heartbeats and event stream), which come and go on their own
/// schedule and are not what a storm against `port` could leak.
std::size_t open_descriptors(int pid, int port)
{
    const auto ports = tcp_local_ports(pid);
    std::error_code ec;
    std::size_t n = 0;
    for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && it != end; it.increment(ec)) {
        std::error_code link_ec;
        const auto target = std::filesystem::read_symlink(it->path(), link_ec).string();
        if (!link_ec && target.starts_with("socket:[") && target.ends_with("]")) {
            const auto found = ports.find(target.substr(8, target.size() - 9));
            if (found != ports.end() && found->second != port) continue;
        }
        ++n;
    }
    return n;
}

/// Closes with a reset (SO_LINGER 0) instead of a FIN: a peer that vanished.
void reset(int fd)
{
    const linger l{1, 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

/// Connections that end every way a client can end one, `rounds` times.
/// Some of each round are open at the same time; all are closed (by this
/// side) when it returns.
void connection_storm(int port, const std::string& stream_request, int rounds)
{
    for (int round = 0; round < rounds; ++round) {
        std::vector<int> open;
        const auto connect = [&] {
            const int fd = t::connect_loopback(port);
            BOOST_TEST_REQUIRE(fd >= 0);
            open.push_back(fd);
            return fd;
        };
        (void)connect();                                            // nothing sent
        reset(t::connect_loopback(port));                           // gone at once
        (void)t::send_all(connect(), "GET /livez HTTP/1.1\r\nHo");  // half a head
        (void)t::send_all(connect(),
                          "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n0123456789");
        (void)t::send_all(connect(), big_trailer_value);  // refused with 431
        // Requests pipelined, none of the answers read.
        std::string many;
        for (int i = 0; i < 8; ++i) many += "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        (void)t::send_all(connect(), many);
        // A stream that starts, then its reader vanishes.
        const int stream = t::connect_loopback(port);
        BOOST_TEST_REQUIRE(stream >= 0);
        BOOST_TEST_REQUIRE(t::send_all(stream, stream_request));
        pollfd p{stream, POLLIN, 0};
        BOOST_TEST(::poll(&p, 1, 5000) == 1, "no answer to the stream request");
        reset(stream);
        // Half of the others end with a FIN, half with a reset.
        for (std::size_t i = 0; i < open.size(); ++i) {
            if (i % 2 != 0)
                ::close(open[i]);
            else
                reset(open[i]);
        }
    }
}

/// What `pid` holds once the count stops moving (two reads 200 ms apart).
std::size_t steady_descriptors(int pid, int port)
{
    std::size_t last = open_descriptors(pid, port);
    for (int i = 0; i < 25; ++i) {
        std::this_thread::sleep_for(200ms);
        const auto now = open_descriptors(pid, port);
        if (now == last) break;
        last = now;
    }
    return last;
}

/// Waits until `pid` holds `baseline` descriptors again (up to 5 s); the
/// count it saw last.
std::size_t descriptors_settle(int pid, int port, std::size_t baseline)
{
    std::size_t now = open_descriptors(pid, port);
    for (int i = 0; i < 50 && now != baseline; ++i) {
        std::this_thread::sleep_for(100ms);
        now = open_descriptors(pid, port);
    }
    return now;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hostile_input)

BOOST_AUTO_TEST_CASE(the_gateway_refuses_hostile_framing_and_keeps_serving)
{
    t::gateway_process gw;
    refuses_hostile_framing(gw.port, "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                            "HTTP/1.1 404 Not Found");
    BOOST_TEST(!gw.proc->wait_for(100ms).has_value(), gw.proc->err_when_printed());
    BOOST_TEST(contains(gw.proc->err(), "http.request_refused"));
    // Counted for the operator.
    const auto token = admin_token(gw);
    const auto metrics = t::raw_exchange(gw.port,
                                         "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                         "Authorization: Bearer " +
                                             token + "\r\n\r\n");
    BOOST_TEST(contains(metrics, "tether_gateway_requests_refused_total{status=\"431\"} 2"), metrics);
    BOOST_TEST(contains(metrics, "tether_gateway_requests_refused_total{status=\"400\"} 5"), metrics);
}

BOOST_AUTO_TEST_CASE(a_trailer_never_authenticates)
{
    t::gateway_process gw;
    const auto token = admin_token(gw);
    const std::string body = "{}";
    const auto answer = t::raw_exchange(
        gw.port,
        "POST /tether.v1.AdminService/ListNodes HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n" +
            body + "\r\n0\r\nAuthorization: Bearer " + token + "\r\n\r\n");
    BOOST_TEST(status_line(answer) == "HTTP/1.1 401 Unauthorized", answer);
    // The same call with the header where it belongs works: the test is about the trailer.
    const auto ok = t::raw_exchange(gw.port,
                                    "POST /tether.v1.AdminService/ListNodes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    "Connection: close\r\nContent-Type: application/json\r\n"
                                    "Authorization: Bearer " +
                                        token + "\r\nContent-Length: 2\r\n\r\n" + body);
    BOOST_TEST(status_line(ok) == "HTTP/1.1 200 OK", ok);
}

BOOST_AUTO_TEST_CASE(the_agent_health_endpoint_refuses_hostile_framing_and_keeps_serving)
{
    t::gateway_process gw;
    t::temp_dir dir;
    auto [agent, port] = agent_with_health(gw, dir);
    refuses_hostile_framing(port, "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                            "HTTP/1.1 200 OK");
    BOOST_TEST(!agent->wait_for(100ms).has_value(), agent->err_when_printed());
}

BOOST_AUTO_TEST_CASE(the_agent_loopback_listener_answers_only_a_host_that_names_loopback)
{
    // DNS rebinding: a page at http://attacker.example:PORT whose name now
    // resolves to 127.0.0.1 sends its own name as Host.
    t::gateway_process gw;
    t::temp_dir dir;
    auto [agent, port] = agent_with_health(gw, dir);
    const auto ask = [port = port](const std::string& target, const std::string& host_field) {
        return status_line(t::raw_exchange(
            port, "GET " + target + " HTTP/1.1\r\n" + host_field + "Connection: close\r\n\r\n"));
    };
    const std::string p = std::to_string(port);
    const std::vector<std::string> refused{"attacker.example:" + p,
                                           "attacker.example",
                                           "127.0.0.1.attacker.example:" + p,
                                           "localhost.attacker.example",
                                           "[::1]x:" + p,
                                           "[::1",
                                           "",
                                           "0x7f000001"};
    for (const auto& host : refused) {
        for (const char* target : {"/v1/config", "/v1/config/events", "/status", "/metrics"})
            BOOST_TEST(ask(target, "Host: " + host + "\r\n") == "HTTP/1.1 403 Forbidden",
                       host << " " << target);
    }
    const std::vector<std::string> served{"127.0.0.1:" + p, "127.0.0.1",  "127.1.2.3:" + p, "localhost:" + p,
                                          "LocalHost",      "[::1]:" + p, "[::1]"};
    for (const auto& host : served)
        BOOST_TEST(ask("/livez", "Host: " + host + "\r\n") == "HTTP/1.1 200 OK", host);
    // HTTP/1.0 may leave it out; a browser never does.
    BOOST_TEST(status_line(t::raw_exchange(port, "GET /livez HTTP/1.0\r\n\r\n")) == "HTTP/1.0 200 OK");
    BOOST_TEST(!agent->wait_for(100ms).has_value(), agent->err_when_printed());
}

BOOST_AUTO_TEST_CASE(the_gateway_raises_its_open_files_limit_to_the_hard_limit)
{
    t::temp_dir dir;
    t::child_process gw("/usr/bin/prlimit",
                        {"--nofile=256:4096", "--", t::binary("tether-gateway").string(), "serve", "--listen",
                         "127.0.0.1:0", "--data-dir", (dir.path() / "gw").string(), "--log-format", "json"});
    BOOST_TEST_REQUIRE(
        gw.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        gw.err_when_printed());
    const auto limits = t::read_file("/proc/" + std::to_string(gw.pid()) + "/limits");
    const auto line = limits.substr(limits.find("Max open files"), 80);
    BOOST_TEST(contains(line, "4096                 4096"), line);
}

BOOST_AUTO_TEST_CASE(the_deepest_accepted_config_is_applied_and_read_back_after_a_restart)
{
    // Issue 20: a document the node applied must load again at its next start.
    t::gateway_process gw;
    t::temp_dir dir;
    const auto state = dir.path() / "node";
    t::enroll(gw, state);
    std::string doc = R"({"flags":{"deep":true}})";  // 2 levels
    for (int level = 2; level < 32; ++level) doc = R"({"k":)" + doc + "}";
    auto agent = t::run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 20s),
        agent->err_when_printed());
    const auto at = gw.publish("acme", doc);
    BOOST_TEST_REQUIRE(
        agent->wait_output(
            [&](const std::string& e) { return contains(e, "config.applied") && contains(e, at); }, 10s),
        agent->err_when_printed());
    agent->signal(SIGTERM);
    const auto stopped = agent->wait_for(10s);
    BOOST_TEST_REQUIRE(stopped.has_value());
    BOOST_TEST(*stopped == 0);

    // Restarted with the gateway stopped: only the file can give it the config.
    gw.proc->signal(SIGTERM);
    BOOST_TEST(gw.proc->wait_for(10s).has_value());
    auto again = t::run_agent(state);
    BOOST_TEST_REQUIRE(
        again->wait_output([](const std::string& e) { return contains(e, "agent.start"); }, 20s),
        again->err_when_printed());
    const auto start = t::lines_with(again->err(), "agent.start").front();
    BOOST_TEST(contains(start, "\"configUpdatedAt\":" + at), start);
    BOOST_TEST(!contains(again->err(), "config.local_unreadable"), again->err_when_printed());
    // One more level is refused where the operator sees it.
    t::gateway_process gw2;
    t::child_process::options in;
    in.stdin_data = R"({"k":)" + doc + "}";
    const auto refused =
        t::run(t::binary("tether-gateway"), gw2.admin({"publish-config", "--org", "acme", "-"}), in);
    BOOST_TEST(refused.status != 0);
}

BOOST_AUTO_TEST_CASE(a_stderr_nobody_reads_never_stops_the_agent)
{
    t::gateway_process gw;
    t::temp_dir dir;
    const auto state = dir.path() / "node";
    t::enroll(gw, state);
    const int port = t::free_port();

    // stderr: a pipe that is already full and that nobody reads.
    int fds[2];
    BOOST_TEST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    (void)::fcntl(fds[1], F_SETPIPE_SZ, 4096);
    (void)::fcntl(fds[1], F_SETFL, O_NONBLOCK);
    const std::string filler(4096, 'x');
    while (::write(fds[1], filler.data(), filler.size()) > 0) {}
    (void)::fcntl(fds[1], F_SETFL, 0);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const auto exe = t::binary("tether").string();
    std::vector<std::string> args{exe,
                                  "run",
                                  "--state-dir",
                                  state.string(),
                                  "--log-level",
                                  "debug",
                                  "--log-format",
                                  "json",
                                  "--health-listen",
                                  "127.0.0.1:" + std::to_string(port),
                                  "--heartbeat-interval",
                                  "5s"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    char* envp[] = {nullptr};
    pid_t pid = 0;
    BOOST_TEST_REQUIRE(::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp) == 0);
    posix_spawn_file_actions_destroy(&fa);

    // Health answers and the first heartbeat succeeds although every log
    // line since the start had nowhere to go.
    bool ready = false;
    for (int i = 0; i < 100 && !ready; ++i) {
        std::this_thread::sleep_for(100ms);
        ready = contains(
            t::raw_exchange(port, "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                            1000ms),
            "HTTP/1.1 200");
    }
    BOOST_TEST(ready, "/readyz never answered 200 with a blocked stderr");
    BOOST_TEST(
        contains(t::raw_exchange(port, "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
                 "HTTP/1.1 200"));

    // SIGTERM still drains and exits 0, with stderr still blocked.
    ::kill(pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid, &status, WNOHANG) == pid) break;
        std::this_thread::sleep_for(100ms);
    }
    if (::waitpid(pid, nullptr, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        BOOST_FAIL("tether run ignored SIGTERM with a blocked stderr");
    }
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    ::close(fds[0]);
    ::close(fds[1]);
}

BOOST_AUTO_TEST_CASE(connections_that_end_any_way_leave_no_descriptor_behind)
{
    // Each listener's connections, however they end, give back their
    // socket: after a storm the process holds what it held before.
    t::gateway_process gw;
    const std::string admin_stream =
        "GET /v1/admin/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        "Authorization: Bearer " +
        admin_token(gw) + "\r\n\r\n";
    // The agent has a gateway of its own: its heartbeats and stream, which
    // open a new connection when they like, are not the measured gateway's.
    t::gateway_process agents_gw;
    t::temp_dir dir;
    auto [agent, health] = agent_with_health(agents_gw, dir);
    const std::string watch =
        "GET /v1/config/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";

    // A TLS gateway meets the same bytes as garbage for its handshake.
    t::temp_dir pki_dir;
    const auto pki = t::make_pki(pki_dir.path(), "gw", {"localhost"}, {"127.0.0.1"});
    t::gateway_process tls_gw(0, {"--tls-cert", pki.cert.string(), "--tls-key", pki.key.string()});

    struct listener {
        const char* name;
        int pid;
        int port;
        const std::string& stream_request;
        bool tls = false;
    };
    for (const listener& l : {listener{"gateway", gw.proc->pid(), gw.port, admin_stream},
                              listener{"agent health", agent->pid(), health, watch},
                              listener{"TLS gateway", tls_gw.proc->pid(), tls_gw.port, admin_stream, true}}) {
        // One round first: whatever a process opens once (a database file,
        // a random source) is not a leak.
        connection_storm(l.port, l.stream_request, 1);
        const auto baseline = steady_descriptors(l.pid, l.port);
        connection_storm(l.port, l.stream_request, 40);
        const auto after = descriptors_settle(l.pid, l.port, baseline);
        BOOST_TEST(after == baseline, l.name << ": " << baseline << " descriptors before 280 connections, "
                                             << after << " after");
        if (l.tls)
            BOOST_TEST(
                t::run(t::binary("tether-gateway"),
                       {"admin", "nodes", "--server", "https://127.0.0.1:" + std::to_string(l.port),
                        "--ca-file", pki.ca_cert.string(), "--admin-token-file", tls_gw.token_file.string()})
                        .status == 0,
                l.name);
        else
            BOOST_TEST(
                contains(t::raw_exchange(
                             l.port, "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
                         "HTTP/1.1 200"),
                l.name);
    }
    BOOST_TEST(!gw.proc->wait_for(100ms).has_value(), gw.proc->err_when_printed());
    BOOST_TEST(!agent->wait_for(100ms).has_value(), agent->err_when_printed());
    BOOST_TEST(!tls_gw.proc->wait_for(100ms).has_value(), tls_gw.proc->err_when_printed());
}

BOOST_AUTO_TEST_SUITE_END()
