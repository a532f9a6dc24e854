// Fault drills with the real binaries (issue 8). Each drill prints what it
// measured ("drill N: ...") and asserts the promise it checks.
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/small_disk.hpp"
#include "support/test_pki.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
namespace t = tether::test;
using t::contains;
using t::lines_with;
using t::now_ms_of_day;
using clk = std::chrono::steady_clock;

namespace {

struct agent {
    std::filesystem::path state;
    std::string node_id;
    std::unique_ptr<t::child_process> proc;
};

/// Waits until `pred` holds for every agent's log; false at the cap.
bool all(std::vector<agent>& fleet, const std::function<bool(const std::string&)>& pred,
         std::chrono::milliseconds cap)
{
    const auto deadline = clk::now() + cap;
    for (auto& a : fleet)
        if (!a.proc->wait_output(pred, std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::max(deadline - clk::now(), clk::duration(0)))))
            return false;
    return true;
}

/// When the certificate in `pem` ends, in seconds since the epoch.
std::int64_t not_after_of(const std::filesystem::path& pem)
{
    std::FILE* f = std::fopen(pem.c_str(), "r");
    BOOST_TEST_REQUIRE(f != nullptr);
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    BOOST_TEST_REQUIRE(cert != nullptr);
    std::tm tm{};
    const bool ok = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1;
    X509_free(cert);
    BOOST_TEST_REQUIRE(ok);
    return static_cast<std::int64_t>(::timegm(&tm));
}

/// Polls `pred` every 200 ms until it holds; false at the cap.
bool within(std::chrono::milliseconds cap, const std::function<bool()>& pred)
{
    const auto deadline = clk::now() + cap;
    for (;;) {
        if (pred()) return true;
        if (clk::now() >= deadline) return false;
        std::this_thread::sleep_for(200ms);
    }
}

std::string stats(std::vector<std::int64_t> v)
{
    std::sort(v.begin(), v.end());
    if (v.empty()) return "none";
    std::ostringstream o;
    o << "min " << v.front() << " ms, p50 " << v[v.size() / 2] << " ms, max " << v.back() << " ms";
    return o.str();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(drills)

BOOST_AUTO_TEST_CASE(fleet_of_20_publish_restart_revoke_sigterm)
{
    t::gateway_process gw(t::free_port());
    t::temp_dir dir;
    std::vector<agent> fleet(20);
    for (std::size_t i = 0; i < fleet.size(); ++i) {
        fleet[i].state = dir.path() / ("node" + std::to_string(i));
        fleet[i].node_id = t::enroll(gw, fleet[i].state, "fleet", "node" + std::to_string(i));
    }
    for (auto& a : fleet) a.proc = t::run_agent(a.state);
    BOOST_TEST_REQUIRE(all(
        fleet, [](const std::string& e) { return contains(e, "sse.connected"); }, 30s));

    // Drill 1: one publish reaches all 20 within 2 s.
    {
        const auto at = gw.publish("fleet", R"({"flags": {"drill1": true}})");
        const auto t0 = t::ms_of_day(at);
        const auto applied = [&at](const std::string& e) {
            return contains(e, "config.applied") && contains(e, at);
        };
        BOOST_TEST_REQUIRE(all(fleet, applied, 10s));
        std::vector<std::int64_t> latency;
        for (auto& a : fleet) {
            for (const auto& l : lines_with(a.proc->err(), "config.applied"))
                if (contains(l, at)) latency.push_back(t::ms_between(t0, t::ts_ms(l)));
        }
        std::cout << "drill 1: publish -> config.applied on 20 agents: " << stats(latency) << "\n";
        BOOST_TEST(*std::max_element(latency.begin(), latency.end()) <= 2000);
    }

    // Drill 2: the gateway is killed and restarted on the same port and
    // data; every agent keeps running and reconnects, spread by jitter, and
    // none logs in again (sessions are in the store, by hash).
    {
        std::vector<std::size_t> connects_before, logins_before;
        for (auto& a : fleet) {
            connects_before.push_back(lines_with(a.proc->err(), "sse.connected").size());
            logins_before.push_back(lines_with(a.proc->err(), "session.refreshed").size());
        }
        gw.proc->signal(SIGKILL);
        BOOST_TEST(gw.proc->wait_for(5s).has_value());
        std::this_thread::sleep_for(3s);
        const auto restarted = now_ms_of_day();
        gw.start();
        std::vector<std::int64_t> reconnect;
        for (std::size_t i = 0; i < fleet.size(); ++i) {
            const auto want = connects_before[i] + 1;
            BOOST_TEST_REQUIRE(fleet[i].proc->wait_output(
                [want](const std::string& e) { return lines_with(e, "sse.connected").size() >= want; }, 90s));
            reconnect.push_back(t::ts_ms(lines_with(fleet[i].proc->err(), "sse.connected")[want - 1]) -
                                restarted);
        }
        for (auto& a : fleet) BOOST_TEST(!a.proc->wait_for(0ms).has_value());  // nobody exited
        const auto [lo, hi] = std::minmax_element(reconnect.begin(), reconnect.end());
        std::cout << "drill 2: reconnect after gateway restart: " << stats(reconnect) << ", spread "
                  << (*hi - *lo) << " ms\n";
        BOOST_TEST(*hi - *lo >= 300, "reconnects came as one spike");
        const auto at = gw.publish("fleet", R"({"flags": {"drill2": true}})");
        BOOST_TEST(all(
            fleet, [&at](const std::string& e) { return contains(e, "config.applied") && contains(e, at); },
            10s));
        std::size_t relogins = 0;
        for (std::size_t i = 0; i < fleet.size(); ++i)
            relogins += lines_with(fleet[i].proc->err(), "session.refreshed").size() - logins_before[i];
        std::cout << "drill 2: logins after the restart: " << relogins << "\n";
        BOOST_TEST(relogins == 0u);
    }

    // Drill 3: one node revoked: its agent exits 3 at the event (or the next
    // heartbeat at the latest); the others carry on.
    {
        const auto t0 = clk::now();
        const auto r = t::run(t::binary("tether-gateway"), gw.admin({"revoke", fleet[0].node_id}));
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
        const auto st = fleet[0].proc->wait_for(6s);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count();
        std::cout << "drill 3: revoked agent exited with " << st.value_or(-1) << " after " << ms << " ms\n";
        BOOST_TEST(st.value_or(-1) == 3);
        std::this_thread::sleep_for(1s);
        for (std::size_t i = 1; i < fleet.size(); ++i) BOOST_TEST(!fleet[i].proc->wait_for(0ms).has_value());
    }

    // Drill 4: SIGTERM to every agent: all exit 0 within 2 s.
    {
        const auto t0 = clk::now();
        for (std::size_t i = 1; i < fleet.size(); ++i) fleet[i].proc->signal(SIGTERM);
        std::vector<std::int64_t> exit_ms;
        for (std::size_t i = 1; i < fleet.size(); ++i) {
            const auto st = fleet[i].proc->wait_for(2s);
            exit_ms.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count());
            BOOST_TEST(st.value_or(-1) == 0, "agent " << i << "\n" << fleet[i].proc->err_when_printed());
        }
        std::cout << "drill 4: SIGTERM -> exit 0 on 19 agents: " << stats(exit_ms) << "\n";
        BOOST_TEST(*std::max_element(exit_ms.begin(), exit_ms.end()) <= 2000);
    }
}

