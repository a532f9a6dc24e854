// Requests through the credential broker vs straight to the same upstream.
//
//   build/release/bench/bench_broker [REQUESTS per worker=2000] [WORKERS=8] [ROUNDS=3] [CASES]
//
// CASES picks some (comma-separated: direct,child,keepalive,fresh,socket,batch,nginx;
// all by default), to profile one.
//
// Also runs nginx from Debian (`tools/bootstrap --bench`) as the proxy a user
// would pick instead, configured by bench/nginx/credential-proxy.conf, with
// the same child code on its Unix socket.
//
// One TLS upstream on loopback (a thread of this process, test CA made on
// the fly) answering a small body. Two baselines: "direct, async" is
// WORKERS concurrent keep-alive HTTPS clients on one event-loop thread of
// this process (net::http_client, the cheapest client there is); "direct,
// child" is a separate process shaped like the brokered child (WORKERS
// blocking threads, one keep-alive TLS connection each, OpenSSL) holding the
// credential itself. Broker: `tether exec --upstream ... -- bench_broker
// --child` whose WORKERS threads do the handshake on fd 3 and then either
// keep their stream for all requests or take a fresh stream per request
// (docs/protocol.md section 6), one handshake each or ("batch") from a
// stream_batch asking for eight per handshake; the broker forwards over its own keep-alive TLS
// connections. Reports requests/s, p50 and p99, the ratios, and the CPU
// per request of the proxy (broker or nginx) and of the child.
#include "auth/broker_client.hpp"
#include "base/log.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "net/tls.hpp"
#include "support/test_pki.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

namespace asio = boost::asio;
namespace net = tether::net;
using tether::awaitable;
using clk = std::chrono::steady_clock;

namespace {

struct result_line {
    double seconds = 0;
    std::vector<double> latencies_us;
    double child_cpu = 0;  ///< seconds of CPU the child process used
    double proxy_cpu = 0;  ///< seconds of CPU the broker or nginx used, -1 when unknown
};

double cpu_seconds(const rusage& u)
{
    const auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
    };
    return s(u.ru_utime) + s(u.ru_stime);
}

/// utime + stime of `pid` and its direct children, from /proc (nginx's
/// master and worker), in seconds.
double tree_cpu(pid_t pid)
{
    const auto one = [](const std::filesystem::path& stat, pid_t parent_wanted, bool check_parent) {
        std::ifstream in(stat);
        std::string text((std::istreambuf_iterator<char>(in)), {});
        const auto close = text.rfind(')');
        if (close == std::string::npos) return 0.0;
        std::istringstream rest(text.substr(close + 2));
        std::string state;
        long ppid = 0;
        rest >> state >> ppid;
        if (check_parent && ppid != parent_wanted) return 0.0;
        std::string skip;
        for (int i = 0; i < 9; ++i) rest >> skip;  // pgrp .. cmajflt
        double ut = 0, st = 0;
        rest >> ut >> st;
        return (ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    };
    double total = one("/proc/" + std::to_string(pid) + "/stat", 0, false);
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        total += one(e.path() / "stat", pid, true);
    }
    return total;
}

double pct(std::vector<double> v, double p)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::string read_response(int fd)
{
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
}

/// One keep-alive response: header up to the blank line, then Content-Length
/// bytes, read with `rd` (plain read or SSL_read). Returns the status line's
/// code, or 0.
template <class Read>
int read_one(Read&& rd, std::string& pending)
{
    char buf[4096];
    std::size_t head_end = 0;
    while ((head_end = pending.find("\r\n\r\n")) == std::string::npos) {
        const long n = rd(buf, sizeof buf);
        if (n <= 0) return 0;
        pending.append(buf, static_cast<std::size_t>(n));
    }
    const auto cl = pending.find("Content-Length: ");
    const std::size_t body = cl < head_end ? std::stoul(pending.substr(cl + 16)) : 0;
    while (pending.size() < head_end + 4 + body) {
        const long n = rd(buf, sizeof buf);
        if (n <= 0) return 0;
        pending.append(buf, static_cast<std::size_t>(n));
    }
    const int status = std::atoi(pending.c_str() + 9);
    pending.erase(0, head_end + 4 + body);
    return status;
}

