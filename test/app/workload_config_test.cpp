// Runtime config reaching the node's workloads (issue 17), with the real
// gateway and agent and separate reader processes: the rendered file
// (--config-out), the local watch API (/v1/config, /v1/config/events).
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/small_disk.hpp"
#include "support/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using tether::test::binary;
using tether::test::child_process;
using tether::test::contains;
using tether::test::enroll;
using tether::test::free_port;
using tether::test::gateway_process;
using tether::test::run_agent;
using tether::test::temp_dir;

namespace {

/// One request over a plain socket; the raw response (HTTP/1.0: the server
/// closes after it).
std::string http_get(int port, const std::string& path, const std::string& headers = {})
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req = "GET " + path + " HTTP/1.0\r\n" + headers + "\r\n";
        (void)::write(fd, req.data(), req.size());
        char buf[4096];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

std::string body_of(const std::string& response)
{
    const auto at = response.find("\r\n\r\n");
    return at == std::string::npos ? std::string() : response.substr(at + 4);
}

// Readers are separate processes, as a workload is. Each prints one line
// per change it sees: the wall clock in ns (to compare with the gateway's
// configUpdatedAt), then what it saw.
constexpr const char* file_reader = R"(
import sys, time
path, last = sys.argv[1], None
print("ready", flush=True)
while True:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    if text is not None and text != last:
        print(time.time_ns(), text.strip(), flush=True)
        last = text
    time.sleep(0.002)
)";

constexpr const char* sse_reader = R"(
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
c.request("GET", sys.argv[2])
r = c.getresponse()
print("status", r.status, r.getheader("Content-Type"), flush=True)
event = {}
while True:
    line = r.readline()
    if not line:
        break
    line = line.decode().rstrip("\n")
    if line == "":
        if "data" in event:
            print(time.time_ns(), event.get("event"), event.get("id"), event["data"], flush=True)
        event = {}
    elif not line.startswith(":"):
        name, _, value = line.partition(": ")
        event[name] = value
)";

/// Milliseconds from a publish to `arrival_ns` (a reader's wall clock). A
/// publish is the gateway's: its configUpdatedAt is the gateway's wall clock
/// as it took the call, so the admin CLI's start-up (hundreds of ms under
/// ASan on a busy machine) is not counted against the agent.
std::int64_t ms_after_publish(const std::string& config_updated_at, std::int64_t arrival_ns)
{
    return arrival_ns / 1'000'000 - std::stoll(config_updated_at);
}

/// The first line of `out` holding `needle`: its leading timestamp (ns) and
/// the rest; nullopt when there is none yet.
std::optional<std::pair<std::int64_t, std::string>> seen(const std::string& out, const std::string& needle)
{
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        if (!contains(line, needle)) continue;
        const auto sp = line.find(' ');
        if (sp == std::string::npos ||
            line.substr(0, sp).find_first_not_of("0123456789") != std::string::npos)
            continue;
        return std::pair{std::stoll(line.substr(0, sp)), line.substr(sp + 1)};
    }
    return std::nullopt;
}

// `tether exec`'s child: prints a line when it starts and on each SIGHUP,
// with the wall clock (ns, to compare with configUpdatedAt), the version its
// TETHER_CONFIG_FILE shows (the name ..data points at) and the file's
// content.
constexpr const char* reload_child = R"(
import os, signal, sys, time
f = os.environ["TETHER_CONFIG_FILE"]
d = os.path.dirname(f)
def version():
    try:
        return os.readlink(os.path.join(d, "..data"))[2:]
    except OSError:
        return "none"
def show(tag):
    try:
        with open(f) as fh:
            text = fh.read().strip()
    except OSError:
        text = ""
    print(tag, time.time_ns(), version(), text, os.environ.get("TETHER_CONFIG_URL", ""), flush=True)
signal.signal(signal.SIGHUP, lambda *a: show("hup"))
show("start")
while True:
    time.sleep(0.05)
)";

// N publishes through AdminService over one keep-alive connection, SPACING
// seconds apart; prints each configUpdatedAt.
constexpr const char* publisher = R"(
import http.client, json, sys, time
port, token_file, n, spacing = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
token = open(token_file).read().strip()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for i in range(n):
    body = json.dumps({"orgId": "acme", "config": {"flags": {"on": i % 2 == 0}, "round": {"n": i}}})
    c.request("POST", "/tether.v1.AdminService/PublishConfig", body,
              {"Content-Type": "application/json", "Authorization": "Bearer " + token})
    r = c.getresponse()
    out = r.read()
    if r.status != 200:
        print("failed", r.status, out, file=sys.stderr, flush=True)
        sys.exit(1)
    print(json.loads(out)["configUpdatedAt"], flush=True)
    time.sleep(spacing)
)";