BOOST_AUTO_TEST_CASE(a_stalled_stream_is_dropped_after_the_read_timeout)
{
    // Drill 5: the gateway stops writing (SIGSTOP: TCP stays open, no
    // bytes); the agent gives up after its read timeout and reconnects once
    // the gateway is back.
    t::gateway_process gw;
    t::temp_dir dir;
    t::enroll(gw, dir.path() / "s");
    auto a = t::run_agent(dir.path() / "s", {"--stream-read-timeout", "3s"});
    BOOST_TEST_REQUIRE(
        a->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 15s));
    const auto stopped = now_ms_of_day();
    gw.proc->signal(SIGSTOP);
    const bool dropped = a->wait_output(
        [](const std::string& e) { return contains(e, "sse.disconnected") && contains(e, "timed out"); },
        10s);
    gw.proc->signal(SIGCONT);
    BOOST_TEST_REQUIRE(dropped, a->err_when_printed());
    const auto at = t::ts_ms(lines_with(a->err(), "sse.disconnected").front()) - stopped;
    BOOST_TEST_REQUIRE(
        a->wait_output([](const std::string& e) { return lines_with(e, "sse.connected").size() >= 2; }, 30s),
        a->err_when_printed());
    std::cout << "drill 5: stalled stream dropped " << at << " ms after the gateway stopped writing "
              << "(read timeout 3000 ms), reconnected after SIGCONT\n";
    BOOST_TEST(at <= 4000);
    a->signal(SIGTERM);
    BOOST_TEST(a->wait_for(5s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(pid_1_in_a_new_pid_namespace_exits_0_on_sigterm)
{
    t::gateway_process gw;
    t::temp_dir dir;
    t::enroll(gw, dir.path() / "p");
    t::child_process ns("/usr/bin/unshare", {"--pid", "--fork", "--mount-proc", t::binary("tether").string(),
                                             "run", "--state-dir", (dir.path() / "p").string(),
                                             "--heartbeat-interval", "5s", "--log-format", "json"});
    BOOST_TEST_REQUIRE(ns.wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 20s),
                       ns.err_when_printed());
    const pid_t inner = t::first_child(ns.pid());  // tether, PID 1 inside
    BOOST_TEST_REQUIRE(inner > 0);
    const auto t0 = clk::now();
    ::kill(inner, SIGTERM);
    const auto st = ns.wait_for(5s);
    std::cout << "drill pid1: tether run as PID 1 exited " << st.value_or(-1) << " "
              << std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count()
              << " ms after SIGTERM\n";
    BOOST_TEST(st.value_or(-1) == 0, ns.err_when_printed());
    BOOST_TEST(contains(ns.err(), "\"task\":\"reaper\""),
               ns.err_when_printed());  // as PID 1 it reaps orphans
}

BOOST_AUTO_TEST_CASE(pid_1_exec_reaps_the_orphans_its_child_leaves)
{
    t::temp_dir dir;
    const auto cred = dir.path() / "cred";
    t::write_private_file(cred, "x\n");
    t::child_process ns("/usr/bin/unshare", {"--pid", "--fork", "--mount-proc", t::binary("tether").string(),
                                             "exec", "--upstream", "http://127.0.0.1:9", "--credential-file",
                                             cred.string(), "--state-dir", (dir.path() / "st").string(), "--",
                                             TETHER_BROKER_CHILD, "orphan", "0.3"});
    std::this_thread::sleep_for(1200ms);  // the orphan has exited, the child still sleeps
    const auto states = t::child_states(t::first_child(ns.pid()));
    const auto zombies = std::count(states.begin(), states.end(), 'Z');
    const auto children = states.size();
    std::cout << "drill pid1-exec: " << children << " children of tether exec (PID 1), " << zombies
              << " zombies after the orphan exited\n";
    BOOST_TEST(zombies == 0);
    BOOST_TEST(ns.wait_for(10s).value_or(-1) == 0, ns.err_when_printed());
}

BOOST_AUTO_TEST_SUITE_END()

// A volume mounted from the host (or given to a Kubernetes fsGroup) is a
// data directory the gateway does not own and cannot chmod: accepted when
// others have no access to it, refused with what to run when they do.
BOOST_AUTO_TEST_CASE(gateway_data_dir_it_does_not_own)
{
    if (::geteuid() != 0) {
        BOOST_TEST_MESSAGE("skipped: needs root to run the gateway as nobody");
        return;
    }
    t::temp_dir dir;
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0755));  // nobody passes through
    const auto make = [&](const char* name, mode_t mode, gid_t gid) {
        const auto d = dir.path() / name;
        std::filesystem::create_directory(d);
        BOOST_TEST_REQUIRE(::chown(d.c_str(), 0, gid) == 0);
        BOOST_TEST_REQUIRE(::chmod(d.c_str(), mode) == 0);
        return d.string();
    };
    const gid_t nogroup = 65534;
    const auto mode_of = [](const std::string& p) {
        struct stat st {};
        return ::stat(p.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
    };
    const std::vector<std::string> as_nobody{"--reuid=65534", "--regid=65534", "--clear-groups",
                                             t::binary("tether-gateway").string()};
    const auto serve = [&](const std::string& data) {
        auto a = as_nobody;
        a.insert(a.end(), {"serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json"});
        return a;
    };

    // Group-owned, setgid, nobody in the group, no access for others: serves.
    const auto shared = make("shared", 02770, nogroup);
    t::child_process gw("/usr/bin/setpriv", serve(shared));
    BOOST_TEST_REQUIRE(
        gw.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        gw.err_when_printed());
    BOOST_TEST(contains(gw.err(), "gateway.data_dir_shared"), "the shared group is worth a warning");
    BOOST_TEST(mode_of(shared + "/tether.db") == 0600);
    gw.signal(SIGTERM);
    BOOST_TEST(gw.wait_for(10s).value_or(-1) == 0);

    // Open to everybody: refused, naming the fix.
    auto open = t::run("/usr/bin/setpriv", serve(make("open", 0777, 0)));
    BOOST_TEST(open.status == 2);
    BOOST_TEST(contains(open.err, "is open to every user"), open.err);
    BOOST_TEST(contains(open.err, "chmod 0700"), open.err);
    // Not writable: refused, naming the fix.
    auto closed = t::run("/usr/bin/setpriv", serve(make("closed", 0755, 0)));
    BOOST_TEST(closed.status == 2);
    BOOST_TEST(contains(closed.err, "is not writable by the gateway (uid 65534)"), closed.err);
    BOOST_TEST(contains(closed.err, "chown 65534"), closed.err);
    // Its own directory is still narrowed to 0700, as before.
    const auto own = dir.path() / "own";
    t::child_process mine(t::binary("tether-gateway"), {"serve", "--listen", "127.0.0.1:0", "--data-dir",
                                                        own.string(), "--log-format", "json"});
    BOOST_TEST_REQUIRE(
        mine.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        mine.err_when_printed());
    BOOST_TEST(mode_of(own.string()) == 0700);
    BOOST_TEST(!contains(mine.err(), "gateway.data_dir_shared"));
}

