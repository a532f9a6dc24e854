// BeginAuth timing: an unknown node id against a real node with a wrong api
// key. Both must cost the same, or the answer's timing says which node ids
// exist (the answer itself is the same permission_denied for both).
//
//   build/release/bench/bench_auth_timing [ROUNDS=2000] [gateway binary]
//
// Starts a real tether-gateway on loopback with the per-address failure
// throttle lifted, enrolls one node, then alternates the two calls on one
// kept-alive connection and reports the median and p90 of each, and the
// difference of the medians. Bounded: loopback only, ROUNDS <= 20000.
#include "auth/keys.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "support/gateway_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace asio = boost::asio;
namespace json = boost::json;
using tether::awaitable;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv)
{
    const int rounds = std::clamp(argc > 1 ? std::atoi(argv[1]) : 2000, 10, 20000);
    const std::string gateway = argc > 2 ? argv[2] : "build/release/app/tether-gateway";
    auto gw = tether::bench::gateway_process::start(
        gateway, "tether-authbench", {"--auth-failures-per-minute", "100000000", "--log-level", "error"});
    if (!gw) {
        std::fprintf(stderr, "cannot start %s\n", gateway.c_str());
        return 1;
    }
    const int port = gw->port();
    const std::string token = gw->admin_token();

    asio::io_context ioc;
    tether::net::http_client http(ioc.get_executor(), nullptr);
    tether::net::rpc_client rpc(http, *tether::net::parse_url("http://127.0.0.1:" + std::to_string(port)));
    std::vector<double> unknown, wrong;
    bool ok = false;
    asio::co_spawn(
        ioc,
        [&]() -> awaitable<void> {
            const tether::secret admin(token), none;
            const json::object code_req{{"orgId", "bench"}};
            auto code = co_await rpc.call("tether.v1.AdminService", "CreateEnrollmentCode", code_req, admin,
                                          std::chrono::seconds(10));
            if (!code) co_return;
            const auto key = tether::auth::generate_key();
            const json::object enroll{{"enrollmentCode", code->at("code")},
                                      {"nodeName", "bench"},
                                      {"publicKey", tether::net::protojson::base64_encode(key.public_raw)}};
            auto node =
                co_await rpc.call("tether.v1.NodeService", "Enroll", enroll, none, std::chrono::seconds(10));
            if (!node) co_return;
            const json::object real{{"nodeId", node->at("nodeId")},
                                    {"apiKey", "wrong-key-of-the-same-length-x"}};
            const json::object fake{{"nodeId", "node-doesnotexist00"},
                                    {"apiKey", "wrong-key-of-the-same-length-x"}};
            for (int i = 0; i < rounds; ++i) {
                for (int which = 0; which < 2; ++which) {
                    const auto t0 = clk::now();
                    auto r = co_await rpc.call("tether.v1.NodeService", "BeginAuth", which ? real : fake,
                                               none, std::chrono::seconds(10));
                    const double us = std::chrono::duration<double, std::micro>(clk::now() - t0).count();
                    if (r || r.error().c != tether::net::connect::code::permission_denied) co_return;
                    (which ? wrong : unknown).push_back(us);
                }
            }
            ok = true;
        },
        [](std::exception_ptr) {});
    ioc.run_for(std::chrono::minutes(5));

    gw->stop();
    if (!ok) {
        std::fprintf(stderr, "bench failed (gateway not answering as expected)\n");
        return 1;
    }
    const auto pct = [](std::vector<double> v, double p) {
        std::sort(v.begin(), v.end());
        return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
    };
    std::printf("BeginAuth, %d rounds each, one kept-alive connection:\n", rounds);
    std::printf("  unknown node id : p50 %.1f us, p90 %.1f us\n", pct(unknown, 0.5), pct(unknown, 0.9));
    std::printf("  wrong api key   : p50 %.1f us, p90 %.1f us\n", pct(wrong, 0.5), pct(wrong, 0.9));
    std::printf("  difference of medians: %.1f us\n", pct(wrong, 0.5) - pct(unknown, 0.5));
    return 0;
}
