// The agent as an operator runs it: real gateway and agent processes.
#include "auth/keys.hpp"
#include "auth/state_store.hpp"
#include "gateway/sqlite_storage.hpp"
#include "net/protojson.hpp"
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/raw_http.hpp"
#include "support/small_disk.hpp"
#include "support/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>

using namespace std::chrono_literals;
using tether::test::binary;
using tether::test::child_process;
using tether::test::contains;
using tether::test::count;
using tether::test::enroll;
using tether::test::free_port;
using tether::test::gateway_process;
using tether::test::run_agent;
using tether::test::temp_dir;

BOOST_AUTO_TEST_SUITE(agent_suite)

BOOST_AUTO_TEST_CASE(enroll_run_heartbeat_apply_config_and_stop)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto node = enroll(gw, state);
    // 0700 directory, 0600 files.
    const auto mode = [](const std::filesystem::path& p) {
        return static_cast<unsigned>(std::filesystem::status(p).permissions() & std::filesystem::perms::all);
    };
    BOOST_TEST(mode(state) == 0700u);
    BOOST_TEST(mode(state / "state.json") == 0600u);
    BOOST_TEST(mode(state / "node.key") == 0600u);

    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "heartbeat.ok"); }, 15s),
        agent->err_when_printed());

    // A second agent on the same identity is refused, naming the holder.
    const auto second = tether::test::run(binary("tether"), {"run", "--state-dir", state.string()});
    BOOST_TEST(second.status == 2);
    BOOST_TEST(contains(second.err, "PID " + std::to_string(agent->pid())), second.err);

    child_process::options in;
    in.stdin_data = R"({"heartbeatIntervalSeconds": 5, "flags": {"x": true}})";
    const auto pub =
        tether::test::run(binary("tether-gateway"), gw.admin({"publish-config", "--org", "acme", "-"}), in);
    BOOST_TEST_REQUIRE(pub.status == 0, pub.err);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "config.applied"); }, 15s),
        agent->err_when_printed());
    BOOST_TEST(contains(tether::test::read_file(state / "config.json"), "\"x\":true"));

    // Cadence: consecutive beats 5 s apart, +-10 % jitter (plus scheduling slack).
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return count(e, "heartbeat.ok") >= 4; }, 25s),
        agent->err_when_printed());
    std::vector<std::int64_t> beats;
    {
        std::istringstream lines(agent->err());
        for (std::string line; std::getline(lines, line);) {
            if (!contains(line, "heartbeat.ok")) continue;
            const auto ts = boost::json::parse(line).at("ts").as_string();
            const auto t = tether::net::protojson::parse_timestamp(ts, "ts");
            BOOST_TEST_REQUIRE(t.has_value());
            beats.push_back(t->time_since_epoch().count());
        }
    }
    for (std::size_t i = 2; i < beats.size(); ++i) {  // from the second gap: the first follows a config fetch
        const auto gap = beats[i] - beats[i - 1];
        BOOST_TEST((gap >= 4400 && gap <= 5700), "heartbeat gap " << gap << " ms");
    }

    const auto sent = std::chrono::steady_clock::now();
    agent->signal(SIGTERM);
    const auto status = agent->wait_for(2s);
    BOOST_TEST_REQUIRE(status.has_value(), "agent still running 2 s after SIGTERM");
    BOOST_TEST(*status == 0);
    BOOST_TEST((std::chrono::steady_clock::now() - sent < 2s));

    // No secret in any log.
    const auto st = boost::json::parse(tether::test::read_file(state / "state.json"));
    const std::string api_key(st.at("apiKey").as_string());
    const std::string session(st.at("sessionToken").as_string());
    BOOST_TEST_REQUIRE(!api_key.empty());
    BOOST_TEST_REQUIRE(!session.empty());
    for (const auto& log : {agent->err(), agent->out(), gw.proc->err()}) {
        BOOST_TEST(!contains(log, api_key));
        BOOST_TEST(!contains(log, session));
    }
    BOOST_TEST(contains(gw.proc->err(), node));
}