// A data directory on a read-only file system (a volume mounted ro, a
// read-only root with no volume): refused as that, not as a matter of
// owners and modes. Created by us (0755: narrowed first) or already 0700.
BOOST_AUTO_TEST_CASE(gateway_data_dir_on_a_read_only_file_system)
{
    if (!t::can_mount()) return;
    t::temp_dir dir;
    for (const mode_t mode : {0755, 0700}) {
        t::small_disk ro(dir.path() / ("ro" + std::to_string(mode)), "64k");
        BOOST_TEST_REQUIRE(::chmod(ro.at.c_str(), mode) == 0);
        BOOST_TEST_REQUIRE(::mount(nullptr, ro.at.c_str(), nullptr,
                                   MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) == 0,
                           std::strerror(errno));
        const auto r = t::run(t::binary("tether-gateway"),
                              {"serve", "--listen", "127.0.0.1:0", "--data-dir", ro.at.string()});
        BOOST_TEST(r.status == 2, mode);
        BOOST_TEST(contains(r.err, "is on a read-only file system"), r.err);
        BOOST_TEST(!contains(r.err, "chown"), r.err);
    }
}

// A first start on a full disk is refused with the reason, and leaves no
// empty admin.token behind to refuse every start after it.
BOOST_AUTO_TEST_CASE(gateway_first_start_on_a_full_disk_leaves_no_token_behind)
{
    if (!t::can_mount()) return;
    t::temp_dir dir;
    const t::small_disk disk(dir.path() / "disk", "256k");
    const auto data = disk.at / "gw";
    BOOST_TEST_REQUIRE(t::fill_up(disk.at / "filler") == ENOSPC);
    const std::vector<std::string> serve{"serve",       "--listen",     "127.0.0.1:0", "--data-dir",
                                         data.string(), "--log-format", "json"};
    const auto full = t::run(t::binary("tether-gateway"), serve);
    BOOST_TEST(full.status != 0);
    BOOST_TEST(contains(full.err, "cannot write admin token file"), full.err);
    BOOST_TEST(contains(full.err, "No space left on device"), full.err);
    BOOST_TEST(!std::filesystem::exists(data / "admin.token"));
    for (const auto& e : std::filesystem::directory_iterator(data))
        BOOST_TEST(!contains(e.path().filename().string(), ".tmp"), e.path());

    std::filesystem::remove(disk.at / "filler");
    t::child_process gw(t::binary("tether-gateway"), serve);
    BOOST_TEST_REQUIRE(
        gw.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        gw.err_when_printed());
    BOOST_TEST(contains(gw.err(), "\"created\":true"), gw.err_when_printed());
    BOOST_TEST(t::read_file(data / "admin.token").size() > 32U);
    gw.signal(SIGTERM);
    BOOST_TEST(gw.wait_for(10s).value_or(-1) == 0, gw.err_when_printed());
}