std::vector<std::string> lines_starting(const std::string& out, const std::string& tag)
{
    std::vector<std::string> found;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with(tag + " ")) found.push_back(line);
    return found;
}

/// The fields of a reload_child line: tag, time (ns), version, content...
std::vector<std::string> fields(const std::string& line)
{
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string f; in >> f;) out.push_back(f);
    return out;
}

std::unique_ptr<child_process> exec_child(const std::filesystem::path& state, std::vector<std::string> flags)
{
    std::vector<std::string> args{"exec", "--state-dir", state.string(), "--log-format", "json"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"--", "/usr/bin/python3", "-c", reload_child});
    return std::make_unique<child_process>(binary("tether"), args);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(workload_config)

// The node's disk fills. Nothing is lost: the new config is in force at
// once and heartbeats go on, the files already there stay whole, and when
// space returns the agent writes, unasked, both the state directory's copy
// (which `tether exec` beside it follows, and its next start reads) and
// the rendered file.
BOOST_AUTO_TEST_CASE(a_full_disk_delays_the_files_and_loses_nothing)
{
    if (!tether::test::can_mount()) return;
    gateway_process gw;
    temp_dir dir;
    const tether::test::small_disk disk(dir.path() / "disk", "256k");
    const auto state = disk.at / "state";
    const auto out = disk.at / "out";
    enroll(gw, state);
    const int port = free_port();
    auto agent = run_agent(
        state, {"--config-out", out.string(), "--health-listen", "127.0.0.1:" + std::to_string(port)});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 15s),
        agent->err_when_printed());
    const auto v1 = gw.publish("acme", R"({"flags": {"one": true}})");
    BOOST_TEST_REQUIRE(agent->wait_output(
                           [&](const std::string& e) {
                               return contains(e, "config.applied") && contains(e, v1) &&
                                      contains(e, "config.rendered");
                           },
                           15s),
                       agent->err_when_printed());
    auto follower = exec_child(state, {"--on-config-change", "signal:SIGHUP"});
    BOOST_TEST_REQUIRE(follower->wait_output(
                           [&](const std::string& s) {
                               const auto l = lines_starting(s, "start");
                               return !l.empty() && fields(l.back())[2] == v1;
                           },
                           15s, true),
                       follower->out_when_printed() << follower->err_when_printed());

    const auto identity = tether::test::read_file(state / "state.json");
    const auto saved = tether::test::read_file(state / "config.json");
    BOOST_TEST_REQUIRE(tether::test::fill_up(disk.at / "filler") == ENOSPC);
    const auto beats = tether::test::count(agent->err(), "heartbeat.ok");
    const auto v2 = gw.publish("acme", R"({"flags": {"two": true}})");
    const auto said = [&](const char* what, const std::string& version) {
        return [what, version](const std::string& e) {
            for (const auto& l : tether::test::lines_with(e, what))
                if (contains(l, version)) return true;
            return false;
        };
    };
    BOOST_TEST_REQUIRE(agent->wait_output(said("config.applied", v2), 15s), agent->err_when_printed());
    BOOST_TEST_REQUIRE(agent->wait_output(said("config.render_failed", v2), 15s), agent->err_when_printed());
    for (const char* what : {"config.persist_failed", "config.render_failed"})
        BOOST_TEST(contains(tether::test::lines_with(agent->err(), what).front(), "No space left on device"),
                   agent->err_when_printed());
    // In force, and said so, while the disk holds the old one whole.
    const auto status = boost::json::parse(body_of(http_get(port, "/status")));
    BOOST_TEST(std::to_string(status.at("config").at("version").to_number<std::int64_t>()) == v2);
    BOOST_TEST(std::to_string(status.at("config").at("persistedVersion").to_number<std::int64_t>()) == v1);
    const auto metrics = body_of(http_get(port, "/metrics"));
    BOOST_TEST(contains(metrics, "tether_config_persisted_at " + v1), metrics);
    BOOST_TEST(!contains(metrics, "tether_config_persist_failures_total 0\n"), metrics);
    BOOST_TEST(tether::test::read_file(state / "config.json") == saved);
    BOOST_TEST(tether::test::read_file(state / "state.json") == identity);
    BOOST_TEST(tether::test::read_file(out / "config.json") == "{\"flags\":{\"one\":true}}\n");
    for (const auto& e : std::filesystem::directory_iterator(state))
        BOOST_TEST(!contains(e.path().filename().string(), ".tmp"), e.path());
    BOOST_TEST(agent->wait_output(
                   [&](const std::string& e) { return tether::test::count(e, "heartbeat.ok") > beats; }, 15s),
               "heartbeats stopped with the disk full");

    // Space returns: both files catch up without another publish.
    std::filesystem::remove(disk.at / "filler");
    BOOST_TEST_REQUIRE(agent->wait_output(said("config.persisted", v2), 15s), agent->err_when_printed());
    BOOST_TEST_REQUIRE(agent->wait_output(said("config.rendered", v2), 15s), agent->err_when_printed());
    BOOST_TEST(contains(tether::test::read_file(state / "config.json"), "\"two\":true"));
    BOOST_TEST(tether::test::read_file(out / "config.json") == "{\"flags\":{\"two\":true}}\n");
    BOOST_TEST(follower->wait_output(
                   [&](const std::string& s) {
                       const auto l = lines_starting(s, "hup");
                       return !l.empty() && fields(l.back())[2] == v2 && contains(l.back(), "\"two\":true");
                   },
                   15s, true),
               follower->out_when_printed() << follower->err_when_printed());
    const auto after = boost::json::parse(body_of(http_get(port, "/status")));
    BOOST_TEST(std::to_string(after.at("config").at("persistedVersion").to_number<std::int64_t>()) == v2);

    // exec ends with its child's status: the Python child dies of SIGTERM.
    follower->signal(SIGTERM);
    BOOST_TEST(follower->wait_for(10s).value_or(-1) == 128 + SIGTERM, follower->err_when_printed());
    agent->signal(SIGTERM);
    BOOST_TEST(agent->wait_for(10s).value_or(-1) == 0, agent->err_when_printed());
}