/// Runs `work(latencies, failures)` on WORKERS threads at once and prints
/// "seconds failures", then one latency (us) per line.
int run_workers(int workers, const std::function<void(std::vector<double>&, std::atomic<int>&)>& work)
{
    std::mutex m;
    std::vector<double> lat;
    std::atomic<int> failures{0};
    const auto t0 = clk::now();
    std::vector<std::thread> ts;
    for (int w = 0; w < workers; ++w) {
        ts.emplace_back([&] {
            std::vector<double> mine;
            work(mine, failures);
            const std::lock_guard lock(m);
            lat.insert(lat.end(), mine.begin(), mine.end());
        });
    }
    for (auto& t : ts) t.join();
    rusage self{};
    ::getrusage(RUSAGE_SELF, &self);
    std::printf("%f %d %f\n", std::chrono::duration<double>(clk::now() - t0).count(), failures.load(),
                cpu_seconds(self));
    for (const double l : lat) std::printf("%f\n", l);
    return failures.load() == 0 ? 0 : 1;
}

double since_us(clk::time_point a)
{
    return std::chrono::duration<double, std::micro>(clk::now() - a).count();
}

/// A stream to the proxy: the broker's (fd-3 handshake) or nginx's Unix socket.
/// The child: WORKERS threads, REQUESTS each, plain HTTP/1.1 to a local
/// proxy that adds the credential. "fresh": one stream per request
/// (connection, and for the broker its handshake, each time); "keepalive":
/// one stream per worker, requests one after another on it. The same code
/// for the broker and for nginx: only `open` differs.
int child(int workers, int requests, bool keepalive, const std::function<int()>& open,
          const std::string& target)
{
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: tether-broker.invalid\r\n" +
                            (keepalive ? "" : "Connection: close\r\n") + "\r\n";
    return run_workers(workers, [&](std::vector<double>& lat, std::atomic<int>& failures) {
        if (keepalive) {
            const int fd = open();
            std::string pending;
            for (int i = 0; i < requests && fd >= 0; ++i) {
                const auto a = clk::now();
                if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size()) ||
                    read_one([fd](char* b, std::size_t n) { return ::read(fd, b, n); }, pending) != 200)
                    ++failures;
                lat.push_back(since_us(a));
            }
            if (fd < 0) failures += requests;
            if (fd >= 0) ::close(fd);
            return;
        }
        for (int i = 0; i < requests; ++i) {
            const auto a = clk::now();
            const int fd = open();
            if (fd < 0 || ::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
                ++failures;
                if (fd >= 0) ::close(fd);
                continue;
            }
            const auto res = read_response(fd);
            ::close(fd);
            if (!res.starts_with("HTTP/1.1 200")) ++failures;
            lat.push_back(since_us(a));
        }
    });
}

/// The same shape of child as under the broker (WORKERS blocking threads,
/// one keep-alive connection each), but talking HTTPS to the upstream
/// itself with the credential in hand: what the child would cost without
/// `tether exec`.
int direct_child(int workers, int requests, int port, const char* ca)
{
    SSL_CTX* ctx = ::SSL_CTX_new(::TLS_client_method());
    if (!ctx || ::SSL_CTX_load_verify_locations(ctx, ca, nullptr) != 1) return 2;
    ::SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const std::string req =
        "GET /bench?app_key=the-real-credential HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
        "\r\nUser-Agent: bench\r\n\r\n";
    const int status = run_workers(workers, [&](std::vector<double>& lat, std::atomic<int>& failures) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<std::uint16_t>(port));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        SSL* ssl = ::SSL_new(ctx);
        ::SSL_set_fd(ssl, fd);
        ::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(ssl), "127.0.0.1");
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
        const bool up =
            ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && ::SSL_connect(ssl) == 1;
        std::string pending;
        const auto tls_read = [ssl](char* b, std::size_t n) {
            return ::SSL_read(ssl, b, static_cast<int>(n));
        };
        for (int i = 0; i < requests && up; ++i) {
            const auto a = clk::now();
            if (::SSL_write(ssl, req.data(), static_cast<int>(req.size())) != static_cast<int>(req.size()) ||
                read_one(tls_read, pending) != 200)
                ++failures;
            lat.push_back(since_us(a));
        }
        if (!up) failures += requests;
        ::SSL_free(ssl);
        ::close(fd);
    });
    ::SSL_CTX_free(ctx);
    return status;
}