BOOST_AUTO_TEST_CASE(revoked_node_exits_3_within_a_heartbeat)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto node = enroll(gw, state);
    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "heartbeat.ok"); }, 15s),
        agent->err_when_printed());
    const auto r = tether::test::run(binary("tether-gateway"), gw.admin({"revoke", node}));
    BOOST_TEST_REQUIRE(r.status == 0, r.err);
    const auto status = agent->wait_for(8s);
    BOOST_TEST_REQUIRE(status.has_value(), agent->err_when_printed());
    BOOST_TEST(*status == 3, agent->err_when_printed());
    const bool hint = contains(agent->err(), "Re-enroll");
    BOOST_TEST(hint, agent->err_when_printed());
}

BOOST_AUTO_TEST_CASE(gateway_down_then_back_the_agent_keeps_running)
{
    auto gw = std::make_unique<gateway_process>();
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(*gw, state);
    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "heartbeat.ok"); }, 15s));
    // Stop the gateway: heartbeats fail, the agent stays.
    gw->proc->signal(SIGTERM);
    BOOST_TEST_REQUIRE(gw->proc->wait_for(5s).has_value());
    BOOST_TEST(agent->wait_output([](const std::string& e) { return contains(e, "heartbeat.failed"); }, 15s),
               agent->err_when_printed());
    BOOST_TEST(!agent->wait_for(10ms).has_value(), "the agent must keep running while the gateway is down");
    agent->signal(SIGTERM);
    const auto stopped = agent->wait_for(2s);
    BOOST_TEST_REQUIRE(stopped.has_value());
    BOOST_TEST(*stopped == 0);
}

BOOST_AUTO_TEST_CASE(the_enrollment_code_never_stays_on_the_command_line)
{
    // Every user of the machine reads a command line (ps, /proc/PID/cmdline):
    // a code given there is blanked once read, and a warning names the ways
    // that keep it off it. A gateway that never answers holds the enroll
    // open long enough to look.
    const tether::test::silent_listener silent;
    const std::string server = "http://127.0.0.1:" + std::to_string(silent.port());
    temp_dir dir;
    const std::string code = "Zq8-the-code-itself-Zq8";
    const std::vector<std::vector<std::string>> forms{{"--code", code}, {"--code=" + code}};
    for (const auto& form : forms) {
        std::vector<std::string> args{
            "enroll", "--server", server, "--state-dir", (dir.path() / "s").string(), "--log-format", "json"};
        args.insert(args.begin() + 1, form.begin(), form.end());
        child_process enroll_run(binary("tether"), args);
        BOOST_TEST_REQUIRE(
            enroll_run.wait_output(
                [](const std::string& e) { return contains(e, "enroll.code_on_command_line"); }, 10s),
            enroll_run.err_when_printed());
        const auto cmdline =
            tether::test::read_file("/proc/" + std::to_string(enroll_run.pid()) + "/cmdline");
        BOOST_TEST(!contains(cmdline, code), form.front());
        BOOST_TEST(contains(cmdline, std::string(code.size(), 'x')), form.front());
        BOOST_TEST(contains(cmdline, "--state-dir"), "nothing else was touched");
        BOOST_TEST(!contains(enroll_run.err(), code), enroll_run.err_when_printed());
    }

    // The ways that keep it off: a file (or stdin), and TETHER_CODE.
    gateway_process gw;
    const auto enroll_with = [&](const std::string& where, std::vector<std::string> extra,
                                 child_process::options o) {
        std::vector<std::string> args{
            "enroll",       "--server", gw.url, "--state-dir", (dir.path() / where).string(),
            "--log-format", "json"};
        args.insert(args.end(), extra.begin(), extra.end());
        return tether::test::run(binary("tether"), args, std::move(o));
    };
    const auto file = dir.path() / "code.txt";
    std::ofstream(file) << gw.code("acme") << "\n";
    const auto from_file = enroll_with("file", {"--code-file", file.string()}, {});
    BOOST_TEST(from_file.status == 0, from_file.err);
    BOOST_TEST(!contains(from_file.err, "code_on_command_line"), from_file.err);
    child_process::options piped;
    piped.stdin_data = gw.code("acme");
    const auto from_stdin = enroll_with("stdin", {"--code-file", "-"}, piped);
    BOOST_TEST(from_stdin.status == 0, from_stdin.err);
    child_process::options env;
    env.env_extra = {"TETHER_CODE=" + gw.code("acme")};
    const auto from_env = enroll_with("env", {}, env);
    BOOST_TEST(from_env.status == 0, from_env.err);
    BOOST_TEST(!contains(from_env.err, "code_on_command_line"), from_env.err);

    // Refused before anything is sent: both at once, an empty or a
    // two-line file, none at all.
    const auto both = enroll_with("both", {"--code-file", file.string()}, env);
    BOOST_TEST(both.status == 2);
    BOOST_TEST(contains(both.err, "use one"), both.err);
    std::ofstream(dir.path() / "empty.txt") << "\n";
    const auto empty = enroll_with("empty", {"--code-file", (dir.path() / "empty.txt").string()}, {});
    BOOST_TEST(empty.status == 2);
    BOOST_TEST(contains(empty.err, "holds no code"), empty.err);
    std::ofstream(dir.path() / "two.txt") << "a\nb\n";
    const auto two = enroll_with("two", {"--code-file", (dir.path() / "two.txt").string()}, {});
    BOOST_TEST(two.status == 2);
    BOOST_TEST(contains(two.err, "more than one line"), two.err);
    const auto none = enroll_with("none", {}, {});
    BOOST_TEST(none.status == 2);
    BOOST_TEST(contains(none.err, "--code-file"), none.err);
    for (const char* where : {"both", "empty", "two", "none"})
        BOOST_TEST(!std::filesystem::exists(dir.path() / where),
                   where << ": a refused enroll creates nothing");
}