BOOST_AUTO_TEST_CASE(a_publish_reaches_the_rendered_file_and_the_watch_streams_within_a_second)
{
    auto gw = std::make_unique<gateway_process>();
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto out = dir.path() / "out";
    enroll(*gw, state);
    const int port = free_port();
    auto agent = run_agent(state, {"--health-listen", "127.0.0.1:" + std::to_string(port), "--config-out",
                                   out.string(), "--require-config"});
    BOOST_TEST_REQUIRE(
        agent->wait_output(
            [](const std::string& e) { return contains(e, "heartbeat.ok") && contains(e, "sse.connected"); },
            15s),
        agent->err_when_printed());
    // Nothing applied yet: not ready (--require-config), nothing to read.
    BOOST_TEST(contains(http_get(port, "/readyz"), "no config applied yet"));
    BOOST_TEST(http_get(port, "/v1/config").starts_with("HTTP/1.0 503"));
    BOOST_TEST(!std::filesystem::exists(out / "config.json"));

    child_process file(std::filesystem::path("/usr/bin/python3"),
                       {"-c", file_reader, (out / "config.json").string()});
    child_process all("/usr/bin/python3", {"-c", sse_reader, std::to_string(port), "/v1/config/events"});
    child_process flags("/usr/bin/python3",
                        {"-c", sse_reader, std::to_string(port), "/v1/config/events?keys=flags"});
    BOOST_TEST_REQUIRE(
        file.wait_output([](const std::string& s) { return contains(s, "ready"); }, 10s, true));
    for (auto* r : {&all, &flags})
        BOOST_TEST_REQUIRE(
            r->wait_output([](const std::string& s) { return contains(s, "status 200 text/event-stream"); },
                           10s, true),
            r->out_when_printed() << r->err_when_printed());

    // The agent fetched once as its stream connected; fetches are at least
    // a second apart (config_sync_task's min_fetch_interval).
    std::this_thread::sleep_for(1200ms);
    const auto v1 = gw->publish("acme", R"({"flags": {"x": true}, "blockedIps": ["203.0.113.0/24"]})");
    const auto mark = std::string("203.0.113.0/24");
    for (auto* r : {&file, &all, &flags}) {
        BOOST_TEST_REQUIRE(
            r->wait_output(
                [&](const std::string& s) { return seen(s, r == &flags ? "\"x\"" : mark).has_value(); }, 10s,
                true),
            r->out_when_printed() << r->err_when_printed() << agent->err_when_printed());
        const auto ms = ms_after_publish(v1, seen(r->out(), r == &flags ? "\"x\"" : mark)->first);
        BOOST_TEST(ms < 1000, "reached a reader " << ms << " ms after the publish");
        BOOST_TEST_MESSAGE("reached a reader " << ms << " ms after the publish");
    }
    const std::string doc1 = R"({"flags":{"x":true},"blockedIps":["203.0.113.0/24"]})";
    BOOST_TEST(seen(file.out(), mark)->second == doc1);
    BOOST_TEST(seen(all.out(), mark)->second == "config " + v1 + " " + doc1);
    BOOST_TEST(seen(flags.out(), "\"x\"")->second == "config " + v1 + " {\"flags\":{\"x\":true}}");

    // The document, its ETag, a conditional GET, readiness, /status.
    const auto got = http_get(port, "/v1/config");
    BOOST_TEST(got.starts_with("HTTP/1.0 200"), got);
    BOOST_TEST(contains(got, "ETag: \"" + v1 + "\""), got);
    BOOST_TEST(body_of(got) == doc1 + "\n");
    BOOST_TEST(http_get(port, "/v1/config", "If-None-Match: \"" + v1 + "\"\r\n").starts_with("HTTP/1.0 304"));
    BOOST_TEST(http_get(port, "/v1/config", "If-None-Match: \"1\"\r\n").starts_with("HTTP/1.0 200"));
    BOOST_TEST(body_of(http_get(port, "/v1/config?keys=blockedIps")) ==
               "{\"blockedIps\":[\"203.0.113.0/24\"]}\n");
    BOOST_TEST(http_get(port, "/v1/config?keys=a%20b").starts_with("HTTP/1.0 400"));
    BOOST_TEST(http_get(port, "/readyz").starts_with("HTTP/1.0 200"));
    const auto status = boost::json::parse(body_of(http_get(port, "/status")));
    BOOST_TEST(status.at("config").at("version").to_number<std::int64_t>() == std::stoll(v1));
    BOOST_TEST(status.at("config").at("appliedAt").to_number<std::int64_t>() > 0);
    BOOST_TEST(status.at("config").at("lastError").is_null());

    // The directory as Kubernetes projects a ConfigMap.
    BOOST_TEST(std::filesystem::read_symlink(out / "config.json").string() == "..data/config.json");
    BOOST_TEST(std::filesystem::read_symlink(out / "..data").string() == ".." + v1);
    struct stat st {};
    BOOST_TEST_REQUIRE(::stat((out / "config.json").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777U) == 0640U);

    // A change that leaves flags alone: the full stream sees it, the keyed
    // one does not.
    const auto v2 = gw->publish("acme", R"({"flags": {"x": true}, "blockedIps": ["198.51.100.0/24"]})");
    BOOST_TEST_REQUIRE(
        all.wait_output([](const std::string& s) { return contains(s, "198.51.100.0/24"); }, 10s, true),
        all.out_when_printed());
    BOOST_TEST_REQUIRE(
        file.wait_output([](const std::string& s) { return contains(s, "198.51.100.0/24"); }, 10s, true));
    std::this_thread::sleep_for(300ms);
    BOOST_TEST(tether::test::count(flags.out(), "config ") == 1, flags.out_when_printed());
    BOOST_TEST(contains(all.out(), "config " + v2 + " "));

    // Resuming with Last-Event-ID: nothing for a reader that has the
    // current version; the current one for a reader behind.
    child_process behind("/usr/bin/python3", {"-c", R"(
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/v1/config/events", headers={"Last-Event-ID": sys.argv[2]})
r = c.getresponse()
try:
    while True:
        line = r.readline()
        if not line: break
        print(line.decode().rstrip("\n"), flush=True)
except Exception:
    pass
)",
                                              std::to_string(port), v1});
    BOOST_TEST_REQUIRE(
        behind.wait_output([&](const std::string& s) { return contains(s, "id: " + v2); }, 10s, true),
        behind.out_when_printed() << behind.err_when_printed());

    // Restarted with the gateway gone: the last good config is rendered
    // before any network.
    agent->signal(SIGTERM);
    BOOST_TEST_REQUIRE(agent->wait_for(5s).value_or(-1) == 0, agent->err_when_printed());
    gw.reset();
    std::filesystem::remove_all(out);
    auto again = run_agent(state, {"--config-out", out.string()});
    BOOST_TEST_REQUIRE(
        again->wait_output([](const std::string& e) { return contains(e, "config.rendered"); }, 10s),
        again->err_when_printed());
    BOOST_TEST(tether::test::read_file(out / "config.json") ==
               R"({"flags":{"x":true},"blockedIps":["198.51.100.0/24"]})"
               "\n");
    again->signal(SIGTERM);
    BOOST_TEST(again->wait_for(5s).value_or(-1) == 0);
}

