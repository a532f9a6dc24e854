// Event fan-out: N open streams on one gateway, a series of publishes, how
// long until each stream has each event; the gateway's memory per stream;
// the CPU both sides used.
//
//   build/release/bench/bench_sse_fanout [N=1000] [options] [-- gateway flags]
//     --publishes K   events to publish (default 10)
//     --rate R        publishes per second (default 2)
//     --gateway BIN   default build/release/app/tether-gateway
//     --floor         no gateway: this process writes the same bytes to N
//                     loopback TCP connections in a tight loop, one send
//                     each, from one thread: what the machine's kernel
//                     allows, to read the gateway's numbers against
//     --attach PID PORT TOKEN_FILE
//                     measure a gateway already running on 127.0.0.1:PORT
//                     (under a profiler, say) instead of starting one
//
// Starts a real tether-gateway on loopback (its own process, so its RSS is
// its own), opens N admin event streams (/v1/admin/events: no per-node
// stream tokens needed, the same fan-out path as node streams) and
// publishes K configs from a second thread. The receiving side is one
// thread on raw epoll, so that it costs less per stream than the gateway
// and the numbers are the gateway's: its CPU is printed next to the
// gateway's. A stream's k-th event is the k-th publish (one publisher, in
// order); latency = publish start -> bytes read. Streams that end early are
// counted (an eviction of a healthy stream shows up there).
// Bounded: loopback only, N <= 20000, K <= 100000, every wait capped.
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "net/rpc_client.hpp"
#include "support/gateway_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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

/// utime + stime of a process, seconds.
double cpu_seconds(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), {});
    const auto close = all.rfind(')');
    if (close == std::string::npos) return -1;
    std::vector<std::string> f;
    std::size_t p = close + 2;
    while (p < all.size()) {
        const auto sp = all.find(' ', p);
        f.push_back(all.substr(p, sp - p));
        if (sp == std::string::npos) break;
        p = sp + 1;
    }
    // Fields 14 and 15 of stat; f[0] is field 3.
    return f.size() > 13 ? (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK))
                         : -1;
}

double self_cpu_seconds()
{
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const auto tv = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
    };
    return tv(u.ru_utime) + tv(u.ru_stime);
}

struct stream_state {
    int fd = -1;
    bool header = false;
    bool ended = false;
    std::size_t events = 0;
    std::string carry;  ///< bytes after the last complete event
};

constexpr std::string_view marker = "event: config-updated";

}  // namespace

