// The replicated control plane, for real: three tether-gateway replicas on
// one throwaway PostgreSQL behind HAProxy (deploy/haproxy/tether-gateway.cfg,
// the file operators copy), 60 real agents through HAProxy. Each step prints
// what it measured ("replicas N: ...") and asserts the promise it checks.
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/postgres_server.hpp"
#include "support/raw_http.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
namespace t = tether::test;
using t::contains;
using t::lines_with;
using t::now_ms_of_day;
using clk = std::chrono::steady_clock;

namespace {

constexpr std::size_t fleet_size = 60;

std::string stats(std::vector<std::int64_t> v)
{
    if (v.empty()) return "none";
    std::sort(v.begin(), v.end());
    const auto at = [&v](double q) {
        return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
    };
    std::ostringstream o;
    o << "n " << v.size() << ", p50 " << at(0.5) << " ms, p99 " << at(0.99) << " ms, max " << v.back()
      << " ms";
    return o.str();
}

struct agent {
    std::filesystem::path state;
    std::string node_id;
    std::unique_ptr<t::child_process> proc;
    [[nodiscard]] std::size_t count(const std::string& event) const
    {
        return lines_with(proc->err(), event).size();
    }
};

/// The HTTP status of GET `path` on a loopback port; 0 when nothing answers.
int status_of(int port, const std::string& path)
{
    const auto r = t::raw_exchange(
        port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 500ms);
    if (r.size() < 12 || !r.starts_with("HTTP/1.1 ")) return 0;
    return std::stoi(r.substr(9, 3));
}

bool wait_until(const std::function<bool()>& p, std::chrono::milliseconds cap)
{
    const auto deadline = clk::now() + cap;
    while (clk::now() < deadline) {
        if (p()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return p();
}

struct drill {
    t::postgres_server pg;
    t::temp_dir dir;
    std::vector<std::unique_ptr<t::gateway_process>> replicas;
    std::unique_ptr<t::child_process> haproxy;
    int lb_port = t::free_port();
    std::string lb_url = "http://127.0.0.1:" + std::to_string(lb_port);
    std::vector<agent> fleet{fleet_size};
    std::vector<std::string> published;

    drill()
    {
        const auto token = dir.path() / "admin.token";
        // HAProxy names each client in a PROXY header; but here every agent
        // is a client on 127.0.0.1, so the per-address limits must allow
        // the whole fleet.
        const std::vector<std::string> flags{"--database",
                                             pg.conninfo(),
                                             "--proxy-protocol-from",
                                             "127.0.0.1",
                                             "--stream-limit-per-ip",
                                             "10000",
                                             "--max-connections-per-ip",
                                             "100000",
                                             "--auth-failures-per-minute",
                                             "100000",
                                             "--drain-timeout",
                                             "5s"};
        // The first creates the shared admin token; the others read it.
        for (int i = 0; i < 3; ++i)
            replicas.push_back(std::make_unique<t::gateway_process>(t::free_port(), flags, token));
        for (auto& r : replicas)
            BOOST_TEST_REQUIRE(wait_until([&] { return status_of(r->port, "/readyz") == 200; }, 10s));
        t::child_process::options env;
        env.env_extra.push_back("TETHER_LB_BIND=127.0.0.1:" + std::to_string(lb_port));
        for (int i = 0; i < 3; ++i)
            env.env_extra.push_back("TETHER_GATEWAY_" + std::to_string(i + 1) + "=127.0.0.1:" +
                                    std::to_string(replicas[static_cast<std::size_t>(i)]->port));
        haproxy = std::make_unique<t::child_process>(
            "/usr/sbin/haproxy",
            std::vector<std::string>{"-db", "-f",
                                     std::string(TETHER_SOURCE_DIR) + "/deploy/haproxy/tether-gateway.cfg"},
            env);
        BOOST_TEST_REQUIRE(wait_until([&] { return status_of(lb_port, "/readyz") == 200; }, 10s),
                           haproxy->err_when_printed());
        for (std::size_t i = 0; i < fleet.size(); ++i) {
            fleet[i].state = dir.path() / ("node" + std::to_string(i));
            fleet[i].node_id =
                t::enroll(*replicas[i % 3], fleet[i].state, "fleet", "node" + std::to_string(i), lb_url);
        }
        for (auto& a : fleet) a.proc = t::run_agent(a.state);
        BOOST_TEST_REQUIRE(all([](const agent& a) { return a.count("sse.connected") >= 1; }, 60s));
    }

    bool all(const std::function<bool(const agent&)>& p, std::chrono::milliseconds cap)
    {
        return wait_until([&] { return std::all_of(fleet.begin(), fleet.end(), p); }, cap);
    }

    [[nodiscard]] std::size_t logins() const
    {
        std::size_t n = 0;
        for (const auto& a : fleet) n += a.count("session.refreshed");
        return n;
    }

    [[nodiscard]] std::size_t exited() const
    {
        std::size_t n = 0;
        for (const auto& a : fleet) n += a.proc->wait_for(0ms).has_value() ? 1 : 0;
        return n;
    }

    /// Publishes through `via` and waits until every agent applied it;
    /// returns each agent's publish -> config.applied time.
    std::vector<std::int64_t> publish_and_wait(t::gateway_process& via, const std::string& doc,
                                               std::chrono::milliseconds cap = 15s)
    {
        const auto at = via.publish("fleet", doc);
        const auto t0 = t::ms_of_day(at);
        published.push_back(at);
        const auto applied = [&at](const agent& a) {
            for (const auto& l : lines_with(a.proc->err(), "config.applied"))
                if (contains(l, at)) return true;
            return false;
        };
        BOOST_TEST(all(applied, cap), "not every agent applied " << at);
        std::vector<std::int64_t> latency;
        for (const auto& a : fleet)
            for (const auto& l : lines_with(a.proc->err(), "config.applied"))
                if (contains(l, at)) latency.push_back(t::ms_between(t0, t::ts_ms(l)));
        return latency;
    }

    /// Every agent applied every version published so far.
    [[nodiscard]] std::size_t versions_missed() const
    {
        std::size_t missed = 0;
        for (const auto& a : fleet) {
            const auto applied = lines_with(a.proc->err(), "config.applied");
            for (const auto& at : published)
                if (std::none_of(applied.begin(), applied.end(),
                                 [&at](const std::string& l) { return contains(l, at); }))
                    ++missed;
        }
        return missed;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(replicas)

BOOST_AUTO_TEST_CASE(three_replicas_on_postgres_behind_haproxy)
{
    drill d;
    // Each agent logged in once, at enrollment, and runs on that session:
    // from here on every login (session.refreshed) would be a new one.
    const auto logins_at_start = d.logins();
    std::cout << "replicas: 3 replicas, " << fleet_size << " agents through HAProxy, all streaming\n";

    // 0. Each replica knows the client behind HAProxy (send-proxy-v2): a
    //    failed login from 127.0.0.2 is logged with that address, where
    //    HAProxy itself connects from 127.0.0.1.
    {
        const std::string body = R"({"nodeId":"node-nobody","apiKey":"wrong"})";
        const auto answer = t::raw_exchange(d.lb_port,
                                            "POST /tether.v1.NodeService/BeginAuth HTTP/1.1\r\nHost: x\r\n"
                                            "Content-Type: application/json\r\nConnection: close\r\n"
                                            "Content-Length: " +
                                                std::to_string(body.size()) + "\r\n\r\n" + body,
                                            3000ms, "127.0.0.2");
        BOOST_TEST(answer.starts_with("HTTP/1.1 403"), answer);
        const bool named = wait_until(
            [&] {
                return std::any_of(d.replicas.begin(), d.replicas.end(), [](const auto& r) {
                    for (const auto& line : lines_with(r->proc->err(), "gateway.auth_failed"))
                        if (contains(line, R"("peer":"127.0.0.2")")) return true;
                    return false;
                });
            },
            5s);
        std::cout << "replicas 0: a failed login through HAProxy from 127.0.0.2 is logged with "
                  << (named ? "127.0.0.2" : "another address") << "\n";
        BOOST_TEST(named);
    }

    // 1. A publish through any replica is applied by every agent within 2 s.
    {
        const auto latency = d.publish_and_wait(*d.replicas[1], R"({"flags": {"step1": true}})");
        std::cout << "replicas 1: publish via replica 2 -> config.applied: " << stats(latency) << "\n";
        BOOST_TEST_REQUIRE(latency.size() == fleet_size);
        BOOST_TEST(*std::max_element(latency.begin(), latency.end()) <= 2000);
    }

    // 2. kill -9 of one replica: its agents stream again through the others
    //    within 10 s, nobody logs in again, and a version published while
    //    they were away reaches them by replay.
    {
        std::vector<std::size_t> drops_before;
        for (const auto& a : d.fleet) drops_before.push_back(a.count("sse.disconnected"));
        const auto killed_at = now_ms_of_day();
        d.replicas[2]->proc->signal(SIGKILL);
        BOOST_TEST(d.replicas[2]->proc->wait_for(5s).has_value());
        const auto latency = d.publish_and_wait(*d.replicas[0], R"({"flags": {"step2": true}})");
        std::vector<std::int64_t> back;
        for (std::size_t i = 0; i < d.fleet.size(); ++i) {
            auto& a = d.fleet[i];
            if (a.count("sse.disconnected") == drops_before[i]) continue;  // was not on the killed replica
            BOOST_TEST_REQUIRE(a.proc->wait_output(
                [&](const std::string& e) {
                    const auto c = lines_with(e, "sse.connected");
                    return !c.empty() && t::ts_ms(c.back()) > killed_at;
                },
                10s));
            const auto c = lines_with(a.proc->err(), "sse.connected");
            back.push_back(t::ts_ms(c.back()) - killed_at);
        }
        std::cout << "replicas 2: kill -9 of replica 3: " << back.size() << " agents streaming again after "
                  << stats(back) << "; the version published meanwhile applied after " << stats(latency)
                  << "; new logins " << d.logins() - logins_at_start << "\n";
        BOOST_TEST(!back.empty(), "no agent was streaming from replica 3 (leastconn spreads them)");
        if (!back.empty()) BOOST_TEST(*std::max_element(back.begin(), back.end()) <= 10'000);
        BOOST_TEST(d.logins() == logins_at_start);
        BOOST_TEST(d.versions_missed() == 0u);
        d.replicas[2]->start();
        BOOST_TEST_REQUIRE(wait_until([&] { return status_of(d.replicas[2]->port, "/readyz") == 200; }, 10s));
    }

    // 3. PostgreSQL restarted under the running fleet: no agent exits, every
    //    replica reports not ready and then ready, the next publish reaches all.
    {
        std::atomic<bool> polling{true};
        std::vector<std::atomic<int>> seen(3);  // bit 1: saw 503, bit 2: saw 200 after it
        std::thread poller([&] {
            while (polling)
                for (std::size_t i = 0; i < 3; ++i) {
                    const int s = status_of(d.replicas[i]->port, "/readyz");
                    if (s != 200) seen[i] |= 1;
                    if (s == 200 && (seen[i] & 1)) seen[i] |= 2;
                }
        });
        const auto t0 = clk::now();
        d.pg.restart();
        const bool all_back = wait_until(
            [&] {
                return std::all_of(seen.begin(), seen.end(),
                                   [](const std::atomic<int>& s) { return s == 3; });
            },
            20s);
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count();
        polling = false;
        poller.join();
        std::cout << "replicas 3: pg_ctl restart -m fast: every replica not ready, then ready again after "
                  << took << " ms\n";
        BOOST_TEST(all_back);
        const auto latency = d.publish_and_wait(*d.replicas[2], R"({"flags": {"step3": true}})");
        std::cout << "replicas 3: next publish -> config.applied: " << stats(latency) << "; agents exited "
                  << d.exited() << "\n";
        BOOST_TEST(d.exited() == 0u);
    }

    // 4. Rolling restart, one replica at a time (SIGTERM: drain, exit 0,
    //    start again): no agent exits, none misses a version, still 60 logins.
    {
        for (std::size_t i = 0; i < 3; ++i) {
            const auto t0 = clk::now();
            d.replicas[i]->proc->signal(SIGTERM);
            const auto st = d.replicas[i]->proc->wait_for(8s);
            const auto drained =
                std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count();
            BOOST_TEST(st.value_or(-1) == 0, d.replicas[i]->proc->err_when_printed());
            d.replicas[i]->start();
            BOOST_TEST_REQUIRE(
                wait_until([&] { return status_of(d.replicas[i]->port, "/readyz") == 200; }, 10s));
            const auto latency = d.publish_and_wait(
                *d.replicas[(i + 1) % 3], R"({"flags": {"rolling)" + std::to_string(i) + R"(": true}})");
            std::cout << "replicas 4: replica " << i + 1 << " drained (exit " << st.value_or(-1) << ") in "
                      << drained << " ms and is back; next publish -> applied: " << stats(latency) << "\n";
        }
        std::cout << "replicas 4: after the rolling restart: new logins " << d.logins() - logins_at_start
                  << ", versions missed " << d.versions_missed() << ", agents exited " << d.exited() << "\n";
        BOOST_TEST(d.exited() == 0u);
        BOOST_TEST(d.versions_missed() == 0u);
        BOOST_TEST(d.logins() == logins_at_start);
    }

    // 5. A node streaming from replica 1 (enrolled and run against it
    //    directly) is revoked through replica 3: it exits 3 within 1 s.
    {
        agent lone;
        lone.state = d.dir.path() / "lone";
        lone.node_id = t::enroll(*d.replicas[0], lone.state, "fleet", "lone");
        lone.proc = t::run_agent(lone.state);
        BOOST_TEST_REQUIRE(
            lone.proc->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 20s));
        std::this_thread::sleep_for(300ms);
        const auto r = t::run(t::binary("tether-gateway"), d.replicas[2]->admin({"revoke", lone.node_id}));
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
        const auto st = lone.proc->wait_for(3s);
        const auto exited = now_ms_of_day();
        // From the revocation's commit (replica 3 logs it after), not from
        // the admin CLI's start.
        const auto revoked = lines_with(d.replicas[2]->proc->err(), "gateway.node_revoked");
        BOOST_TEST_REQUIRE(revoked.size() == 1U, d.replicas[2]->proc->err_when_printed());
        const auto ms = t::ms_between(t::ts_ms(revoked.front()), exited);
        std::cout << "replicas 5: revoked via replica 3 while streaming from replica 1: exit "
                  << st.value_or(-1) << " after " << ms << " ms\n";
        BOOST_TEST(st.value_or(-1) == 3);
        BOOST_TEST(ms <= 1000);
    }

    // 6. Without a load balancer: an agent given every replica (--server
    //    A,B,C, shuffled once) fails over when the one it uses dies.
    {
        std::string list;
        for (const auto& r : d.replicas) list += (list.empty() ? "" : ",") + r->url;
        agent listed;
        listed.state = d.dir.path() / "listed";
        listed.node_id = t::enroll(*d.replicas[0], listed.state, "fleet", "listed", list);
        listed.proc = t::run_agent(listed.state);
        BOOST_TEST_REQUIRE(
            listed.proc->wait_output([](const std::string& e) { return contains(e, "sse.connected"); }, 20s));
        const auto first = lines_with(listed.proc->err(), "sse.connected").front();
        std::size_t used = 0;
        while (used < 3 && !contains(first, d.replicas[used]->url)) ++used;
        BOOST_TEST_REQUIRE(used < 3u, first);
        const auto killed_at = now_ms_of_day();
        d.replicas[used]->proc->signal(SIGKILL);
        BOOST_TEST(d.replicas[used]->proc->wait_for(5s).has_value());
        const auto other = [&](const std::string& e) {
            for (const auto& l : lines_with(e, "sse.connected"))
                if (t::ts_ms(l) > killed_at && !contains(l, d.replicas[used]->url)) return true;
            return false;
        };
        BOOST_TEST_REQUIRE(listed.proc->wait_output(other, 15s), listed.proc->err_when_printed());
        const auto via = d.replicas[(used + 1) % 3].get();
        const auto at = via->publish("fleet", R"({"flags": {"listed": true}})");
        BOOST_TEST(listed.proc->wait_output(
            [&at](const std::string& e) {
                for (const auto& l : lines_with(e, "config.applied"))
                    if (contains(l, at)) return true;
                return false;
            },
            10s));
        std::string back_at;
        for (const auto& l : lines_with(listed.proc->err(), "sse.connected"))
            if (t::ts_ms(l) > killed_at) {
                back_at = std::to_string(t::ts_ms(l) - killed_at);
                break;
            }
        std::cout << "replicas 6: --server with 3 URLs: replica " << used + 1
                  << " killed, streaming from another after " << back_at
                  << " ms, the next publish applied; exited: "
                  << (listed.proc->wait_for(0ms).has_value() ? "yes" : "no") << "\n";
        BOOST_TEST(!listed.proc->wait_for(0ms).has_value());
        listed.proc->signal(SIGTERM);
        BOOST_TEST(listed.proc->wait_for(5s).value_or(-1) == 0);
    }

    for (auto& a : d.fleet) a.proc->signal(SIGTERM);
    for (auto& a : d.fleet) BOOST_TEST(a.proc->wait_for(5s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