// The README's examples ("Using the config in your service"), as written.
BOOST_AUTO_TEST_CASE(the_readme_examples_follow_publishes)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto out = dir.path() / "out";
    enroll(gw, state);
    const int port = free_port();
    auto agent = run_agent(
        state, {"--health-listen", "127.0.0.1:" + std::to_string(port), "--config-out", out.string()});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 15s),
        agent->err_when_printed());
    const auto v1 = gw.publish("acme", R"({"flags": {"beta": false}})");
    const std::filesystem::path examples = TETHER_SOURCE_DIR "/docs/examples";
    child_process follow(examples / "follow-config.py",
                         {"http://127.0.0.1:" + std::to_string(port), "flags"});
    child_process watch(examples / "watch-config-dir.sh", {out.string()});
    const auto line1 = "config " + v1 + " {\"flags\": {\"beta\": false}}";
    BOOST_TEST_REQUIRE(
        follow.wait_output([&](const std::string& s) { return contains(s, line1); }, 10s, true),
        follow.out_when_printed() << follow.err_when_printed());
    BOOST_TEST_REQUIRE(
        watch.wait_output([&](const std::string& s) { return contains(s, "config " + v1 + " {\"flags\""); },
                          10s, true),
        watch.out_when_printed() << watch.err_when_printed());
    std::this_thread::sleep_for(300ms);  // inotifywait is watching by now

    const auto v2 = gw.publish("acme", R"({"flags": {"beta": true}})");
    BOOST_TEST_REQUIRE(follow.wait_output(
                           [&](const std::string& s) {
                               return contains(s, "config " + v2 + " {\"flags\": {\"beta\": true}}");
                           },
                           10s, true),
                       follow.out_when_printed() << follow.err_when_printed());
    BOOST_TEST_REQUIRE(watch.wait_output(
                           [&](const std::string& s) {
                               return contains(s, "config " + v2 + " {\"flags\":{\"beta\":true}}");
                           },
                           10s, true),
                       watch.out_when_printed() << watch.err_when_printed());
    // The third: a shell service under `tether exec`, reloading on SIGHUP.
    child_process sighup(binary("tether"),
                         {"exec", "--state-dir", state.string(), "--on-config-change", "signal:SIGHUP",
                          "--wait-for-config", "--", (examples / "reload-on-sighup.sh").string()});
    BOOST_TEST_REQUIRE(
        sighup.wait_output(
            [](const std::string& s) { return contains(s, "loaded {\"flags\":{\"beta\":true}}"); }, 10s,
            true),
        sighup.out_when_printed() << sighup.err_when_printed());
    std::this_thread::sleep_for(1200ms);  // the agent's fetches are a second apart
    gw.publish("acme", R"({"flags": {"beta": false}, "limit": 3})");
    BOOST_TEST_REQUIRE(sighup.wait_output(
                           [](const std::string& s) {
                               return contains(s, "loaded {\"flags\":{\"beta\":false},\"limit\":3}");
                           },
                           10s, true),
                       sighup.out_when_printed() << sighup.err_when_printed());

    sighup.signal(SIGTERM);
    BOOST_TEST(sighup.wait_for(10s).has_value(), sighup.err_when_printed());

    // One line per version each, nothing twice. The third publish reached
    // the SIGHUP example; the other two may print it a moment later.
    for (auto* p : {&follow, &watch})
        (void)p->wait_output([](const std::string& o) { return tether::test::count(o, "config ") >= 3; }, 10s,
                             true);
    BOOST_TEST(tether::test::count(follow.out(), "config ") == 3, follow.out_when_printed());
    BOOST_TEST(tether::test::count(watch.out(), "config ") == 3, watch.out_when_printed());
}