int main(int argc, char** argv)
{
    const auto bench_start = clk::now();
    int n = 1000;
    int publishes = 10;
    double rate = 2;
    std::string gateway = "build/release/app/tether-gateway";
    std::vector<std::string> extra;
    bool floor = false;
    pid_t attach_pid = 0;
    int attach_port = 0;
    std::string attach_token;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&] {
            return i + 1 < argc ? std::string(argv[++i]) : std::string();
        };
        if (a == "--") {
            extra.assign(argv + i + 1, argv + argc);
            break;
        }
        if (a == "--publishes")
            publishes = std::clamp(std::atoi(value().c_str()), 1, 100000);
        else if (a == "--rate")
            rate = std::clamp(std::atof(value().c_str()), 0.1, 1000.0);
        else if (a == "--gateway")
            gateway = value();
        else if (a == "--floor")
            floor = true;
        else if (a == "--attach") {
            attach_pid = std::atoi(value().c_str());
            attach_port = std::atoi(value().c_str());
            std::ifstream tf(value());
            tf >> attach_token;
        } else
            n = std::clamp(std::atoi(a.c_str()), 1, 20000);
    }
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);  // the gateway child inherits it

    std::vector<std::string> flags{"--stream-limit-per-ip",       "100000", "--stream-limit",       "100000",
                                   "--admin-stream-limit-per-ip", "100000", "--admin-stream-limit", "100000",
                                   "--max-connections-per-ip",    "100000", "--log-level",          "warn"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    std::optional<tether::bench::gateway_process> gw;
    int floor_listener = -1;
    std::vector<int> floor_fds;
    if (floor) {
        floor_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in any{};
        any.sin_family = AF_INET;
        any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof any;
        if (::bind(floor_listener, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
            ::listen(floor_listener, 1024) != 0 ||
            ::getsockname(floor_listener, reinterpret_cast<sockaddr*>(&any), &len) != 0) {
            std::fprintf(stderr, "cannot listen: %s\n", std::strerror(errno));
            return 1;
        }
        attach_pid = ::getpid();
        attach_port = ntohs(any.sin_port);
    }
    if (attach_pid == 0) {
        auto started = tether::bench::gateway_process::start(gateway, "tether-fanout", flags);
        if (!started) {
            std::fprintf(stderr, "cannot start %s\n", gateway.c_str());
            return 1;
        }
        gw.emplace(std::move(*started));
    }
    const pid_t pid = gw ? gw->pid() : attach_pid;
    const std::string token = gw ? gw->admin_token() : attach_token;
    const int port = gw ? gw->port() : attach_port;
    const std::string base_url = "http://127.0.0.1:" + std::to_string(port);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    const long rss_before = rss_kib(pid);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<stream_state> streams(static_cast<std::size_t>(n));
    const std::string req =
        "GET /v1/admin/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        "Authorization: Bearer " +
        token + "\r\n\r\n";
    for (int i = 0; i < n; ++i) {
        auto& s = streams[static_cast<std::size_t>(i)];
        s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
            (!floor &&
             ::send(s.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))) {
            std::fprintf(stderr, "stream %d: cannot connect: %s\n", i, std::strerror(errno));
            return 1;
        }
        if (floor) {
            const int fd = ::accept4(floor_listener, nullptr, nullptr, SOCK_CLOEXEC);
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            floor_fds.push_back(fd);
            s.header = true;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<std::uint32_t>(i);
        ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
    }

    // Publish start by the configUpdatedAt it returned, and each event's
    // (configUpdatedAt, arrival): matched at the end, since an event often
    // arrives before its publish call has returned.
    std::mutex published_m;
    std::map<std::int64_t, std::int64_t> published_ns;
    struct arrival {
        std::int64_t at;
        std::int64_t ns;
    };
    std::vector<arrival> arrivals;
    arrivals.reserve(static_cast<std::size_t>(n) * static_cast<std::size_t>(publishes));
    std::size_t headers = floor ? streams.size() : 0;
    std::size_t ended = 0;
    char buf[16 * 1024];
    // One loop for both phases: headers first, then events.
    const auto pump = [&](int timeout_ms) {
        epoll_event evs[512];
        const int k = ::epoll_wait(ep, evs, 512, timeout_ms);
        const auto now = clk::now().time_since_epoch().count();
        for (int j = 0; j < k; ++j) {
            auto& s = streams[evs[j].data.u32];
            const auto got = ::recv(s.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (got <= 0) {
                if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
                if (ended < 5)
                    std::fprintf(stderr, "stream %u ended after %zu events at %.3f s: %s\n", evs[j].data.u32,
                                 s.events, std::chrono::duration<double>(clk::now() - bench_start).count(),
                                 got == 0 ? "closed by the gateway" : std::strerror(errno));
                s.ended = true;
                ++ended;
                continue;
            }
            std::string_view data(buf, static_cast<std::size_t>(got));
            if (!s.header) {
                const auto end = data.find("\r\n\r\n");
                if (end == std::string_view::npos) continue;  // loopback: the header comes in one read
                s.header = true;
                ++headers;
                data.remove_prefix(end + 4);
            }
            // Complete events only: a value may be split across reads.
            s.carry.append(data);
            std::string_view rest = s.carry;
            for (auto end = rest.find("\n\n"); end != std::string_view::npos; end = rest.find("\n\n")) {
                const auto event = rest.substr(0, end);
                rest.remove_prefix(end + 2);
                if (event.find(marker) == std::string_view::npos) continue;
                constexpr std::string_view key = "\"configUpdatedAt\":";
                const auto v = event.find(key);
                if (v == std::string_view::npos) continue;
                arrivals.push_back({std::atoll(event.data() + v + key.size()), now});
            }
            s.carry.erase(0, s.carry.size() - rest.size());
        }
    };
    const auto t_connect = clk::now();
    while (headers + ended < streams.size() && clk::now() - t_connect < std::chrono::seconds(60)) pump(50);
    const auto settle = clk::now();
    while (clk::now() - settle < std::chrono::milliseconds(500)) pump(50);
    const long rss_after = rss_kib(pid);
    const auto connected = headers;

    // The publisher: its own thread and event loop, so the receiving loop
    // above never waits for it.
    std::atomic<int> sent{0};
    std::atomic<int> failed{0};
    std::atomic<bool> done{false};
    const double gw_cpu0 = cpu_seconds(pid);
    const double self_cpu0 = self_cpu_seconds();
    std::thread publisher([&] {
        if (floor) {
            // The bytes of a gateway event of the same size, one send each.
            const auto period = std::chrono::duration<double>(1.0 / rate);
            const auto t0 = clk::now();
            for (int k = 0; k < publishes; ++k) {
                const std::string frame = tether::net::encode_chunk(
                    "id: " + std::to_string(k + 1) + "\nevent: config-updated\ndata: {\"configUpdatedAt\":" +
                    std::to_string(1'800'000'000'000 + k) + "}\n\n");
                std::this_thread::sleep_until(t0 + std::chrono::duration_cast<clk::duration>(period * k));
                {
                    const std::lock_guard lock(published_m);
                    published_ns[1'800'000'000'000 + k] = clk::now().time_since_epoch().count();
                }
                for (const int fd : floor_fds)
                    ::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
                ++sent;
            }
            done = true;
            return;
        }
        asio::io_context ioc;
        // One call per publish at its time, not one after the other: the
        // offered rate must not depend on how fast the gateway answers.
        const tether::secret admin(token);
        int finished = 0;
        const auto one = [&](int k) -> awaitable<void> {
            tether::net::http_client http(ioc.get_executor(), nullptr);
            tether::net::rpc_client rpc(http, *tether::net::parse_url(base_url));
            const boost::json::object body{
                {"orgId", "bench"},
                {"config", boost::json::object{{"flags", boost::json::object{{"k", k % 2 == 0}}}}}};
            const auto started = clk::now().time_since_epoch().count();
            auto r = co_await rpc.call("tether.v1.AdminService", "PublishConfig", body, admin,
                                       std::chrono::seconds(30));
            if (r) {
                ++sent;
                const auto* at = r->if_contains("configUpdatedAt");
                const std::lock_guard lock(published_m);
                if (at && at->is_string()) published_ns[std::atoll(at->get_string().c_str())] = started;
            } else if (failed++ == 0) {
                std::fprintf(stderr, "publish failed: %s\n", r.error().message.c_str());
            }
        };
        asio::co_spawn(
            ioc,
            [&]() -> awaitable<void> {
                const auto period = std::chrono::duration<double>(1.0 / rate);
                const auto t0 = clk::now();
                for (int k = 0; k < publishes; ++k) {
                    asio::steady_timer t(ioc, t0 + std::chrono::duration_cast<clk::duration>(period * k));
                    co_await t.async_wait(asio::use_awaitable);
                    asio::co_spawn(ioc, one(k), [&](std::exception_ptr e) {
                        if (e) ++failed;
                        if (++finished == publishes) done = true;
                    });
                }
            },
            [&](std::exception_ptr e) {
                if (e) {
                    ++failed;
                    done = true;
                }
            });
        ioc.run();
    });
    const auto expected = connected * static_cast<std::size_t>(publishes);
    const auto t_pub = clk::now();
    const auto cap = std::chrono::duration<double>(publishes / rate + 30);
    while ((!done || arrivals.size() + ended * static_cast<std::size_t>(publishes) < expected) &&
           clk::now() - t_pub < cap)
        pump(std::getenv("BENCH_SPIN") ? 0 : 20);
    const auto elapsed = std::chrono::duration<double>(clk::now() - t_pub).count();
    const double gw_cpu = floor ? 0 : cpu_seconds(pid) - gw_cpu0;
    const double self_cpu = self_cpu_seconds() - self_cpu0;
    publisher.join();
    if (gw) gw->stop();
    for (const int fd : floor_fds) ::close(fd);

    std::vector<double> latencies;
    latencies.reserve(arrivals.size());
    std::size_t unmatched = 0;
    for (const auto& a : arrivals) {
        const auto p = published_ns.find(a.at);
        if (p == published_ns.end()) {
            ++unmatched;
            continue;
        }
        latencies.push_back(static_cast<double>(a.ns - p->second) / 1e6);
    }
    std::sort(latencies.begin(), latencies.end());
    const auto pct = [&](double p) {
        return latencies.empty()
                   ? -1.0
                   : latencies[std::min(latencies.size() - 1,
                                        static_cast<std::size_t>(p * static_cast<double>(latencies.size())))];
    };
    std::printf(
        "streams %zu/%d connected, %d publishes at %.1f/s (%d ok, %d failed), %zu of %zu events "
        "received, %zu streams ended early\n",
        connected, n, publishes, rate, sent.load(), failed.load(), arrivals.size(), expected, ended);
    if (unmatched) std::printf("%zu events matched no publish\n", unmatched);
    std::printf("publish -> received: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", pct(0.50), pct(0.99),
                latencies.empty() ? -1.0 : latencies.back());
    if (!floor)
        std::printf(
            "gateway RSS: %ld KiB idle, %ld KiB with streams, %.2f KiB per stream\n", rss_before, rss_after,
            connected ? static_cast<double>(rss_after - rss_before) / static_cast<double>(connected) : 0.0);
    if (floor)
        std::printf("CPU over %.1f s of sending: sender + receiver %.2f s\n", elapsed, self_cpu);
    else
        std::printf(
            "CPU over %.1f s of publishing: gateway %.2f s, bench client (receiver + publisher) %.2f s\n",
            elapsed, gw_cpu, self_cpu);
    for (auto& s : streams)
        if (s.fd >= 0) ::close(s.fd);
    ::close(ep);
    return connected == streams.size() && arrivals.size() == expected && unmatched == 0 && failed == 0 ? 0
                                                                                                       : 1;
}