// Two gateways on one embedded database would share its rows but not its
// events (each fans out only what it committed): the second is refused,
// naming the first, which serves on. A gateway killed -9 takes its lock
// with it.
BOOST_AUTO_TEST_CASE(a_second_gateway_on_the_same_data_dir_is_refused)
{
    t::gateway_process gw;
    const std::vector<std::string> serve{"serve", "--listen", "127.0.0.1:0", "--data-dir",
                                         (gw.dir.path() / "gw").string()};
    const auto second = t::run(t::binary("tether-gateway"), serve);
    BOOST_TEST(second.status == 2);
    BOOST_TEST(contains(second.err,
                        "is in use by another tether-gateway (PID " + std::to_string(gw.proc->pid()) + ")"),
               second.err);
    BOOST_TEST(contains(second.err, "--database"), second.err);
    BOOST_TEST(t::run(t::binary("tether-gateway"), gw.admin({"nodes"})).status == 0);

    gw.proc->signal(SIGKILL);
    (void)gw.proc->wait_for(10s);
    gw.start();
    BOOST_TEST(t::run(t::binary("tether-gateway"), gw.admin({"nodes"})).status == 0);
}

// The admin token leaked: the operator replaces the file's contents (as a
// Kubernetes Secret update does, by a rename) and the gateway takes the new
// token within seconds, without a restart; the old one stops working. A
// replacement it cannot use keeps the token in use, and says why.
BOOST_AUTO_TEST_CASE(replacing_the_admin_token_file_rotates_the_token_without_a_restart)
{
    t::gateway_process gw;
    const auto& file = gw.token_file;
    const auto old_copy = gw.dir.path() / "old.token";
    std::filesystem::copy_file(file, old_copy);
    const auto old_token = t::read_file(file);
    const auto nodes_with = [&](const std::filesystem::path& token) {
        return t::run(t::binary("tether-gateway"),
                      {"admin", "--server", gw.url, "--admin-token-file", token.string(), "nodes"})
            .status;
    };
    BOOST_TEST_REQUIRE(nodes_with(old_copy) == 0);
    const std::string new_token = "rotated-0123456789abcdefghijklmnopqrstuv";
    t::write_private_file(gw.dir.path() / "next.token", new_token + "\n");
    std::filesystem::rename(gw.dir.path() / "next.token", file);
    BOOST_TEST(within(10s, [&] { return nodes_with(file) == 0; }), "the new token is not taken");
    BOOST_TEST(nodes_with(old_copy) != 0, "the old token still works");
    BOOST_TEST(gw.proc->wait_output(
        [](const std::string& e) { return contains(e, "gateway.admin_token_replaced"); }, 5s));

    // Unusable replacements: open to others, then empty. Each is said once,
    // and the token in use goes on working.
    std::filesystem::permissions(file, std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
    BOOST_TEST(gw.proc->wait_output(
                   [](const std::string& e) { return contains(e, "is accessible by others"); }, 10s),
               gw.proc->err_when_printed());
    t::write_private_file(gw.dir.path() / "keeps.token", new_token + "\n");
    BOOST_TEST(nodes_with(gw.dir.path() / "keeps.token") == 0);
    t::write_private_file(file, "");
    BOOST_TEST(gw.proc->wait_output([](const std::string& e) { return contains(e, "is empty"); }, 10s),
               gw.proc->err_when_printed());
    std::this_thread::sleep_for(4500ms);  // two more reads of the same empty file
    BOOST_TEST(lines_with(gw.proc->err(), "gateway.admin_token_unreadable").size() == 2u,
               gw.proc->err_when_printed());
    BOOST_TEST(nodes_with(gw.dir.path() / "keeps.token") == 0);
    BOOST_TEST(!contains(gw.proc->err(), new_token), "a token in the log");
    BOOST_TEST(!contains(gw.proc->err(), old_token.substr(0, old_token.find('\n'))), "a token in the log");
    gw.proc->signal(SIGTERM);
    BOOST_TEST(gw.proc->wait_for(10s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(a_renewed_tls_certificate_is_served_without_a_restart_and_streams_stay)
{
    // Two CAs, so a client that trusts one tells which certificate it met.
    t::temp_dir pki_dir;
    const auto first = t::make_pki(pki_dir.path() / "first", "gw", {"localhost"}, {"127.0.0.1"});
    std::this_thread::sleep_for(1100ms);  // so the two end a second apart
    const auto second = t::make_pki(pki_dir.path() / "second", "gw", {"localhost"}, {"127.0.0.1"});
    BOOST_TEST_REQUIRE(not_after_of(first.cert) != not_after_of(second.cert));
    const auto stranger = t::make_pki(pki_dir.path() / "second", "other", {"localhost"}, {"127.0.0.1"});
    const auto live_cert = pki_dir.path() / "live.pem";
    const auto live_key = pki_dir.path() / "live.key";
    std::filesystem::copy_file(first.cert, live_cert);
    std::filesystem::copy_file(first.key, live_key);
    t::gateway_process gw(0, {"--tls-cert", live_cert.string(), "--tls-key", live_key.string()});
    const auto url = "https://127.0.0.1:" + std::to_string(gw.port);
    const auto admin = [&](const t::pki_files& trust, std::vector<std::string> rest,
                           const std::string& stdin_data = {}) {
        std::vector<std::string> a{"admin",
                                   "--server",
                                   url,
                                   "--admin-token-file",
                                   gw.token_file.string(),
                                   "--ca-file",
                                   trust.ca_cert.string()};
        a.insert(a.end(), rest.begin(), rest.end());
        t::child_process::options in;
        in.stdin_data = stdin_data;
        return t::run(t::binary("tether-gateway"), a, in);
    };
    // /metrics through another TLS client (Python's), trusting `trust` only.
    const auto metrics = [&](const t::pki_files& trust) {
        const auto r =
            t::run("/usr/bin/python3",
                   {"-c",
                    "import ssl, sys, urllib.request\n"
                    "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
                    "token = open(sys.argv[3]).read().strip()\n"
                    "req = urllib.request.Request(sys.argv[2] + '/metrics',"
                    " headers={'Authorization': 'Bearer ' + token})\n"
                    "print(urllib.request.urlopen(req, context=ctx, timeout=10).read().decode())\n",
                    trust.ca_cert.string(), url, gw.token_file.string()});
        BOOST_TEST(r.status == 0, r.err);
        return r.out;
    };
    const auto ends = [](const t::pki_files& pki) {
        return "tether_gateway_tls_not_after_seconds " + std::to_string(not_after_of(pki.cert)) + "\n";
    };
    BOOST_TEST_REQUIRE(admin(first, {"nodes"}).status == 0);
    BOOST_TEST_REQUIRE(admin(second, {"nodes"}).status != 0);
    const auto before = metrics(first);
    BOOST_TEST(contains(before, ends(first)), before);
    const auto served = lines_with(gw.proc->err(), "gateway.tls_certificate");
    BOOST_TEST_REQUIRE(served.size() == 1u, gw.proc->err_when_printed());
    BOOST_TEST(contains(served.front(), "\"not_after\":\"20"), served.front());

    // An agent that trusts only the first CA, its event stream open.
    t::temp_dir dir;
    const auto state = dir.path() / "node";
    const auto code = admin(first, {"create-enrollment-code", "--org", "acme"});
    BOOST_TEST_REQUIRE(code.status == 0, code.err);
    const auto enrolled =
        t::run(t::binary("tether"), {"enroll", "--server", url, "--ca-file", first.ca_cert.string(), "--code",
                                     code.out.substr(0, code.out.find('\n')), "--state-dir", state.string()});
    BOOST_TEST_REQUIRE(enrolled.status == 0, enrolled.err);
    auto agent = t::run_agent(state, {"--ca-file", first.ca_cert.string()});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 20s),
        agent->err_when_printed());

    // Renewed as a tool does it: the certificate first, then its key. In
    // between the two do not match, and the one in use is kept.
    std::filesystem::copy_file(second.cert, pki_dir.path() / "next.pem");
    std::filesystem::copy_file(second.key, pki_dir.path() / "next.key");
    std::filesystem::rename(pki_dir.path() / "next.pem", live_cert);
    std::this_thread::sleep_for(2500ms);
    BOOST_TEST(admin(first, {"nodes"}).status == 0, "a certificate without its key was taken");
    std::filesystem::rename(pki_dir.path() / "next.key", live_key);
    BOOST_TEST(within(10s, [&] { return admin(second, {"nodes"}).status == 0; }),
               gw.proc->err_when_printed());
    BOOST_TEST(admin(first, {"nodes"}).status != 0, "new connections still meet the old certificate");
    BOOST_TEST(lines_with(gw.proc->err(), "gateway.tls_replaced").size() == 1u, gw.proc->err_when_printed());
    const auto after = metrics(second);
    BOOST_TEST(contains(after, ends(second)), after);

    // The stream opened under the old certificate carries the next config.
    const auto published =
        admin(second, {"publish-config", "--org", "acme", "-"}, R"({"flags":{"renewed":true}})");
    BOOST_TEST_REQUIRE(published.status == 0, published.err);
    const auto version = published.out.substr(0, published.out.find('\n'));
    BOOST_TEST(agent->wait_output(
                   [&](const std::string& e) {
                       for (const auto& l : lines_with(e, "config.applied"))
                           if (contains(l, version) && contains(l, "\"source\":\"event\"")) return true;
                       return false;
                   },
                   20s),
               agent->err_when_printed());
    BOOST_TEST(!contains(agent->err(), "sse.disconnected"), agent->err_when_printed());

    // A key of another certificate: said once, and the renewed one stays.
    const auto unusable_before = lines_with(gw.proc->err(), "gateway.tls_unusable").size();
    t::write_private_file(live_key, t::read_file(stranger.key));
    BOOST_TEST(gw.proc->wait_output(
                   [&](const std::string& e) {
                       return lines_with(e, "gateway.tls_unusable").size() > unusable_before;
                   },
                   10s),
               gw.proc->err_when_printed());
    std::this_thread::sleep_for(4500ms);  // two more reads of the same files
    BOOST_TEST(lines_with(gw.proc->err(), "gateway.tls_unusable").size() == unusable_before + 1,
               gw.proc->err_when_printed());
    BOOST_TEST(contains(gw.proc->err(), live_key.string()), gw.proc->err_when_printed());
    BOOST_TEST(admin(second, {"nodes"}).status == 0);
    BOOST_TEST(!contains(gw.proc->err(), "PRIVATE KEY"), "a key in the log");

    agent->signal(SIGTERM);
    BOOST_TEST(agent->wait_for(10s).value_or(-1) == 0, agent->err_when_printed());
    gw.proc->signal(SIGTERM);
    BOOST_TEST(gw.proc->wait_for(10s).value_or(-1) == 0, gw.proc->err_when_printed());
}

BOOST_AUTO_TEST_CASE(an_agent_follows_its_ca_file_through_a_ca_rotation_without_a_restart)
{
    // A CA rotation: agents trust the old CA, the bundle gains the new one,
    // then the gateway's certificate moves to the new CA. The agent read its
    // --ca-file once, at start: every agent of the fleet had to be restarted
    // between the two steps, or it lost the gateway at the second. Both CAs
    // bear one name, as a renewed CA often does.
    t::temp_dir pki_dir;
    const auto old_ca = t::make_pki(pki_dir.path() / "old", "gw", {"localhost"}, {"127.0.0.1"});
    const auto new_ca = t::make_pki(pki_dir.path() / "new", "gw", {"localhost"}, {"127.0.0.1"});
    const auto live_cert = pki_dir.path() / "live.pem";
    const auto live_key = pki_dir.path() / "live.key";
    std::filesystem::copy_file(old_ca.cert, live_cert);
    std::filesystem::copy_file(old_ca.key, live_key);
    const auto bundle = pki_dir.path() / "bundle.pem";
    std::filesystem::copy_file(old_ca.ca_cert, bundle);
    const auto publish_bundle = [&](const std::string& text) {
        t::write_file(pki_dir.path() / "bundle.next", text);
        std::filesystem::rename(pki_dir.path() / "bundle.next", bundle);
    };
    t::gateway_process gw(0, {"--tls-cert", live_cert.string(), "--tls-key", live_key.string()});
    const auto url = "https://127.0.0.1:" + std::to_string(gw.port);
    const auto admin = [&](std::vector<std::string> rest, const std::string& stdin_data = {}) {
        std::vector<std::string> a{
            "admin",     "--server",     url, "--admin-token-file", gw.token_file.string(),
            "--ca-file", bundle.string()};
        a.insert(a.end(), rest.begin(), rest.end());
        t::child_process::options in;
        in.stdin_data = stdin_data;
        return t::run(t::binary("tether-gateway"), a, in);
    };

    t::temp_dir dir;
    const auto state = dir.path() / "node";
    const auto code = admin({"create-enrollment-code", "--org", "acme"});
    BOOST_TEST_REQUIRE(code.status == 0, code.err);
    const auto enrolled =
        t::run(t::binary("tether"), {"enroll", "--server", url, "--ca-file", bundle.string(), "--code",
                                     code.out.substr(0, code.out.find('\n')), "--state-dir", state.string()});
    BOOST_TEST_REQUIRE(enrolled.status == 0, enrolled.err);
    auto agent = t::run_agent(state, {"--ca-file", bundle.string(), "--log-level", "debug"});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 20s),
        agent->err_when_printed());

    // A bundle it cannot use is said once, and the trust in use stays.
    publish_bundle("not a certificate\n");
    BOOST_TEST(
        agent->wait_output([](const std::string& e) { return contains(e, "tls.ca_file_unusable"); }, 25s),
        agent->err_when_printed());
    // Both CAs, as the first step of a rotation.
    publish_bundle(t::read_file(old_ca.ca_cert) + t::read_file(new_ca.ca_cert));
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "tls.ca_file_replaced"); }, 25s),
        agent->err_when_printed());
    BOOST_TEST(lines_with(agent->err(), "tls.ca_file_unusable").size() == 1u, agent->err_when_printed());

    // The gateway moves to the new CA; a restart makes the agent connect anew.
    gw.proc->signal(SIGTERM);
    BOOST_TEST_REQUIRE(gw.proc->wait_for(10s).value_or(-1) == 0, gw.proc->err_when_printed());
    std::filesystem::copy_file(new_ca.cert, live_cert, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(new_ca.key, live_key, std::filesystem::copy_options::overwrite_existing);
    gw.start();
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return lines_with(e, "sse.connected").size() >= 2; },
                           40s),
        agent->err_when_printed());
    const auto published = admin({"publish-config", "--org", "acme", "-"}, R"({"flags":{"rotated":true}})");
    BOOST_TEST_REQUIRE(published.status == 0, published.err);
    const auto version = published.out.substr(0, published.out.find('\n'));
    BOOST_TEST(agent->wait_output(
                   [&](const std::string& e) {
                       for (const auto& l : lines_with(e, "config.applied"))
                           if (contains(l, version)) return true;
                       return false;
                   },
                   20s),
               agent->err_when_printed());
    // The last step: the old CA leaves the bundle.
    publish_bundle(t::read_file(new_ca.ca_cert));
    BOOST_TEST(
        agent->wait_output(
            [](const std::string& e) { return lines_with(e, "tls.ca_file_replaced").size() >= 2; }, 25s),
        agent->err_when_printed());
    const auto beats = lines_with(agent->err(), "heartbeat.ok").size();
    BOOST_TEST(agent->wait_output(
                   [&](const std::string& e) { return lines_with(e, "heartbeat.ok").size() > beats; }, 15s),
               agent->err_when_printed());
    BOOST_TEST(!contains(agent->err(), "BEGIN CERTIFICATE"), "a bundle in the log");
    agent->signal(SIGTERM);
    BOOST_TEST(agent->wait_for(10s).value_or(-1) == 0, agent->err_when_printed());
}