// One GET over the Unix socket as `who` (setpriv arguments; empty: us);
// prints the status line, or "refused: ..." / "closed".
std::string unix_get(const std::filesystem::path& sock, const std::string& path, std::vector<std::string> who)
{
    constexpr const char* client = R"(
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused:", e.strerror, flush=True)
    sys.exit(0)
try:
    s.sendall(("GET " + sys.argv[2] + " HTTP/1.0\r\n\r\n").encode())
except OSError:
    pass
data = b""
while True:
    try:
        chunk = s.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
print(data.decode().split("\r\n")[0] if data else "closed", flush=True)
)";
    std::vector<std::string> args = std::move(who);
    std::filesystem::path exe = "/usr/bin/python3";
    if (!args.empty()) {
        exe = "/usr/bin/setpriv";
        args.emplace_back("/usr/bin/python3");
    }
    args.insert(args.end(), {"-c", client, sock.string(), path});
    const auto r = tether::test::run(exe, args, {}, 20s);
    return r.out + r.err;
}

BOOST_AUTO_TEST_CASE(the_unix_socket_answers_by_peer_credentials)
{
    if (::geteuid() != 0) {
        BOOST_TEST_MESSAGE("skipped: needs root to run a peer as nobody");
        return;
    }
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    // Others must reach the socket's directory for the file mode and the
    // credentials to be what decides.
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all |
                                                 std::filesystem::perms::group_exec |
                                                 std::filesystem::perms::others_exec);
    const auto sock = dir.path() / "agent.sock";
    auto agent = run_agent(state, {"--local-socket", sock.string(), "--local-socket-group", "nogroup"});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "local.listening"); }, 15s),
        agent->err_when_printed());
    struct stat st {};
    BOOST_TEST_REQUIRE(::stat(sock.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777U) == 0660U);
    BOOST_TEST(st.st_gid == 65534U);

    BOOST_TEST(contains(unix_get(sock, "/livez", {}), "HTTP/1.0 200"));  // our uid
    const std::vector<std::string> member{"--reuid=nobody", "--regid=nogroup", "--clear-groups"};
    BOOST_TEST(contains(unix_get(sock, "/v1/config", member), "HTTP/1.0 503"));  // the group: no config yet
    const std::vector<std::string> stranger{"--reuid=nobody", "--regid=daemon", "--clear-groups"};
    BOOST_TEST(contains(unix_get(sock, "/livez", stranger), "refused:"));  // the file mode
    // With the file opened to all, the credentials still keep a stranger out.
    ::chmod(sock.c_str(), 0666);
    const auto answer = unix_get(sock, "/livez", stranger);
    BOOST_TEST(contains(answer, "closed"), answer);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "local.refused"); }, 5s),
        agent->err_when_printed());
    BOOST_TEST(contains(agent->err(), "\"uid\":65534"), agent->err_when_printed());

    // A second agent cannot take a socket in use; the first removes it at exit.
    agent->signal(SIGTERM);
    BOOST_TEST_REQUIRE(agent->wait_for(5s).value_or(-1) == 0, agent->err_when_printed());
    BOOST_TEST(!std::filesystem::exists(sock));
}

