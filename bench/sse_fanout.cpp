// Event fan-out: N concurrent streams on one gateway, one publish, how long
// until every stream has it; and the gateway's memory per open stream.
//
//   build/release/bench/bench_sse_fanout [N=1000] [gateway binary]
//
// Starts a real tether-gateway on loopback (its own process, so its RSS is
// its own), opens N admin event streams (/v1/admin/events: no per-node
// stream tokens needed, same fan-out path as node streams), publishes one
// config and measures, per stream, publish-start -> event received.
// Bounded: loopback only, N <= 20000, every wait capped.
#include "net/http_client.hpp"
#include "net/rpc_client.hpp"
#include "support/gateway_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace asio = boost::asio;
using tether::awaitable;
using clk = std::chrono::steady_clock;

namespace {

long rss_kib(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

awaitable<void> open_stream(asio::ip::tcp::endpoint ep, std::string token, int* connected,
                            std::vector<double>* latencies, clk::time_point* published)
{
    const auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::socket s(ex);
    auto [cec] = co_await s.async_connect(ep, tether::nothrow);
    if (cec) co_return;
    const std::string req =
        "GET /v1/admin/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        "Authorization: Bearer " +
        token + "\r\n\r\n";
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(req), tether::nothrow);
    if (wec) co_return;
    asio::streambuf buf;
    auto [hec, hn] = co_await asio::async_read_until(s, buf, "\r\n\r\n", tether::nothrow);
    if (hec) co_return;
    ++*connected;
    auto [eec, en] = co_await asio::async_read_until(s, buf, "config-updated", tether::nothrow);
    if (eec) co_return;
    latencies->push_back(std::chrono::duration<double, std::milli>(clk::now() - *published).count());
}

}  // namespace

int main(int argc, char** argv)
{
    const int n = std::clamp(argc > 1 ? std::atoi(argv[1]) : 1000, 1, 20000);
    const std::string gateway = argc > 2 ? argv[2] : "build/release/app/tether-gateway";
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);  // the gateway child inherits it

    auto gw = tether::bench::gateway_process::start(
        gateway, "tether-fanout",
        {"--stream-limit-per-ip", "100000", "--stream-limit", "100000", "--admin-stream-limit-per-ip",
         "100000", "--admin-stream-limit", "100000", "--max-connections-per-ip", "100000", "--log-level",
         "warn"});
    if (!gw) {
        std::fprintf(stderr, "cannot start %s\n", gateway.c_str());
        return 1;
    }
    const int port = gw->port();
    const pid_t pid = gw->pid();
    const std::string token = gw->admin_token();

    asio::io_context ioc;
    const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
    const long rss_before = rss_kib(pid);
    int connected = 0;
    std::vector<double> latencies;
    latencies.reserve(static_cast<std::size_t>(n));
    clk::time_point published = clk::time_point::max();
    for (int i = 0; i < n; ++i)
        asio::co_spawn(ioc, open_stream(ep, token, &connected, &latencies, &published),
                       [](std::exception_ptr) {});
    const auto t_connect = clk::now();
    while (connected < n && clk::now() - t_connect < std::chrono::seconds(60))
        ioc.run_one_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const long rss_after = rss_kib(pid);

    tether::net::http_client http(ioc.get_executor(), nullptr);
    tether::net::rpc_client rpc(http, *tether::net::parse_url("http://127.0.0.1:" + std::to_string(port)));
    published = clk::now();
    bool sent = false;
    asio::co_spawn(
        ioc,
        [&]() -> awaitable<void> {
            const boost::json::object req{{"orgId", "bench"},
                                          {"config", boost::json::object{{"flags", boost::json::object{}}}}};
            const tether::secret admin(token);
            auto r = co_await rpc.call("tether.v1.AdminService", "PublishConfig", req, admin,
                                       std::chrono::seconds(30));
            sent = r.has_value();
        },
        [](std::exception_ptr) {});
    const auto t_pub = clk::now();
    while (latencies.size() < static_cast<std::size_t>(connected) &&
           clk::now() - t_pub < std::chrono::seconds(60))
        ioc.run_one_for(std::chrono::milliseconds(50));

    gw->stop();

    std::sort(latencies.begin(), latencies.end());
    const auto pct = [&](double p) {
        return latencies.empty()
                   ? -1.0
                   : latencies[std::min(latencies.size() - 1,
                                        static_cast<std::size_t>(p * static_cast<double>(latencies.size())))];
    };
    std::printf("streams %d/%d connected, publish %s, received %zu\n", connected, n, sent ? "ok" : "FAILED",
                latencies.size());
    std::printf("publish -> received: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", pct(0.50), pct(0.99),
                latencies.empty() ? -1.0 : latencies.back());
    std::printf("gateway RSS: %ld KiB idle, %ld KiB with streams, %.1f KiB per stream\n", rss_before,
                rss_after, connected ? static_cast<double>(rss_after - rss_before) / connected : 0.0);
    return connected == n && latencies.size() == static_cast<std::size_t>(n) ? 0 : 1;
}