BOOST_AUTO_TEST_CASE(enroll_guards)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    const auto again = tether::test::run(binary("tether"), {"enroll", "--server", gw.url, "--code",
                                                            gw.code("acme"), "--state-dir", state.string()});
    BOOST_TEST(again.status == 2);
    BOOST_TEST(contains(again.err, "--force"), again.err);
    const auto reused = tether::test::run(binary("tether"), {"enroll", "--server", gw.url, "--code", "bogus",
                                                             "--state-dir", (dir.path() / "other").string()});
    BOOST_TEST(reused.status == 2);
    BOOST_TEST(contains(reused.err, "refused"), reused.err);
    const auto plain =
        tether::test::run(binary("tether"), {"enroll", "--server", "http://example.com", "--code", "x",
                                             "--state-dir", (dir.path() / "p").string()});
    BOOST_TEST(plain.status == 2);
    BOOST_TEST(contains(plain.err, "loopback"), plain.err);
    BOOST_TEST(!std::filesystem::exists(dir.path() / "p"), "a refused enroll creates nothing");

    // --skip-if-enrolled, an init step before every start: a no-op once
    // enrolled, even with the code long used up; enrolls when not.
    const auto node_before = tether::test::read_file(state / "state.json");
    const auto skipped = tether::test::run(
        binary("tether"), {"enroll", "--skip-if-enrolled", "--server", gw.url, "--code", "used-up",
                           "--state-dir", state.string(), "--log-format", "json"});
    BOOST_TEST(skipped.status == 0, skipped.err);
    BOOST_TEST(contains(skipped.err, "enroll.skipped"), skipped.err);
    BOOST_TEST(tether::test::read_file(state / "state.json") == node_before);
    const auto fresh = tether::test::run(
        binary("tether"), {"enroll", "--skip-if-enrolled", "--server", gw.url, "--code", gw.code("acme"),
                           "--state-dir", (dir.path() / "fresh").string()});
    BOOST_TEST(fresh.status == 0, fresh.err);
    BOOST_TEST(std::filesystem::exists(dir.path() / "fresh" / "state.json"));
    const auto both =
        tether::test::run(binary("tether"), {"enroll", "--skip-if-enrolled", "--force", "--server", gw.url,
                                             "--code", "x", "--state-dir", state.string()});
    BOOST_TEST(both.status == 2);
    // A state file it cannot read is not "not enrolled": the init step
    // fails (the pod does not start) and leaves the file for an operator,
    // rather than enrolling a second identity over it.
    const auto broken_dir = dir.path() / "broken";
    std::filesystem::create_directories(broken_dir);
    std::filesystem::permissions(broken_dir, std::filesystem::perms::owner_all);
    tether::test::write_private_file(broken_dir / "state.json", "{\"nodeId\": ");
    const auto corrupt =
        tether::test::run(binary("tether"), {"enroll", "--skip-if-enrolled", "--server", gw.url, "--code",
                                             gw.code("acme"), "--state-dir", broken_dir.string()});
    BOOST_TEST(corrupt.status == 2, corrupt.err);
    BOOST_TEST(contains(corrupt.err, "not valid JSON"), corrupt.err);
    BOOST_TEST(tether::test::read_file(broken_dir / "state.json") == "{\"nodeId\": ");

    // One code for a DaemonSet's nodes: admin create-enrollment-code --uses.
    const auto shared = tether::test::run(
        binary("tether-gateway"), gw.admin({"create-enrollment-code", "--org", "acme", "--uses", "2"}));
    BOOST_TEST_REQUIRE(shared.status == 0, shared.err);
    std::string shared_code = shared.out;
    while (!shared_code.empty() && shared_code.back() == '\n') shared_code.pop_back();
    for (const char* n : {"ds-1", "ds-2", "ds-3"}) {
        const auto r = tether::test::run(
            binary("tether"),
            {"enroll", "--server", gw.url, "--code", shared_code, "--state-dir", (dir.path() / n).string()});
        BOOST_TEST(r.status == (std::string(n) == "ds-3" ? 2 : 0), n << ": " << r.err);
    }
    BOOST_TEST(tether::test::run(binary("tether-gateway"),
                                 gw.admin({"create-enrollment-code", "--org", "acme", "--uses", "0"}))
                   .status == 2);
}