BOOST_AUTO_TEST_CASE(bad_config_out_flags_are_start_up_errors)
{
    temp_dir dir;
    const auto state = dir.path() / "state";
    gateway_process gw;
    enroll(gw, state);
    tether::test::write_file(dir.path() / "a-file", "x");
    const auto refused = [&](std::vector<std::string> flags, const std::string& says) {
        std::vector<std::string> args{"run", "--state-dir", state.string()};
        args.insert(args.end(), flags.begin(), flags.end());
        const auto r = tether::test::run(binary("tether"), args, {}, 20s);
        BOOST_TEST(r.status == 2, r.err);
        BOOST_TEST(contains(r.err, says), r.err);
    };
    refused({"--config-out", (dir.path() / "a-file").string()}, "a-file");
    refused({"--config-out", state.string()}, "must not be the state directory");
    refused({"--config-out", (dir.path() / "out").string(), "--config-mode", "0999"}, "octal mode");
    refused({"--config-out", (dir.path() / "out").string(), "--config-mode", "0666"}, "lets others");
    refused({"--config-out", (dir.path() / "out").string(), "--config-mode", "0660"}, "lets others");
    refused({"--config-out", (dir.path() / "out").string(), "--config-group", "no-such-group-here"},
            "no group named");
    refused({"--config-mode", "0644"}, "needs --config-out");
}

