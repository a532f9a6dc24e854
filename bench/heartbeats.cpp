// Heartbeats per second one gateway sustains, on whichever store it runs.
//
//   build/release/bench/bench_heartbeats [SECONDS=10] [NODES=1000] [CLIENTS=32] [gateway binary]
//       [-- extra serve flags, e.g. --database 'host=/tmp/pg user=postgres']
//
// bench/ha runs it against the SQLite file and against PostgreSQL. Starts a
// real tether-gateway on loopback, enrolls and logs in NODES nodes, then
// CLIENTS kept-alive connections send Heartbeat for the nodes in turn as
// fast as answers come, for SECONDS. Each node stays under the per-node
// limit (10 a second) as long as NODES * 10 exceeds the rate. Reports calls
// per second, latency p50/p99 and refusals. Most heartbeats are reads: the
// store writes last_seen at most once per 5 s per node.
#include "auth/keys.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "support/gateway_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
namespace pj = tether::net::protojson;
using tether::awaitable;
using clk = std::chrono::steady_clock;

namespace {

struct node {
    tether::secret session;
};

struct totals {
    std::size_t ok = 0, refused = 0;
    std::vector<double> us;
};

awaitable<void> enroll_all(tether::net::rpc_client& rpc, const std::string& token, int count,
                           std::vector<node>& out, bool& ok)
{
    const tether::secret admin(token), none;
    for (int i = 0; i < count; ++i) {
        const json::object code_req{{"orgId", "bench"}};
        auto code = co_await rpc.call("tether.v1.AdminService", "CreateEnrollmentCode", code_req, admin,
                                      std::chrono::seconds(10));
        if (!code) co_return;
        const auto key = tether::auth::generate_key();
        const json::object enroll{{"enrollmentCode", code->at("code")},
                                  {"nodeName", "bench" + std::to_string(i)},
                                  {"publicKey", pj::base64_encode(key.public_raw)}};
        auto n = co_await rpc.call("tether.v1.NodeService", "Enroll", enroll, none, std::chrono::seconds(10));
        if (!n) co_return;
        const std::string id(n->at("nodeId").as_string());
        const json::object begin{{"nodeId", id}, {"apiKey", n->at("apiKey")}};
        auto ch =
            co_await rpc.call("tether.v1.NodeService", "BeginAuth", begin, none, std::chrono::seconds(10));
        if (!ch) co_return;
        const auto challenge = *pj::base64_decode(ch->at("challenge").as_string(), "challenge");
        const auto sig = tether::auth::sign(key.private_pem, tether::auth::login_message(id, challenge));
        const json::object complete{{"nodeId", id},
                                    {"challenge", pj::base64_encode(challenge)},
                                    {"signature", pj::base64_encode(sig)}};
        auto s = co_await rpc.call("tether.v1.NodeService", "CompleteAuth", complete, none,
                                   std::chrono::seconds(10));
        if (!s) co_return;
        out.push_back({tether::secret(std::string(s->at("sessionToken").as_string()))});
    }
    ok = true;
}

awaitable<void> beat(tether::net::rpc_client& rpc, const std::vector<node>& nodes, std::size_t first,
                     std::size_t stride, clk::time_point until, totals& t)
{
    const json::object req{{"uptimeSeconds", "1"}, {"configUpdatedAt", "0"}, {"agentVersion", "bench"}};
    for (std::size_t i = first; clk::now() < until; i = (i + stride) % nodes.size()) {
        const auto t0 = clk::now();
        auto r = co_await rpc.call("tether.v1.NodeService", "Heartbeat", req, nodes[i].session,
                                   std::chrono::seconds(10));
        t.us.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
        if (r)
            ++t.ok;
        else
            ++t.refused;
    }
}

}  // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> args(argv + 1, argv + argc), extra{"--log-level", "error"};
    if (const auto dd = std::find(args.begin(), args.end(), "--"); dd != args.end()) {
        extra.insert(extra.end(), dd + 1, args.end());
        args.erase(dd, args.end());
    }
    const int seconds = std::clamp(args.size() > 0 ? std::atoi(args[0].c_str()) : 10, 1, 600);
    const int count = std::clamp(args.size() > 1 ? std::atoi(args[1].c_str()) : 1000, 1, 100'000);
    const int clients = std::clamp(args.size() > 2 ? std::atoi(args[2].c_str()) : 32, 1, 1000);
    const std::string gateway = args.size() > 3 ? args[3] : "build/release/app/tether-gateway";
    auto gw = tether::bench::gateway_process::start(gateway, "tether-hbbench", extra);
    if (!gw) {
        std::fprintf(stderr, "cannot start %s\n", gateway.c_str());
        return 1;
    }
    const auto base = *tether::net::parse_url(gw->base_url());
    asio::io_context ioc;
    tether::net::http_client setup_http(ioc.get_executor(), nullptr);
    tether::net::rpc_client setup(setup_http, base);
    std::vector<node> nodes;
    bool enrolled = false;
    asio::co_spawn(ioc, enroll_all(setup, gw->admin_token(), count, nodes, enrolled),
                   [](std::exception_ptr) {});
    ioc.run();
    if (!enrolled) {
        std::fprintf(stderr, "enrollment failed after %zu nodes\n", nodes.size());
        return 1;
    }
    ioc.restart();
    std::vector<std::unique_ptr<tether::net::http_client>> https;
    std::vector<std::unique_ptr<tether::net::rpc_client>> rpcs;
    std::vector<totals> per(static_cast<std::size_t>(clients));
    const auto started = clk::now();
    const auto until = started + std::chrono::seconds(seconds);
    for (int c = 0; c < clients; ++c) {
        https.push_back(std::make_unique<tether::net::http_client>(ioc.get_executor(), nullptr));
        rpcs.push_back(std::make_unique<tether::net::rpc_client>(*https.back(), base));
        asio::co_spawn(ioc,
                       beat(*rpcs.back(), nodes, static_cast<std::size_t>(c),
                            static_cast<std::size_t>(clients), until, per[static_cast<std::size_t>(c)]),
                       [](std::exception_ptr) {});
    }
    ioc.run();
    const double took = std::chrono::duration<double>(clk::now() - started).count();
    totals all;
    for (auto& t : per) {
        all.ok += t.ok;
        all.refused += t.refused;
        all.us.insert(all.us.end(), t.us.begin(), t.us.end());
    }
    std::sort(all.us.begin(), all.us.end());
    const auto pct = [&](double p) {
        return all.us.empty()
                   ? 0.0
                   : all.us[std::min(all.us.size() - 1,
                                     static_cast<std::size_t>(p * static_cast<double>(all.us.size())))];
    };
    gw->stop();
    std::printf(
        "heartbeats: %d nodes, %d connections, %.1f s: %.0f ok/s, %zu refused, p50 %.0f us, p99 %.0f us\n",
        count, clients, took, static_cast<double>(all.ok) / took, all.refused, pct(0.5), pct(0.99));
    return all.ok > 0 ? 0 : 1;
}