// A node whose disk is full cannot keep an identity: enroll says so before
// it spends the single-use code, registers no node, and works with the
// same code once there is space.
BOOST_AUTO_TEST_CASE(enroll_on_a_full_disk_keeps_the_code)
{
    if (!tether::test::can_mount()) return;
    gateway_process gw;
    temp_dir dir;
    const tether::test::small_disk disk(dir.path() / "disk", "256k");
    const auto state = disk.at / "state";
    const auto code = gw.code("acme");
    BOOST_TEST_REQUIRE(tether::test::fill_up(disk.at / "filler") == ENOSPC);
    const std::vector<std::string> args{"enroll",      "--server",     gw.url,   "--code", code,
                                        "--state-dir", state.string(), "--name", "full"};
    const auto full = tether::test::run(binary("tether"), args);
    BOOST_TEST(full.status == 1, full.err);
    BOOST_TEST(contains(full.err, "No space left on device"), full.err);
    BOOST_TEST(contains(full.err, "the enrollment code is still good"), full.err);
    BOOST_TEST(!std::filesystem::exists(state / "state.json"));
    BOOST_TEST(!std::filesystem::exists(state / "node.key"));
    BOOST_TEST(!std::filesystem::exists(state / "enroll.reserved"));
    const auto nodes = tether::test::run(binary("tether-gateway"), gw.admin({"nodes"}));
    BOOST_TEST(!contains(nodes.out, "full"), nodes.out);

    std::filesystem::remove(disk.at / "filler");
    const auto room = tether::test::run(binary("tether"), args);
    BOOST_TEST_REQUIRE(room.status == 0, room.err);
    BOOST_TEST(!std::filesystem::exists(state / "enroll.reserved"));
    const auto st = boost::json::parse(tether::test::read_file(state / "state.json"));
    BOOST_TEST(contains(tether::test::run(binary("tether-gateway"), gw.admin({"nodes"})).out,
                        std::string(st.at("nodeId").as_string())));
}

BOOST_AUTO_TEST_CASE(state_without_api_key_exits_2_without_locking)
{
    temp_dir dir;
    const auto state = dir.path() / "state";
    std::filesystem::create_directories(state);
    tether::test::write_file(state / "state.json", R"({"serverUrl":"http://127.0.0.1:1","nodeId":"n"})");
    const auto r = tether::test::run(binary("tether"), {"run", "--state-dir", state.string()});
    BOOST_TEST(r.status == 2);
    BOOST_TEST(contains(r.err, "api key"), r.err);
    BOOST_TEST(!std::filesystem::exists(state / "lock"));
}

BOOST_AUTO_TEST_SUITE_END()

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

BOOST_AUTO_TEST_SUITE(agent_drills)

BOOST_AUTO_TEST_CASE(state_survives_kill_9_during_writes)
{
    temp_dir dir;
    const auto state = dir.path() / "state";
    std::filesystem::create_directories(state);
    std::mt19937 rng(std::random_device{}());
    for (int round = 0; round < 25; ++round) {
        child_process writer(binary("../test/state_writer"), {state.string()});
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 40));
        writer.signal(SIGKILL);
        BOOST_TEST_REQUIRE(writer.wait_for(5s).has_value());
        if (!std::filesystem::exists(state / "state.json")) continue;  // killed before the first rename
        const auto text = tether::test::read_file(state / "state.json");
        boost::system::error_code ec;
        const auto v = boost::json::parse(text, ec);
        BOOST_TEST_REQUIRE(!ec, "round " << round << ": torn state.json: " << text.substr(0, 80));
        BOOST_TEST(v.at("nodeName").as_string().starts_with("writer-"));
    }
}