BOOST_AUTO_TEST_CASE(exec_alone_signals_its_child_within_a_second_of_a_publish)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    // No `tether run`: exec keeps its own session and stream. The child
    // waits for the first config (--wait-for-config).
    auto exec = exec_child(state, {"--on-config-change", "signal:SIGHUP", "--wait-for-config"});
    BOOST_TEST_REQUIRE(
        exec->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 15s),
        exec->err_when_printed());
    std::this_thread::sleep_for(300ms);
    BOOST_TEST(lines_starting(exec->out(), "start").empty(),
               "started without a config: " << exec->out_when_printed());

    const auto v1 = gw.publish("acme", R"({"flags": {"a": true}})");
    BOOST_TEST_REQUIRE(
        exec->wait_output([](const std::string& s) { return contains(s, "start "); }, 10s, true),
        exec->out_when_printed() << exec->err_when_printed());
    const auto start = fields(lines_starting(exec->out(), "start").front());
    BOOST_TEST_REQUIRE(start.size() >= 5U, exec->out_when_printed());
    BOOST_TEST(start[2] == v1);
    BOOST_TEST(start[3] == R"({"flags":{"a":true}})");
    BOOST_TEST(start[4].starts_with("http://127.0.0.1:"), start[4]);
    BOOST_TEST(start[4].ends_with("/v1/config"), start[4]);

    // Fetches are at least a second apart (config_sync_task's
    // min_fetch_interval): the next publish comes after that, as a
    // publish an operator makes does.
    std::this_thread::sleep_for(1200ms);
    const auto v2 = gw.publish("acme", R"({"flags": {"a": false}})");
    BOOST_TEST_REQUIRE(exec->wait_output([](const std::string& s) { return contains(s, "hup "); }, 10s, true),
                       exec->out_when_printed() << exec->err_when_printed());
    const auto hup = fields(lines_starting(exec->out(), "hup").front());
    BOOST_TEST(hup[2] == v2);  // the file was rendered before the signal
    BOOST_TEST(hup[3] == R"({"flags":{"a":false}})");
    const auto ms = ms_after_publish(v2, std::stoll(hup[1]));
    BOOST_TEST(ms < 1000, "SIGHUP reached the child " << ms << " ms after the publish");
    BOOST_TEST_MESSAGE("SIGHUP " << ms << " ms after the publish");
    // The child's watch API serves the same document.
    const auto url = hup[4];
    const int api_port = std::stoi(url.substr(std::string("http://127.0.0.1:").size()));
    BOOST_TEST(body_of(http_get(api_port, "/v1/config")) == R"({"flags":{"a":false}})"
                                                            "\n");

    // SIGTERM is the child's; its death by it is exec's status.
    exec->signal(SIGTERM);
    const auto st = exec->wait_for(10s);
    BOOST_TEST_REQUIRE(st.has_value(), exec->err_when_printed());
    BOOST_TEST(*st == 128 + SIGTERM);  // the child's own death, passed on
    BOOST_TEST(lines_starting(exec->out(), "hup").size() == 1U, exec->out_when_printed());
    // The child's private config directory goes with exec.
    const auto rendered =
        boost::json::parse(tether::test::lines_with(exec->err(), "config.rendered").front());
    const std::filesystem::path private_dir(std::string(rendered.at("dir").as_string()));
    BOOST_TEST(private_dir.filename().string().starts_with("tether-exec-"), private_dir);
    BOOST_TEST(!std::filesystem::exists(private_dir), private_dir);
}