/// Runs `cmd` and reads what child() or direct_child() prints. The proxy's
/// CPU: what the command's process tree used (reaped children count)
/// less the child's own, when the proxy is part of `cmd` (the broker).
result_line collect(const std::string& cmd, const char* what)
{
    rusage before{};
    ::getrusage(RUSAGE_CHILDREN, &before);
    FILE* p = ::popen(cmd.c_str(), "r");
    result_line out;
    int failures = -1;
    if (std::fscanf(p, "%lf %d %lf", &out.seconds, &failures, &out.child_cpu) != 3)
        std::fprintf(stderr, "%s: run failed\n", what);
    for (double l; std::fscanf(p, "%lf", &l) == 1;) out.latencies_us.push_back(l);
    const int st = ::pclose(p);
    rusage after{};
    ::getrusage(RUSAGE_CHILDREN, &after);
    out.proxy_cpu = cpu_seconds(after) - cpu_seconds(before) - out.child_cpu;
    if (failures != 0 || st != 0) std::fprintf(stderr, "%s: %d failures, status %d\n", what, failures, st);
    return out;
}

result_line direct(const net::url& upstream, const std::filesystem::path& ca, int workers, int requests)
{
    asio::io_context ioc;
    net::client_options o;
    o.max_idle_per_origin = static_cast<std::size_t>(workers);
    net::http_client http(ioc.get_executor(), net::make_client_tls(ca), o);
    result_line out;
    int failures = 0;
    const auto t0 = clk::now();
    for (int w = 0; w < workers; ++w) {
        asio::co_spawn(
            ioc,
            [&]() -> awaitable<void> {
                for (int i = 0; i < requests; ++i) {
                    net::http::request req;
                    req.target = "/bench?app_key=the-real-credential";
                    const auto a = clk::now();
                    auto r = co_await http.request(upstream, std::move(req), std::chrono::seconds(10));
                    if (!r || r->status != 200) ++failures;
                    out.latencies_us.push_back(
                        std::chrono::duration<double, std::micro>(clk::now() - a).count());
                }
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
    }
    ioc.run();
    out.seconds = std::chrono::duration<double>(clk::now() - t0).count();
    if (failures) std::fprintf(stderr, "direct: %d failures\n", failures);
    return out;
}

result_line through_broker(const std::filesystem::path& tether, const std::filesystem::path& self,
                           const net::url& upstream, const std::filesystem::path& ca,
                           const std::filesystem::path& cred, int workers, int requests, const char* mode,
                           bool listener = false)
{
    // With --broker-socket the child's connect_stream() is one connect().
    const std::string cmd =
        tether.string() + " exec --log-level warn" + (listener ? " --broker-socket" : "") + " --upstream " +
        upstream.origin() + " --credential-file " + cred.string() + " --ca-file " + ca.string() +
        " --state-dir " + (cred.parent_path() / "state").string() + " -- " + self.string() + " --child " +
        std::to_string(workers) + " " + std::to_string(requests) + " " + mode;
    return collect(cmd, "broker");
}

/// nginx 1.22 from Debian as the local credential-injecting proxy
/// (bench/nginx/credential-proxy.conf): keep-alive and fresh-connection
/// runs of the same child, or nullopt when nginx is not installed
/// (`tools/bootstrap --bench`).
std::optional<std::pair<result_line, result_line>> through_nginx(const std::filesystem::path& self,
                                                                 const std::filesystem::path& dir,
                                                                 const net::url& upstream,
                                                                 const std::filesystem::path& ca, int workers,
                                                                 int requests)
{
    const std::filesystem::path nginx = "/usr/sbin/nginx";
    const std::filesystem::path conf_in = TETHER_SOURCE_DIR "/bench/nginx/credential-proxy.conf";
    std::ifstream in(conf_in);
    if (!std::filesystem::exists(nginx) || !in) {
        std::fprintf(stderr, "nginx: not run (%s or %s missing; tools/bootstrap --bench installs nginx)\n",
                     nginx.c_str(), conf_in.c_str());
        return std::nullopt;
    }
    std::string conf((std::istreambuf_iterator<char>(in)), {});
    const auto ndir = dir / "nginx";
    std::filesystem::create_directories(ndir);
    const auto put = [&](const std::string& key, const std::string& value) {
        for (std::size_t p; (p = conf.find(key)) != std::string::npos;) conf.replace(p, key.size(), value);
    };
    put("@DIR@", ndir.string());
    put("@PORT@", std::to_string(upstream.port));
    put("@CA@", ca.string());
    put("@CREDENTIAL@", "the-real-credential");
    const auto conf_path = ndir / "nginx.conf";
    std::ofstream(conf_path) << conf;
    const auto sock = ndir / "nginx.sock";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execl(nginx.c_str(), "nginx", "-q", "-p", ndir.c_str(), "-c", conf_path.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    for (int i = 0; i < 100 && !std::filesystem::exists(sock); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::optional<std::pair<result_line, result_line>> out;
    if (std::filesystem::exists(sock)) {
        const auto run = [&](const char* mode) {
            const double before = tree_cpu(pid);
            auto r = collect(self.string() + " --nginx-child " + std::to_string(workers) + " " +
                                 std::to_string(requests) + " " + mode + " " + sock.string(),
                             "nginx");
            r.proxy_cpu = tree_cpu(pid) - before;
            return r;
        };
        auto keep = run("keepalive");
        auto fresh = run("fresh");
        out.emplace(std::move(keep), std::move(fresh));
    } else {
        std::fprintf(stderr, "nginx: did not start (see %s)\n", (ndir / "error.log").c_str());
    }
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return out;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc >= 5 && std::string(argv[1]) == "--child") {
        const char* s = std::getenv("TETHER_SENTINEL");
        const std::string mode = argv[4];
        const auto open = mode == "batch"
                              ? std::function<int()>([] {
                                    thread_local tether::broker_client::stream_batch streams;
                                    return streams.take();
                                })
                              : std::function<int()>([] { return tether::broker_client::connect_stream(); });
        return child(std::atoi(argv[2]), std::atoi(argv[3]), mode == "keepalive", open,
                     std::string("/bench?app_key=") + (s ? s : ""));
    }
    if (argc >= 6 && std::string(argv[1]) == "--nginx-child") {
        const std::string path = argv[5];
        return child(
            std::atoi(argv[2]), std::atoi(argv[3]), std::string(argv[4]) == "keepalive",
            [&] { return tether::broker_client::connect_socket(path.c_str()); }, "/bench");
    }
    if (argc >= 6 && std::string(argv[1]) == "--direct-child")
        return direct_child(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), argv[5]);
    const int requests = argc > 1 ? std::atoi(argv[1]) : 2000;
    const int workers = argc > 2 ? std::atoi(argv[2]) : 8;
    const int rounds = std::clamp(argc > 3 ? std::atoi(argv[3]) : 3, 1, 20);
    const auto self = std::filesystem::canonical("/proc/self/exe");
    const auto tether = self.parent_path().parent_path() / "app" / "tether";
    const auto dir = std::filesystem::temp_directory_path() / ("bench-broker-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto pki = tether::test::make_pki(dir, "localhost", {"localhost"}, {"127.0.0.1"});
    const auto cred = dir / "credential";
    std::ofstream(cred) << "the-real-credential\n";
    ::chmod(cred.c_str(), 0600);

    // The upstream: its own thread, a fixed small answer.
    asio::io_context up_ioc;
    const tether::log::logger quiet(tether::log::level::error);
    net::http_server upstream_server(
        up_ioc.get_executor(), {asio::ip::make_address("127.0.0.1"), 0},
        [](net::http::request, net::peer_info) -> awaitable<net::reply> {
            net::reply r;
            r.head.headers.set("Content-Type", "application/json");
            r.head.body = R"({"items":[1,2,3],"ok":true})";
            co_return r;
        },
        quiet, {}, net::make_server_tls(pki.cert, pki.key));
    asio::cancellation_signal stop;
    asio::co_spawn(up_ioc, upstream_server.run(),
                   asio::bind_cancellation_slot(stop.slot(), [](std::exception_ptr) {}));
    std::thread up_thread([&] { up_ioc.run(); });
    const auto upstream =
        *net::parse_url("https://127.0.0.1:" + std::to_string(upstream_server.local_endpoint().port()));

    // Every case once per round, rounds interleaved, the median round of
    // each case reported: this machine's neighbours move single runs by
    // a third.
    struct series {
        const char* what;
        std::vector<result_line> runs;
    };
    std::vector<series> cases{
        {"direct, async client in-process", {}}, {"direct, the child's own HTTPS", {}},
        {"broker, keep-alive stream", {}},       {"broker, fresh stream each", {}},
        {"nginx, keep-alive connection", {}},    {"nginx, fresh connection each", {}},
        {"broker, connect() per request", {}},   {"broker, fd 3 streams 8 at a time", {}}};
    const std::string only = argc > 4 ? "," + std::string(argv[4]) + "," : "";
    const auto want = [&](const char* key) {
        return only.empty() || only.find(std::string(",") + key + ",") != std::string::npos;
    };
    for (int r = 0; r < rounds; ++r) {
        if (want("direct")) cases[0].runs.push_back(direct(upstream, pki.ca_cert, workers, requests));
        if (want("child"))
            cases[1].runs.push_back(collect(self.string() + " --direct-child " + std::to_string(workers) +
                                                " " + std::to_string(requests) + " " +
                                                std::to_string(upstream.port) + " " + pki.ca_cert.string(),
                                            "direct child"));
        const auto run_nginx = [&] {
            if (!want("nginx")) return;
            if (auto n = through_nginx(self, dir, upstream, pki.ca_cert, workers, requests)) {
                cases[4].runs.push_back(std::move(n->first));
                cases[5].runs.push_back(std::move(n->second));
            }
        };
        // nginx first in every other round: neither side always runs in
        // the later half of a round, when this VM may have slowed down.
        if (r % 2 == 1) run_nginx();
        for (const auto& [index, mode] : {std::pair{2, "keepalive"}, std::pair{3, "fresh"}})
            if (want(mode))
                cases[index].runs.push_back(
                    through_broker(tether, self, upstream, pki.ca_cert, cred, workers, requests, mode));
        if (want("socket"))
            cases[6].runs.push_back(
                through_broker(tether, self, upstream, pki.ca_cert, cred, workers, requests, "fresh", true));
        if (want("batch"))
            cases[7].runs.push_back(
                through_broker(tether, self, upstream, pki.ca_cert, cred, workers, requests, "batch"));
        if (r % 2 == 0) run_nginx();
    }
    asio::post(up_ioc, [&] { stop.emit(asio::cancellation_type::terminal); });
    up_thread.join();
    std::filesystem::remove_all(dir);

    const double total = static_cast<double>(workers) * requests;
    struct summary {
        double rps = 0, lo = 0, hi = 0, p50 = 0, p99 = 0, proxy_us = 0, child_us = 0;
    };
    const auto summarize = [&](std::vector<result_line> runs) {
        summary out;
        if (runs.empty()) return out;
        std::sort(runs.begin(), runs.end(),
                  [](const auto& a, const auto& b) { return a.seconds < b.seconds; });
        const auto& mid = runs[runs.size() / 2];
        out.rps = total / mid.seconds;
        out.hi = total / runs.front().seconds;
        out.lo = total / runs.back().seconds;
        out.p50 = pct(mid.latencies_us, 0.5);
        out.p99 = pct(mid.latencies_us, 0.99);
        out.proxy_us = mid.proxy_cpu * 1e6 / total;
        out.child_us = mid.child_cpu * 1e6 / total;
        return out;
    };
    std::vector<summary> sum;
    for (const auto& c : cases) sum.push_back(summarize(c.runs));
    std::printf("%d workers x %d requests, median of %d rounds (range)\n", workers, requests, rounds);
    for (std::size_t i = 0; i < cases.size(); ++i) {
        if (cases[i].runs.empty()) continue;
        std::printf(
            "%-34s %8.0f req/s (%6.0f-%6.0f)  p50 %6.0f us  p99 %6.0f us  vs async %3.0f %%  vs child %3.0f "
            "%%  CPU per request: proxy %5.1f us, child %5.1f us\n",
            cases[i].what, sum[i].rps, sum[i].lo, sum[i].hi, sum[i].p50, sum[i].p99,
            sum[0].rps > 0 ? 100.0 * sum[i].rps / sum[0].rps : 0.0,
            sum[1].rps > 0 ? 100.0 * sum[i].rps / sum[1].rps : 0.0, sum[i].proxy_us, sum[i].child_us);
    }
    if (!cases[4].runs.empty() && !cases[2].runs.empty() && !cases[3].runs.empty())
        std::printf(
            "broker vs nginx: keep-alive %.0f %% of its req/s, p99 %.0f vs %.0f us; fresh %.0f %%, p99 %.0f "
            "vs %.0f us\n",
            100.0 * sum[2].rps / sum[4].rps, sum[2].p99, sum[4].p99, 100.0 * sum[3].rps / sum[5].rps,
            sum[3].p99, sum[5].p99);
    if (!cases[5].runs.empty() && !cases[6].runs.empty())
        std::printf(
            "broker with --broker-socket vs nginx, fresh: %.0f %% of its req/s, p99 %.0f vs %.0f us\n",
            100.0 * sum[6].rps / sum[5].rps, sum[6].p99, sum[5].p99);
    // Each round's broker case against the same round's nginx case: the
    // VM's speed moves between rounds more than between neighbours.
    const auto paired = [&](std::size_t broker, std::size_t nginx, const char* what) {
        const auto& b = cases[broker].runs;
        const auto& n = cases[nginx].runs;
        if (b.empty() || b.size() != n.size()) return;
        std::vector<double> rps, cpu;
        for (std::size_t i = 0; i < b.size(); ++i) {
            rps.push_back(100.0 * n[i].seconds / b[i].seconds);
            if (b[i].proxy_cpu > 0 && n[i].proxy_cpu > 0) cpu.push_back(b[i].proxy_cpu / n[i].proxy_cpu);
        }
        std::sort(rps.begin(), rps.end());
        std::sort(cpu.begin(), cpu.end());
        std::printf("paired by round, %s: broker at %.0f %% of nginx's req/s (rounds %.0f-%.0f %%)", what,
                    rps[rps.size() / 2], rps.front(), rps.back());
        if (!cpu.empty()) std::printf(", %.2fx its CPU per request", cpu[cpu.size() / 2]);
        std::printf("\n");
    };
    paired(2, 4, "keep-alive");
    paired(3, 5, "fresh, fd 3");
    paired(6, 5, "fresh, --broker-socket");
    paired(7, 5, "fresh, fd 3 in batches of 8");
    std::printf("(target, issue 16: the broker at least equal to nginx in req/s and p99)\n");
    return 0;
}