BOOST_AUTO_TEST_CASE(a_backup_taken_while_serving_starts_a_gateway_with_the_same_fleet)
{
    t::gateway_process gw;
    t::temp_dir dir;
    const auto state = dir.path() / "node";
    const auto node_id = t::enroll(gw, state);
    const auto version = gw.publish("acme", R"({"flags":{"backedUp":true}})");
    // A node heartbeating every second: the database is being written
    // while the copy is taken.
    auto agent = t::run_agent(state, {"--heartbeat-interval", "1s"});
    BOOST_TEST_REQUIRE(
        agent->wait_output([](const std::string& e) { return contains(e, "heartbeat.ok"); }, 20s),
        agent->err_when_printed());

    const auto copy = dir.path() / "backup.db";
    const std::vector<std::string> backup{"backup", "--data-dir", (gw.dir.path() / "gw").string(),
                                          copy.string()};
    const auto taken = t::run(t::binary("tether-gateway"), backup);
    BOOST_TEST_REQUIRE(taken.status == 0, taken.err);
    struct stat st {};
    BOOST_TEST_REQUIRE(::stat(copy.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0600u);
    // A second copy never replaces the first, and leaves nothing behind.
    const auto size = std::filesystem::file_size(copy);
    const auto again = t::run(t::binary("tether-gateway"), backup);
    BOOST_TEST(again.status == 1);
    BOOST_TEST(contains(again.err, "File exists"), again.err);
    BOOST_TEST(std::filesystem::file_size(copy) == size);
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        BOOST_TEST(!contains(e.path().filename().string(), ".tmp-"), e.path());
    const auto none =
        t::run(t::binary("tether-gateway"),
               {"backup", "--data-dir", (dir.path() / "nowhere").string(), (dir.path() / "x.db").string()});
    BOOST_TEST(none.status == 1);
    BOOST_TEST(contains(none.err, "no database at"), none.err);

    // A gateway on the copy knows the node and the config.
    const auto restored = dir.path() / "restored";
    std::filesystem::create_directories(restored);
    std::filesystem::permissions(restored, std::filesystem::perms::owner_all);
    std::filesystem::copy_file(copy, restored / "tether.db");
    std::filesystem::copy_file(gw.token_file, restored / "admin.token");
    t::child_process second(t::binary("tether-gateway"), {"serve", "--listen", "127.0.0.1:0", "--data-dir",
                                                          restored.string(), "--log-format", "json"});
    BOOST_TEST_REQUIRE(
        second.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        second.err_when_printed());
    const auto port =
        boost::json::parse(lines_with(second.err(), "gateway.listening").front()).at("port").as_int64();
    const std::string url = "http://127.0.0.1:" + std::to_string(port);
    const auto nodes =
        t::run(t::binary("tether-gateway"), {"admin", "--server", url, "--admin-token-file",
                                             (restored / "admin.token").string(), "nodes", "--json"});
    BOOST_TEST_REQUIRE(nodes.status == 0, nodes.err);
    BOOST_TEST(contains(nodes.out, node_id), nodes.out);
    const auto rollout = t::run(t::binary("tether-gateway"),
                                {"admin", "--server", url, "--admin-token-file",
                                 (restored / "admin.token").string(), "rollout", "--org", "acme", "--json"});
    BOOST_TEST_REQUIRE(rollout.status == 0, rollout.err);
    BOOST_TEST(contains(rollout.out, version), rollout.out);
    second.signal(SIGTERM);
    BOOST_TEST(second.wait_for(10s).value_or(-1) == 0, second.err_when_printed());
}

// A Kubernetes Secret mounted with an fsGroup is 0440, group the pod's: the
// admin token may be read by a group the gateway is in, by no one else.
BOOST_AUTO_TEST_CASE(an_admin_token_guessable_or_unusable_in_a_header_is_refused)
{
    // Wrong admin tokens are counted, never throttled: one an attacker could
    // guess by trying must not start a gateway, nor reach the admin CLI.
    t::temp_dir dir;
    const std::vector<std::string> bad{"short-token", std::string(15, 'a'), "has a space 0123456789",
                                       "tab\there0123456789", "caf\xc3\xa9-0123456789ab"};
    int i = 0;
    for (const auto& token : bad) {
        const auto f = dir.path() / ("t" + std::to_string(i++));
        t::write_private_file(f, token + "\n");
        const auto refused = t::run(t::binary("tether-gateway"),
                                    {"serve", "--listen", "127.0.0.1:0", "--data-dir",
                                     (dir.path() / "d").string(), "--admin-token-file", f.string()});
        BOOST_TEST(refused.status != 0, token);
        BOOST_TEST(contains(refused.err, "16 to 4096 visible ASCII characters"), refused.err);
        BOOST_TEST(!contains(refused.err, token), "the token in an error: " << refused.err);
        const auto cli = t::run(t::binary("tether-gateway"), {"admin", "--server", "http://127.0.0.1:1",
                                                              "--admin-token-file", f.string(), "nodes"});
        BOOST_TEST(cli.status != 0, token);
        BOOST_TEST(contains(cli.err, "16 to 4096 visible ASCII characters"), cli.err);
    }
    const auto f = dir.path() / "ok";
    t::write_private_file(f, std::string(16, 'a') + "\n");
    t::child_process ok(t::binary("tether-gateway"),
                        {"serve", "--listen", "127.0.0.1:0", "--data-dir", (dir.path() / "d").string(),
                         "--admin-token-file", f.string(), "--log-format", "json"});
    BOOST_TEST_REQUIRE(
        ok.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        ok.err_when_printed());
    ok.signal(SIGTERM);
    BOOST_TEST(ok.wait_for(10s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(admin_token_file_readable_by_our_group_only)
{
    t::temp_dir dir;
    const auto token = [&](const char* name, mode_t mode, gid_t gid) {
        const auto f = dir.path() / name;
        t::write_file(f, "a-token-of-at-least-some-length\n");
        BOOST_TEST_REQUIRE(::chown(f.c_str(), ::geteuid(), gid) == 0);
        BOOST_TEST_REQUIRE(::chmod(f.c_str(), mode) == 0);
        return f.string();
    };
    const auto serve = [&](const std::string& file, const char* data) {
        return std::vector<std::string>{"serve",
                                        "--listen",
                                        "127.0.0.1:0",
                                        "--data-dir",
                                        (dir.path() / data).string(),
                                        "--admin-token-file",
                                        file,
                                        "--log-format",
                                        "json"};
    };
    t::child_process ours(t::binary("tether-gateway"), serve(token("ours", 0440, ::getegid()), "a"));
    BOOST_TEST_REQUIRE(
        ours.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        ours.err_when_printed());
    ours.signal(SIGTERM);
    BOOST_TEST(ours.wait_for(10s).value_or(-1) == 0);

    if (::getegid() != 65534) {
        const auto other_group =
            t::run(t::binary("tether-gateway"), serve(token("theirs", 0640, 65534), "b"));
        BOOST_TEST(other_group.status != 0);
        BOOST_TEST(contains(other_group.err, "a group the gateway is not in"), other_group.err);
    }
    for (const mode_t m : {0604, 0660, 0620}) {
        const auto refused = t::run(t::binary("tether-gateway"), serve(token("open", m, ::getegid()), "c"));
        BOOST_TEST(refused.status != 0, "mode " << std::oct << m);
        BOOST_TEST(contains(refused.err, "chmod 600"), refused.err);
    }
}