BOOST_AUTO_TEST_CASE(two_hundred_publishes_in_ten_seconds_signal_a_handful_and_end_on_the_last)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    // `tether run` holds the state directory: both execs follow it.
    auto agent = run_agent(state);
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 15s),
        agent->err_when_printed());
    gw.publish("acme", R"({"flags": {"on": true}})");
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "config.applied"); }, 15s),
        agent->err_when_printed());
    // The quiet time is longer than config_sync_task's min_fetch_interval
    // (1 s): while publishes keep coming, the execs see a change about
    // every second, so only MAX ends a wait. A quiet time equal to that
    // interval races the next fetch, and a slow machine then signals once a
    // fetch, not once a MAX.
    constexpr auto wait_max = 4s;
    auto signalled = exec_child(state, {"--on-config-change", "signal:SIGHUP", "--config-wait", "2s:4s"});
    auto restarted = exec_child(
        state, {"--on-config-change", "restart", "--config-wait", "2s:4s", "--kill-timeout", "2s"});
    for (auto* e : {signalled.get(), restarted.get()}) {
        BOOST_TEST_REQUIRE(
            e->wait_output([](const std::string& s) { return contains(s, "start "); }, 15s, true),
            e->out_when_printed() << e->err_when_printed());
        BOOST_TEST(contains(e->err(), "config.following"), e->err_when_printed());
    }

    const auto publishing = std::chrono::steady_clock::now();
    child_process pub("/usr/bin/python3",
                      {"-c", publisher, std::to_string(gw.port), gw.token_file.string(), "200", "0.045"});
    BOOST_TEST_REQUIRE(pub.wait_for(60s).value_or(-1) == 0, pub.err_when_printed());
    // One action per MAX while the publishes last, one for the last of them
    // and one for a window the first publish opened early: how long 200
    // publishes take depends on the machine, the bound follows it.
    const auto published_for = std::chrono::steady_clock::now() - publishing;
    const auto bound = static_cast<std::size_t>(published_for / wait_max) + 2U;
    std::string last;
    {
        std::istringstream lines(pub.out());
        for (std::string line; std::getline(lines, line);)
            if (!line.empty()) last = line;
    }
    BOOST_TEST_REQUIRE(!last.empty());
    // Both end on the last version: quiet for 1 s after the last change.
    for (auto* e : {signalled.get(), restarted.get()}) {
        BOOST_TEST_REQUIRE(e->wait_output(
                               [&](const std::string& s) {
                                   const auto tag = e == signalled.get() ? "hup" : "start";
                                   const auto l = lines_starting(s, tag);
                                   return !l.empty() && fields(l.back())[2] == last;
                               },
                               20s, true),
                           e->out_when_printed() << e->err_when_printed() << agent->err_when_printed());
    }
    const auto hups = lines_starting(signalled->out(), "hup");
    BOOST_TEST_MESSAGE("200 publishes in "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(published_for).count()
                       << " ms: " << hups.size() << " SIGHUPs, "
                       << lines_starting(restarted->out(), "start").size() - 1 << " restarts (at most "
                       << bound << ")");
    BOOST_TEST(hups.size() <= bound, signalled->out_when_printed());
    BOOST_TEST(hups.size() >= 1U);
    // Never backwards, never the same version twice.
    std::set<std::string> versions;
    std::string previous;
    for (const auto& l : hups) {
        const auto v = fields(l)[2];
        BOOST_TEST(versions.insert(v).second, "signalled twice for " << v);
        BOOST_TEST((previous.empty() || std::stoll(v) > std::stoll(previous)), "went back to " << v);
        previous = v;
    }
    const auto starts = lines_starting(restarted->out(), "start");
    BOOST_TEST(starts.size() <= bound + 1U, restarted->out_when_printed());  // the first start is no restart
    std::set<std::string> started;
    for (std::size_t i = 1; i < starts.size(); ++i)
        BOOST_TEST(started.insert(fields(starts[i])[2]).second, "restarted twice for one version");
    BOOST_TEST(tether::test::count(restarted->err(), "exec.child_killed") == 0);  // python stops on SIGTERM
    for (auto* e : {signalled.get(), restarted.get()}) {
        e->signal(SIGTERM);
        const int status = e->wait_for(10s).value_or(-1);
        BOOST_TEST(status == 128 + SIGTERM, "status " << status << "\n"
                                                      << e->out_when_printed() << e->err_when_printed());
    }
}

BOOST_AUTO_TEST_CASE(bad_exec_config_flags_are_start_up_errors)
{
    gateway_process gw;
    temp_dir dir;
    const auto state = dir.path() / "state";
    enroll(gw, state);
    const auto refused = [&](std::vector<std::string> flags, const std::string& says) {
        std::vector<std::string> args{"exec", "--state-dir", state.string()};
        args.insert(args.end(), flags.begin(), flags.end());
        args.insert(args.end(), {"--", "/bin/true"});
        const auto r = tether::test::run(binary("tether"), args, {}, 20s);
        BOOST_TEST(r.status == 2, r.err);
        BOOST_TEST(contains(r.err, says), r.err);
    };
    refused({"--on-config-change", "reload"}, "must be none, restart or signal:NAME");
    refused({"--on-config-change", "signal:SIGKILL"}, "must be none, restart or signal:NAME");
    refused({"--on-config-change", "signal:HUP", "--config-wait", "3s:1s"}, "MAX must not be below MIN");
    refused({"--on-config-change", "restart", "--kill-signal", "SIGNOPE"}, "must name a signal");
    refused({"--config-wait", "1s"}, "needs --on-config-change");
    refused({"--wait-for-config", "--config-listen", "0.0.0.0:0"}, "loopback");
    // A child that exits on its own still ends exec with its status.
    const auto own = tether::test::run(binary("tether"),
                                       {"exec", "--state-dir", state.string(), "--on-config-change",
                                        "restart", "--", "/bin/sh", "-c", "exit 7"},
                                       {}, 20s);
    BOOST_TEST(own.status == 7, own.err);
    temp_dir empty;
    const auto r = tether::test::run(
        binary("tether"),
        {"exec", "--state-dir", (empty.path() / "none").string(), "--wait-for-config", "--", "/bin/true"});
    BOOST_TEST(r.status == 2, r.err);
    BOOST_TEST(contains(r.err, "need an enrolled identity"), r.err);
}

BOOST_AUTO_TEST_SUITE_END()