BOOST_AUTO_TEST_CASE(unauthenticated_gets_exactly_one_refresh_and_one_retry)
{
    // A gateway restart forgets every session: the next heartbeat is
    // answered unauthenticated, and the agent must log in once and retry.
    temp_dir dir;
    const auto port = std::to_string(free_port());
    const auto data = (dir.path() / "gw").string();
    const std::vector<std::string> serve{"serve", "--listen", "127.0.0.1:" + port, "--data-dir", data};
    auto gw = std::make_unique<child_process>(binary("tether-gateway"), serve);
    BOOST_TEST_REQUIRE(
        gw->wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s));
    const std::string url = "http://127.0.0.1:" + port;
    const auto code = tether::test::run(
        binary("tether-gateway"), {"admin", "--server", url, "--admin-token-file", data + "/admin.token",
                                   "create-enrollment-code", "--org", "acme"});
    const auto state = dir.path() / "state";
    const auto e = tether::test::run(
        binary("tether"), {"enroll", "--server", url, "--code", code.out.substr(0, code.out.find('\n')),
                           "--state-dir", state.string()});
    BOOST_TEST_REQUIRE(e.status == 0, e.err);
    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& s) { return contains(s, "heartbeat.ok"); }, 15s));
    const auto refreshes_before = count(agent->err(), "session.refreshed");

    // The gateway forgets every session: stopped, its store pruned as if
    // they had all expired, started again (a restart alone keeps them).
    gw->signal(SIGTERM);
    BOOST_TEST_REQUIRE(gw->wait_for(5s).has_value());
    tether::gateway::sqlite_storage(std::filesystem::path(data) / "tether.db").prune_credentials(INT64_MAX);
    gw = std::make_unique<child_process>(binary("tether-gateway"), serve);
    BOOST_TEST_REQUIRE(
        gw->wait_output([](const std::string& s) { return contains(s, "gateway.listening"); }, 20s));
    const auto oks = count(agent->err(), "heartbeat.ok");
    BOOST_TEST_REQUIRE(
        agent->wait_output([&](const std::string& s) { return count(s, "heartbeat.ok") > oks; }, 15s),
        agent->err_when_printed());
    BOOST_TEST(count(agent->err(), "session.refreshed") == refreshes_before + 1, agent->err_when_printed());
    BOOST_TEST(count(agent->err(), "heartbeat.failed") == 0u, agent->err_when_printed());
    agent->signal(SIGTERM);
    BOOST_TEST(agent->wait_for(2s).has_value());
}

BOOST_AUTO_TEST_CASE(sigterm_during_a_hanging_login_exits_0_promptly)
{
    // A server that accepts connections and never answers.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_TEST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    BOOST_TEST_REQUIRE(::listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);

    temp_dir dir;
    const auto state = dir.path() / "state";
    std::filesystem::create_directories(state);
    tether::auth::save_key({state}, tether::auth::generate_key().private_pem);
    tether::test::write_private_file(
        state / "state.json", R"({"serverUrl":"http://127.0.0.1:)" + std::to_string(ntohs(a.sin_port)) +
                                  R"(","nodeId":"node-x","orgId":"acme","apiKey":"k"})");
    child_process agent(binary("tether"), {"run", "--state-dir", state.string(), "--heartbeat-interval", "5s",
                                           "--log-format", "json"});
    // The first beat comes at a random point of its 5 s interval; its login's
    // connection shows up as a readable listener (never accepted), and a
    // moment later the request is written and the agent waits in BeginAuth.
    pollfd incoming{fd, POLLIN, 0};
    BOOST_TEST_REQUIRE(::poll(&incoming, 1, 6000) == 1, "the agent never tried to log in");
    std::this_thread::sleep_for(200ms);
    const auto sent = std::chrono::steady_clock::now();
    agent.signal(SIGTERM);
    const auto status = agent.wait_for(2s);
    BOOST_TEST_REQUIRE(status.has_value(), agent.err_when_printed());
    BOOST_TEST(*status == 0, agent.err_when_printed());
    BOOST_TEST((std::chrono::steady_clock::now() - sent < 2s));
    ::close(fd);
}

BOOST_AUTO_TEST_CASE(status_reports_identity_and_running_agent)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto node = enroll(gw, state);
    const auto idle =
        tether::test::run(binary("tether"), {"status", "--state-dir", state.string(), "--json"});
    BOOST_TEST_REQUIRE(idle.status == 0, idle.err);
    const auto v = boost::json::parse(idle.out);
    BOOST_TEST(v.at("nodeId").as_string() == node);
    BOOST_TEST(v.at("sessionValid").as_bool());
    BOOST_TEST(!v.at("agentRunning").as_bool());
    BOOST_TEST(idle.out.find("apiKey") == std::string::npos);
    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "agent.start"); }, 15s));
    const auto running =
        tether::test::run(binary("tether"), {"status", "--state-dir", state.string(), "--json"});
    const auto r = boost::json::parse(running.out);
    BOOST_TEST(r.at("agentRunning").as_bool());
    BOOST_TEST(r.at("agentPid").as_int64() == agent->pid());
    agent->signal(SIGTERM);
    BOOST_TEST(agent->wait_for(2s).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(agent_exec)

BOOST_AUTO_TEST_CASE(exec_without_upstream_calls_the_gateway_with_the_session_token)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    // While `tether run` holds the state directory, exec logs in on its own
    // and keeps that session in memory.
    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "agent.start"); }, 15s));
    const auto before = tether::test::read_file(state / "state.json");
    const auto r =
        tether::test::run(binary("tether"), {"exec", "--state-dir", state.string(), "--", TETHER_BROKER_CHILD,
                                             "post", "/tether.v1.NodeService/GetRuntimeConfig", "{}"});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.out, "HTTP/1.1 200"), r.out);
    BOOST_TEST(contains(r.out, "configUpdatedAt"));
    const auto st = boost::json::parse(tether::test::read_file(state / "state.json"));
    BOOST_TEST(!contains(r.out, std::string(st.at("sessionToken").as_string())));
    agent->signal(SIGTERM);
    BOOST_TEST(agent->wait_for(5s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(exec_with_a_credential_file_but_no_upstream_refuses_to_start)
{
    // Without --upstream the broker forwards to the node's gateway: it sent
    // the gateway the key meant for another service. The variable form is
    // how a container forgets the upstream.
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    const auto key_file = dir.path() / "api-key";
    tether::test::write_private_file(key_file, "other-service-key-0123456789\n");
    tether::test::child_process::options env;
    env.env_extra = {"TETHER_CREDENTIAL_FILE=" + key_file.string()};
    const auto r = tether::test::run(binary("tether"),
                                     {"exec", "--state-dir", state.string(), "--", TETHER_BROKER_CHILD,
                                      "post", "/tether.v1.NodeService/GetRuntimeConfig", "{}"},
                                     env);
    BOOST_TEST(r.status == 2, r.err);
    BOOST_TEST(contains(r.err, "TETHER_CREDENTIAL_FILE needs --upstream"), r.err);
    BOOST_TEST(r.out.empty(), "the child ran: " + r.out);
    BOOST_TEST(!contains(r.err, "other-service-key"), r.err);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(agent_health)

BOOST_AUTO_TEST_CASE(health_endpoints_and_readyz_flipping_when_heartbeats_fail)
{
    auto gw = std::make_unique<gateway_process>();
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(*gw, state);
    const auto addr = "127.0.0.1:" + std::to_string(free_port());
    child_process agent(binary("tether"), {"run", "--state-dir", state.string(), "--heartbeat-interval", "5s",
                                           "--health-listen", addr, "--log-format", "json"});
    BOOST_TEST_REQUIRE(
        agent.wait_output(
            [](const std::string& e) { return contains(e, "heartbeat.ok") && contains(e, "sse.connected"); },
            15s),
        agent.err_when_printed());
    const auto status = tether::test::run(
        binary("tether"), {"status", "--state-dir", state.string(), "--json", "--health-listen", addr});
    BOOST_TEST_REQUIRE(status.status == 0, status.err);
    const auto s = boost::json::parse(status.out);
    BOOST_TEST(s.at("health").as_string() == "reachable");
    BOOST_TEST(s.at("heartbeatsSent").to_number<int>() >= 1);
    BOOST_TEST(s.at("lastHeartbeatOkMs").to_number<std::int64_t>() > 0);
    BOOST_TEST(s.at("realtimeConnected").as_bool());
    BOOST_TEST(s.at("streamConnects").to_number<int>() == 1);

    // Raw endpoints, read with a plain HTTP/1.0 client over a socket.
    const auto fetch = [&](const std::string& path) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(addr.substr(addr.find(':') + 1))));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string out;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            const std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
            (void)::write(fd, req.data(), req.size());
            char buf[4096];
            for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
                out.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        return out;
    };
    BOOST_TEST(fetch("/livez").starts_with("HTTP/1.0 200"), fetch("/livez"));
    BOOST_TEST(fetch("/readyz").starts_with("HTTP/1.0 200"));
    const auto metrics = fetch("/metrics");
    BOOST_TEST(contains(metrics, "tether_heartbeats_total{result=\"ok\"}"), metrics);
    BOOST_TEST(contains(metrics, "process_resident_memory_bytes"), metrics);
    // 0: run reuses the session enroll persisted, with far more than an hour left.
    BOOST_TEST(contains(metrics, "tether_session_refreshes_total 0"), metrics);

    // `tether probe`, the container image's health check: the agent's
    // endpoints and the gateway's own /livez.
    const auto probe = [&](std::vector<std::string> args) {
        return tether::test::run(binary("tether"), args);
    };
    auto p = probe({"probe", "--health-listen", addr});
    BOOST_TEST(p.status == 0, p.out + p.err);
    BOOST_TEST(p.out.starts_with("/livez: 200"), p.out);
    p = probe({"probe", "--health-listen", addr, "/readyz"});
    BOOST_TEST(p.status == 0, p.out + p.err);
    p = probe({"probe", "--health-listen", "127.0.0.1:" + std::to_string(gw->port)});
    BOOST_TEST(p.status == 0, p.out + p.err);
    p = probe({"probe", "--health-listen", "127.0.0.1:" + std::to_string(free_port())});
    BOOST_TEST(p.status == 1, "nothing listening: " + p.out);
    BOOST_TEST(probe({"probe", "--health-listen", "192.0.2.1:9464"}).status == 2, "off loopback");
    BOOST_TEST(probe({"probe", "--health-listen", addr, "readyz"}).status == 2);

    // Gateway gone: after two intervals without a good heartbeat, not ready.
    gw.reset();
    bool flipped = false;
    for (int i = 0; i < 150 && !flipped; ++i) {
        flipped = fetch("/readyz").starts_with("HTTP/1.0 503");
        if (!flipped) std::this_thread::sleep_for(100ms);
    }
    BOOST_TEST(flipped, "readyz still 200 15 s after the gateway went away");
    BOOST_TEST(fetch("/livez").starts_with("HTTP/1.0 200"), "alive, just not ready");
    p = probe({"probe", "--health-listen", addr, "/readyz"});
    BOOST_TEST(p.status == 1, p.out);
    BOOST_TEST(p.out.starts_with("/readyz: 503"), p.out);
    BOOST_TEST(probe({"probe", "--health-listen", addr}).status == 0);
    agent.signal(SIGTERM);
    const auto st = agent.wait_for(2s);
    BOOST_TEST_REQUIRE(st.has_value());
    BOOST_TEST(*st == 0);

    const auto refused = tether::test::run(
        binary("tether"), {"run", "--state-dir", state.string(), "--health-listen", "0.0.0.0:9464"});
    BOOST_TEST(refused.status == 2);
    BOOST_TEST(contains(refused.err, "loopback"), refused.err);
}

BOOST_AUTO_TEST_SUITE_END()
