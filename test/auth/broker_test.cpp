// `tether exec` end to end: the real binary, a real child (broker_child, on
// auth/broker_client.hpp), a real TLS upstream on loopback with a test CA.
#include "auth/broker_client.hpp"
#include "base/random_bytes.hpp"
#include "net/http_server.hpp"
#include "net/tls.hpp"
#include "support/child_process.hpp"
#include "support/log_capture.hpp"
#include "support/test_pki.hpp"
#include "support/text.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace net = tether::net;
using tether::awaitable;
using tether::test::child_process;
using tether::test::contains;

namespace {

/// Large bodies under ASan reach the child at a few MB/s: the upstream's
/// write must not give up on them.
net::server_options slow_reader_ok()
{
    net::server_options o;
    o.write_timeout = std::chrono::minutes(2);
    return o;
}

/// A TLS upstream on its own thread (the agent under test is another
/// process, so nothing here waits on the test's own loop).
class upstream_server {
public:
    explicit upstream_server(const tether::test::pki_files& pki, net::server_options opts = slow_reader_ok())
        : tls_(net::fixed_tls(net::make_server_tls(pki.cert, pki.key))),
          server_(
              ioc_.get_executor(), {asio::ip::make_address("127.0.0.1"), 0},
              [this](net::http::request req, net::peer_info) { return handle(std::move(req)); },
              logs_.logger(), opts, tls_)
    {
        asio::co_spawn(ioc_, server_.run(),
                       asio::bind_cancellation_slot(stop_.slot(), [](std::exception_ptr) {}));
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~upstream_server()
    {
        asio::post(ioc_, [this] { stop_.emit(asio::cancellation_type::terminal); });
        thread_.join();
    }

    [[nodiscard]] std::uint16_t port() const { return server_.local_endpoint().port(); }
    /// New connections from here on get `pki`'s certificate.
    void serve(const tether::test::pki_files& pki) { tls_->replace(net::make_server_tls(pki.cert, pki.key)); }
    /// Lets /drip send the rest of its body.
    void release() { released_ = true; }
    /// What /big answers: its credential is set before the first request.
    std::string big_body;
    std::vector<net::http::request> seen()
    {
        const std::lock_guard lock(mutex_);
        return seen_;
    }

private:
    awaitable<net::reply> handle(net::http::request req)
    {
        {
            const std::lock_guard lock(mutex_);
            seen_.push_back(req);
        }
        if (contains(req.target, "/slow")) {
            const auto ex = co_await asio::this_coro::executor;
            tether::timer t{ex, 30s};
            co_await t.async_wait();
        }
        net::reply r;
        r.head.headers.set("Content-Type", "text/plain");
        if (contains(req.target, "/big")) {
            r.head.body = big_body;
            co_return r;
        }
        if (contains(req.target, "/drip")) {
            // One line, then the rest only once the test saw that line
            // arrive at the child: a broker that buffered would never show it.
            r.reuse_after_stream = true;
            r.stream = [this](net::body_writer& w) -> awaitable<tether::error_code> {
                if (auto ec = co_await w.write("tick 0\n")) co_return ec;
                const auto ex = co_await asio::this_coro::executor;
                for (int i = 0; i < 2000 && !released_; ++i) {
                    tether::timer t{ex, 10ms};
                    co_await t.async_wait();
                }
                for (int i = 1; i < 10; ++i)
                    if (auto ec = co_await w.write("tick " + std::to_string(i) + "\n")) co_return ec;
                co_return tether::error_code{};
            };
            co_return r;
        }
        if (contains(req.target, "/early")) {
            r.head.status = 103;  // an interim answer, as if it were the last
            co_return r;
        }
        if (contains(req.target, "/deny")) {
            r.head.status = 401;
            r.head.body = "denied";
            co_return r;
        }
        const auto auth = req.headers.get("Authorization");
        r.head.body = "target=" + req.target + ";auth=" + std::string(auth ? *auth : "") + ";";
        co_return r;
    }

    asio::io_context ioc_;
    tether::test::log_capture logs_;
    std::shared_ptr<net::replaceable_tls> tls_;
    net::http_server server_;
    asio::cancellation_signal stop_;
    std::thread thread_;
    std::mutex mutex_;
    std::vector<net::http::request> seen_;
    std::atomic<bool> released_{false};
};

struct rig {
    explicit rig(net::server_options upstream_opts = slow_reader_ok())
        : pki(tether::test::make_pki(dir.path(), "localhost", {"localhost"}, {"127.0.0.1"})),
          up(pki, upstream_opts),
          credential("real-" + std::to_string(::getpid()) + "-secret-value"),
          cred_file(dir.path() / "credential")
    {
        tether::test::write_file(cred_file, credential + "\n");
        ::chmod(cred_file.c_str(), 0600);
    }

    [[nodiscard]] std::string upstream() const
    {
        return "https://127.0.0.1:" + std::to_string(up.port()) + "/base";
    }

    std::unique_ptr<child_process> exec(std::vector<std::string> child_args,
                                        std::vector<std::string> flags = {}, child_process::options opts = {})
    {
        std::vector<std::string> args{"exec",
                                      "--upstream",
                                      upstream(),
                                      "--credential-file",
                                      cred_file.string(),
                                      "--ca-file",
                                      pki.ca_cert.string(),
                                      "--state-dir",
                                      (dir.path() / "state").string(),
                                      "--log-format",
                                      "json",
                                      "--log-level",
                                      "debug"};
        args.insert(args.end(), flags.begin(), flags.end());
        args.emplace_back("--");
        args.emplace_back(TETHER_BROKER_CHILD);
        args.insert(args.end(), child_args.begin(), child_args.end());
        return std::make_unique<child_process>(tether::test::binary("tether"), args, std::move(opts));
    }

    /// Runs to completion; returns the exit status.
    int run(child_process& p, std::chrono::milliseconds cap = 30s)
    {
        const auto st = p.wait_for(cap);
        BOOST_TEST_REQUIRE(st.has_value(), "tether exec did not finish:\n" << p.err_when_printed());
        return *st;
    }

    tether::test::temp_dir dir;
    tether::test::pki_files pki;
    upstream_server up;
    std::string credential;
    std::filesystem::path cred_file;
};

std::set<std::string> socket_inodes(pid_t pid)
{
    std::set<std::string> out;
    const auto dir = "/proc/" + std::to_string(pid) + "/fd";
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(e.path(), ec).string();
        if (target.starts_with("socket:[")) out.insert(target.substr(8, target.size() - 9));
    }
    return out;
}

std::size_t fd_count(pid_t pid)
{
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        ++n;
    return n;
}

/// `fd_count` once it has stayed the same for a quarter of a second (at
/// most 1.5 s: the caller's child pauses for 2).
std::size_t settled_fd_count(pid_t pid)
{
    using namespace std::chrono;
    auto last = fd_count(pid);
    const auto cap = steady_clock::now() + milliseconds(1500);
    for (auto since = steady_clock::now(); steady_clock::now() < cap;) {
        std::this_thread::sleep_for(milliseconds(20));
        const auto now = fd_count(pid);
        if (now != last) {
            last = now;
            since = steady_clock::now();
        } else if (steady_clock::now() - since >= milliseconds(250)) {
            break;
        }
    }
    return last;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(broker)

BOOST_AUTO_TEST_CASE(the_upstream_gets_the_real_credential_and_the_child_never_does)
{
    rig r;
    auto p = r.exec({"once", "/v1/items?app_key=SENTINEL&page=2", "Authorization: Bearer SENTINEL\r\n"});
    BOOST_TEST_REQUIRE(r.run(*p) == 0, p->err_when_printed());
    const auto seen = r.up.seen();
    BOOST_TEST_REQUIRE(seen.size() == 1u);
    BOOST_TEST(seen[0].target == "/base/v1/items?app_key=" + r.credential + "&page=2");
    BOOST_TEST(*seen[0].headers.get("Authorization") == "Bearer " + r.credential);
    BOOST_TEST(*seen[0].headers.get("Host") == "127.0.0.1:" + std::to_string(r.up.port()));
    // The echo came back scrubbed; no log line holds the secret either.
    BOOST_TEST(contains(p->out(), "HTTP/1.1 200"));
    BOOST_TEST(contains(p->out(), "app_key=tether-sentinel-"));
    BOOST_TEST(!contains(p->out(), r.credential));
    BOOST_TEST(!contains(p->err(), r.credential));
    BOOST_TEST(contains(p->err(), "broker.forwarded"));
}

BOOST_AUTO_TEST_CASE(an_upstream_the_ca_does_not_vouch_for_gets_nothing_and_the_child_gets_502)
{
    rig r;
    // The broker trusts another CA from here on: the upstream's certificate
    // no longer verifies, and the request (with the credential) must not go.
    tether::test::temp_dir other;
    const auto stranger = tether::test::make_pki(other.path(), "localhost", {"localhost"}, {"127.0.0.1"});
    std::filesystem::copy_file(stranger.ca_cert, r.pki.ca_cert,
                               std::filesystem::copy_options::overwrite_existing);
    auto p = r.exec({"once", "/v1/items", "Authorization: Bearer SENTINEL\r\n"});
    BOOST_TEST_REQUIRE(r.run(*p) == 0, p->err_when_printed());
    BOOST_TEST(contains(p->out(), "HTTP/1.1 502"), p->out_when_printed());
    BOOST_TEST(r.up.seen().empty());
    BOOST_TEST(contains(p->err(), "broker.upstream_failed"));
    BOOST_TEST(!contains(p->err(), r.credential));
}

BOOST_AUTO_TEST_CASE(exec_follows_its_ca_file_through_an_upstream_ca_rotation)
{
    // The upstream closes a connection idle for 300 ms and the child asks
    // every 500 ms: each request makes a new connection, and so meets the
    // trust in use at that moment.
    auto opts = slow_reader_ok();
    opts.idle_timeout = 300ms;
    rig r(opts);
    tether::test::temp_dir other;
    const auto next = tether::test::make_pki(other.path(), "localhost", {"localhost"}, {"127.0.0.1"});
    const auto first_ca = tether::test::read_file(r.pki.ca_cert);
    const auto publish_bundle = [&](const std::string& text) {
        const auto staged = r.dir.path() / "bundle.next";
        tether::test::write_file(staged, text);
        std::filesystem::rename(staged, r.pki.ca_cert);  // the file --ca-file names
    };
    const auto statuses = [](const std::string& out, const std::string& status) {
        std::size_t n = 0;
        for (std::size_t at = 0; (at = out.find(status, at)) != std::string::npos; at += status.size()) ++n;
        return n;
    };
    const auto three_more_ok = [&](child_process& p) {
        const auto before = statuses(p.out(), "HTTP/1.1 200");
        return p.wait_output([&](const std::string& o) { return statuses(o, "HTTP/1.1 200") >= before + 3; },
                             20s, true);
    };

    auto p = r.exec({"repeat", "200", "500", "/v1/items?app_key=SENTINEL"});
    BOOST_TEST_REQUIRE(three_more_ok(*p), p->out_when_printed() << p->err_when_printed());

    // The new CA beside the old, then the upstream moves to it.
    publish_bundle(first_ca + tether::test::read_file(next.ca_cert));
    BOOST_TEST_REQUIRE(
        p->wait_output([](const std::string& e) { return contains(e, "tls.ca_file_replaced"); }, 20s),
        p->err_when_printed());
    r.up.serve(next);
    const auto failed_before = statuses(p->out(), "HTTP/1.1 502");
    BOOST_TEST(three_more_ok(*p), p->out_when_printed() << p->err_when_printed());

    // The old CA leaves the bundle.
    publish_bundle(tether::test::read_file(next.ca_cert));
    BOOST_TEST(p->wait_output(
                   [](const std::string& e) {
                       std::size_t n = 0;
                       for (std::size_t at = 0;
                            (at = e.find("tls.ca_file_replaced", at)) != std::string::npos; ++at)
                           ++n;
                       return n >= 2;
                   },
                   20s),
               p->err_when_printed());
    BOOST_TEST(three_more_ok(*p), p->out_when_printed() << p->err_when_printed());
    BOOST_TEST(statuses(p->out(), "HTTP/1.1 502") == failed_before, p->out_when_printed());
    p->signal(SIGTERM);
    (void)p->wait_for(10s);
    BOOST_TEST(!contains(p->err(), "BEGIN CERTIFICATE"));
    BOOST_TEST(!contains(p->err(), r.credential));
}

BOOST_AUTO_TEST_CASE(ambiguous_requests_get_400_and_never_reach_the_upstream)
{
    rig r;
    for (const auto& [target, extra] : std::vector<std::pair<std::string, std::string>>{
             {"/x?app_key=SENTINEL&app_key=SENTINEL", ""},
             {"/x?app%5Fkey=SENTINEL", ""},
             {"/x?APP_KEY=SENTINEL", ""},
             {"/x?app_key=ENC_SENTINEL", ""},
             {"/x", "Transfer-Encoding: gzip\r\n"},
             {"http://evil.example/x?app_key=SENTINEL", ""},
         }) {
        auto p = r.exec({"once", target, extra});
        BOOST_TEST(r.run(*p) == 0);
        BOOST_TEST(contains(p->out(), "HTTP/1.1 400"), target << "\n" << p->out_when_printed());
        // Framing is refused by the HTTP layer itself, before the broker's rules.
        BOOST_TEST((contains(p->err(), "broker.refused") || contains(p->err(), "http.request_refused")));
    }
    BOOST_TEST(r.up.seen().empty());
}

BOOST_AUTO_TEST_CASE(an_oversized_trailer_is_refused_and_the_broker_keeps_serving)
{
    rig r;
    auto p = r.exec({"bigtrailer"});
    BOOST_TEST_REQUIRE(r.run(*p) == 0, p->out_when_printed() << p->err_when_printed());
    BOOST_TEST(contains(p->out(), "first HTTP/1.1 431"), p->out_when_printed());
    BOOST_TEST(contains(p->out(), "then HTTP/1.1 200"), p->out_when_printed());
    BOOST_TEST(r.up.seen().size() == 1u);
}

BOOST_AUTO_TEST_CASE(the_child_sees_fd_3_the_base_and_the_sentinel_only)
{
    rig r;
    // One environment for `tether enroll --skip-if-enrolled && tether exec`
    // is common in containers: the enrollment code in it stays ours.
    child_process::options env;
    env.env_extra = {"TETHER_CODE=fleet-code-Zq8", "TETHER_NAME=passed-on"};
    auto p = r.exec({"dump"}, {}, env);
    BOOST_TEST_REQUIRE(r.run(*p) == 0);
    const auto out = p->out();
    BOOST_TEST(!contains(out, "fleet-code-Zq8"), out);
    BOOST_TEST(contains(out, "TETHER_NAME=passed-on\n"), out);
    BOOST_TEST(contains(out, "TETHER_CRED_FD=3\n"));
    BOOST_TEST(contains(out, "TETHER_API_BASE=http://tether-broker.invalid\n"));
    BOOST_TEST(contains(out, "TETHER_SENTINEL=tether-sentinel-"));
    BOOST_TEST(!contains(out, r.credential));
    BOOST_TEST(!contains(out, "TETHER_CREDENTIAL"));
    // 0-2, the channel, and the descriptor opendir() itself holds: nothing
    // of the agent's (epoll, eventfd, sockets) leaked into the child.
    BOOST_TEST(contains(out, "FDS 0 1 2 3 4\n"), out);
}

BOOST_AUTO_TEST_CASE(malformed_control_datagrams_are_refused_and_the_channel_lives_on)
{
    rig r;
    for (const std::string kind : {"empty", "two", "other", "withfd", "batch0", "batch17", "batchlong"}) {
        auto p = r.exec({"raw", kind});
        BOOST_TEST_REQUIRE(r.run(*p) == 0);
        BOOST_TEST(contains(p->out(), "answer 1 ff fd no\n"), kind << ": " << p->out_when_printed());
        BOOST_TEST(contains(p->out(), "then ok\n"), kind);
        BOOST_TEST(contains(p->err(), "broker.datagram_refused"));
    }
}

BOOST_AUTO_TEST_CASE(fifty_concurrent_requests_never_share_bytes)
{
    rig r;
    auto p = r.exec({"get", "50", "1", "/v1/echo"});
    BOOST_TEST(r.run(*p) == 0, p->out_when_printed() << p->err_when_printed());
    BOOST_TEST(contains(p->out(), "good 50 bad 0"));
    BOOST_TEST(r.up.seen().size() == 50u);
}

BOOST_AUTO_TEST_CASE(streams_asked_for_eight_at_a_time_are_each_private_and_fresh)
{
    // 0x02 N (docs/protocol.md section 6): each thread's stream_batch takes
    // eight streams per answer and uses each for one request.
    rig r;
    auto p = r.exec({"get", "4", "20", "/v1/echo", "batch"});
    BOOST_TEST(r.run(*p) == 0, p->out_when_printed() << p->err_when_printed());
    BOOST_TEST(contains(p->out(), "good 80 bad 0"));
    BOOST_TEST(r.up.seen().size() == 80u);
    BOOST_TEST(!contains(p->err(), "broker.datagram_refused"), p->err_when_printed());
}

BOOST_AUTO_TEST_CASE(requests_that_wake_an_idle_broker_together_are_all_served)
{
    // The broker waits again right after a request that came while no
    // stream was open; the wait must still report those that came with it,
    // over fd 3 and over the socket.
    for (const bool socket : {false, true}) {
        rig r;
        auto p = r.exec({"burst", "20", "/v1/echo"},
                        socket ? std::vector<std::string>{"--broker-socket"} : std::vector<std::string>{});
        BOOST_TEST(r.run(*p) == 0, p->out_when_printed() << p->err_when_printed());
        BOOST_TEST(contains(p->out(), "good 20 bad 0"), socket);
        BOOST_TEST(r.up.seen().size() == 20u);
    }
}

BOOST_AUTO_TEST_CASE(a_thousand_streams_leak_no_descriptor_and_nothing_listens)
{
    // One at a time, and eight at a time (the broker then keeps eight
    // spares; the child closes its own before each count).
    for (const bool batch : {false, true}) {
        rig r;
        auto p = r.exec(batch ? std::vector<std::string>{"leak", "1000", "/v1/echo", "batch"}
                              : std::vector<std::string>{"leak", "1000", "/v1/echo"});
        BOOST_TEST_REQUIRE(
            p->wait_output([](const std::string& o) { return contains(o, "warm"); }, 20s, true));
        // The agent's count settles once it has read the ends of the
        // warm-up's streams (the child closed its spares before "warm").
        const auto before = settled_fd_count(p->pid());
        // No listening or named socket anywhere: a sibling process has no way in.
        const auto inodes = socket_inodes(p->pid());
        std::ifstream unix_table("/proc/net/unix");
        std::string line;
        std::getline(unix_table, line);  // header
        std::size_t ours = 0;
        while (std::getline(unix_table, line)) {
            std::istringstream f(line);
            std::string num, refcount, protocol, flags, type, st, inode, path;
            f >> num >> refcount >> protocol >> flags >> type >> st >> inode >> path;
            if (!inodes.count(inode)) continue;
            ++ours;
            BOOST_TEST((std::stoul(flags, nullptr, 16) & 0x10000UL) == 0UL, "a listening socket: " + line);
            // Linux autobinds an abstract name ("@1a2b3") to a socket with
            // SO_PASSCRED when it sends; a connected pair's end cannot be
            // connected to. A filesystem path would be a way in.
            BOOST_TEST(!path.starts_with("/"), "a socket in the filesystem: " + line);
        }
        BOOST_TEST(ours >= 1u);  // the control channel at least
        BOOST_TEST_REQUIRE(
            p->wait_output([](const std::string& o) { return contains(o, "good "); }, 120s, true),
            p->out_when_printed());
        // The broker closes the last streams when it reads the child's EOFs,
        // which may come just after "good": give it most of the child's pause.
        auto after = fd_count(p->pid());
        for (int i = 0; i < 150 && after > before; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            after = fd_count(p->pid());
        }
        BOOST_TEST(contains(p->out(), "good 1010"));
        BOOST_TEST(after <= before,
                   "batch " << batch << ": descriptors before " << before << ", after " << after);
        BOOST_TEST(r.run(*p) == 0);
    }
}

BOOST_AUTO_TEST_CASE(with_broker_socket_the_child_tree_connects_and_nothing_else_gets_in)
{
    rig r;
    // Streams by connect() (broker_client prefers the socket when it is
    // set): fifty at once, none sharing bytes, through the same proxy loop.
    auto p = r.exec({"get", "50", "1", "/v1/echo"}, {"--broker-socket"});
    BOOST_TEST(r.run(*p) == 0, p->out_when_printed() << p->err_when_printed());
    BOOST_TEST(contains(p->out(), "good 50 bad 0"));
    BOOST_TEST(r.up.seen().size() == 50u);
    BOOST_TEST(!contains(p->err(), "broker.connection_refused"));

    // The listening descriptor stays ours; the child learns the path only.
    auto d = r.exec({"dump"}, {"--broker-socket"});
    BOOST_TEST_REQUIRE(r.run(*d) == 0);
    BOOST_TEST(contains(d->out(), "FDS 0 1 2 3 4\n"), d->out_when_printed());
    BOOST_TEST(contains(d->out(), "TETHER_BROKER_SOCKET=/"), d->out_when_printed());

    child_process sh(
        tether::test::binary("tether"),
        {"exec", "--upstream", r.upstream(), "--credential-file", r.cred_file.string(), "--ca-file",
         r.pki.ca_cert.string(), "--state-dir", (r.dir.path() / "state").string(), "--log-format", "json",
         "--broker-socket", "--", "sh", "-c", "echo \"socket=$TETHER_BROKER_SOCKET;\"; sleep 30"});
    BOOST_TEST_REQUIRE(sh.wait_output([](const std::string& o) { return contains(o, ";"); }, 10s, true));
    const auto out = sh.out();
    const auto at = out.find("socket=");
    BOOST_TEST_REQUIRE(at != std::string::npos, out);
    const std::filesystem::path path = out.substr(at + 7, out.find(';', at) - at - 7);
    struct stat dir_st {};
    struct stat sock_st {};
    BOOST_TEST_REQUIRE(::stat(path.parent_path().c_str(), &dir_st) == 0);
    BOOST_TEST_REQUIRE(::stat(path.c_str(), &sock_st) == 0);
    BOOST_TEST((dir_st.st_mode & 07777U) == 0700U);
    BOOST_TEST(S_ISSOCK(sock_st.st_mode));
    BOOST_TEST((sock_st.st_mode & 0777U) == 0600U);

    // This test is the same user but not in the child's tree: the broker
    // closes on it unanswered, and its request never reaches the upstream.
    const int fd = tether::broker_client::connect_socket(path.c_str());
    BOOST_TEST_REQUIRE(fd >= 0);
    const std::string req = "GET /v1/outsider HTTP/1.1\r\nHost: tether-broker.invalid\r\n\r\n";
    (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[256];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    ::close(fd);
    BOOST_TEST(n <= 0, "the outsider got " << n << " bytes");
    BOOST_TEST(
        sh.wait_output([](const std::string& e) { return contains(e, "broker.connection_refused"); }, 10s),
        sh.err_when_printed());
    sh.signal(SIGTERM);
    BOOST_TEST(r.run(sh, 10s) == 128 + SIGTERM);
    BOOST_TEST(!std::filesystem::exists(path.parent_path()), "left behind: " << path.parent_path());
    BOOST_TEST(r.up.seen().size() == 50u);
}

BOOST_AUTO_TEST_CASE(a_slow_body_reaches_the_child_as_it_arrives_and_the_stream_lives_on)
{
    rig r;
    const auto saved = r.dir.path() / "drip";
    auto p = r.exec({"stream", "/drip?app_key=SENTINEL", saved.string()});
    BOOST_TEST_REQUIRE(
        p->wait_output([](const std::string& o) { return contains(o, "first: tick 0"); }, 20s, true),
        p->out_when_printed() << p->err_when_printed());
    r.up.release();
    BOOST_TEST_REQUIRE(r.run(*p) == 0, p->err_when_printed());
    BOOST_TEST(contains(p->out(), "HTTP/1.1 200 OK\nchunked\n"), p->out_when_printed());
    BOOST_TEST(contains(p->out(), "complete 70 bytes"), p->out_when_printed());
    BOOST_TEST(tether::test::read_file(saved).ends_with("tick 9\n"));
    BOOST_TEST(contains(p->out(), "second: HTTP/1.1 200"), p->out_when_printed());
    const auto seen = r.up.seen();
    BOOST_TEST_REQUIRE(seen.size() == 2u);
    BOOST_TEST(seen[1].target == "/base/v1/after");
}

BOOST_AUTO_TEST_CASE(a_large_body_is_streamed_whole_and_scrubbed_across_pieces)
{
    rig r;
    // 6 MiB (hundreds of the 16 KiB pieces the broker reads) with the
    // credential at the start, the end, and straddling pieces.
    std::string body(6U << 20U, 'x');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    const std::vector<std::size_t> at{0, 16384 - 7, 2 * 16384 - 1, (1U << 20U) + 3,
                                      body.size() - r.credential.size()};
    for (const auto a : at) body.replace(a, r.credential.size(), r.credential);
    r.up.big_body = body;
    const auto saved = r.dir.path() / "big";
    auto p = r.exec({"stream", "/big?app_key=SENTINEL", saved.string()});
    const int big_status = r.run(*p, 120s);
    const auto err_head = p->err().substr(0, 3000);  // read after the run, so current
    BOOST_TEST_REQUIRE(big_status == 0, "status " << big_status << " " << p->out_when_printed() << err_head);
    BOOST_TEST(contains(p->out(), "chunked\n"), p->out_when_printed());
    const auto got = tether::test::read_file(saved);
    BOOST_TEST(!contains(got, r.credential));
    // Every occurrence became the sentinel (at offset 0 to read it back),
    // and not one other byte changed.
    BOOST_TEST_REQUIRE(got.size() > body.size());
    const std::size_t grew = (got.size() - body.size()) / at.size();
    const std::string sentinel = got.substr(0, r.credential.size() + grew);
    BOOST_TEST_REQUIRE(sentinel.starts_with("tether-sentinel-"));
    std::string want = body;
    for (std::size_t k = want.find(r.credential); k != std::string::npos;
         k = want.find(r.credential, k + sentinel.size()))
        want.replace(k, r.credential.size(), sentinel);
    BOOST_TEST((got == want));
    BOOST_TEST(contains(p->out(), "second: HTTP/1.1 200"), p->out_when_printed());
}

BOOST_AUTO_TEST_CASE(head_requests_get_the_upstream_length_and_no_body)
{
    rig r;
    auto p = r.exec({"head", "/v1/items"});
    BOOST_TEST_REQUIRE(r.run(*p) == 0, p->err_when_printed());
    const std::string would_send = "target=/base/v1/items;auth=;";  // the GET body
    BOOST_TEST(contains(p->out(), "HTTP/1.1 200"), p->out_when_printed());
    BOOST_TEST(contains(p->out(), "Content-Length: " + std::to_string(would_send.size()) + "\r\n"),
               p->out_when_printed());
    BOOST_TEST(contains(p->out(), "\r\n\r\n<end>"), p->out_when_printed());
    const auto seen = r.up.seen();
    BOOST_TEST_REQUIRE(seen.size() == 1u);
    BOOST_TEST(seen[0].method == "HEAD");
}

BOOST_AUTO_TEST_CASE(a_401_is_passed_on_once_and_its_connection_serves_the_next_request)
{
    rig r;
    // A credential file cannot be refreshed: the 401 goes to the child as
    // it is, and the upstream sees each request once.
    auto p = r.exec({"once", "/v1/deny?app_key=SENTINEL"});
    BOOST_TEST_REQUIRE(r.run(*p) == 0, p->out_when_printed() << p->err_when_printed());
    BOOST_TEST(contains(p->out(), "HTTP/1.1 401 Unauthorized"), p->out_when_printed());
    BOOST_TEST(contains(p->out(), "denied"), p->out_when_printed());
    BOOST_TEST(r.up.seen().size() == 1u);
    // Three in a row through one broker: each answer was read whole, so its
    // upstream connection went back to the pool for the next.
    auto three = r.exec({"get", "1", "3", "/v1/deny"});
    BOOST_TEST(r.run(*three) == 1);  // "get" counts anything but a 200 as bad
    BOOST_TEST(contains(three->out(), "good 0 bad 3"), three->out_when_printed());
    BOOST_TEST(r.up.seen().size() == 4u);
}

BOOST_AUTO_TEST_CASE(an_interim_answer_alone_gets_502_and_the_broker_serves_on)
{
    rig r;
    // A 103 and nothing after it: passed on, it would read as the child's
    // final answer. (The connection is dropped too, for what could follow a
    // 1xx on it; this upstream sends nothing more.)
    auto p = r.exec({"get", "1", "3", "/v1/early"});
    BOOST_TEST(r.run(*p) == 1);
    BOOST_TEST(contains(p->out(), "good 0 bad 3"), p->out_when_printed());
    auto one = r.exec({"once", "/v1/early?app_key=SENTINEL"});
    BOOST_TEST_REQUIRE(r.run(*one) == 0);
    BOOST_TEST(contains(one->out(), "HTTP/1.1 502"), one->out_when_printed());
    BOOST_TEST(contains(one->out(), "interim"), one->out_when_printed());
    auto ok = r.exec({"get", "1", "3", "/v1/echo"});
    BOOST_TEST(r.run(*ok) == 0, ok->out_when_printed() << ok->err_when_printed());
}

BOOST_AUTO_TEST_CASE(an_upstream_that_never_answers_hits_the_timeout)
{
    rig r;
    auto p = r.exec({"once", "/slow"}, {"--upstream-timeout", "1s"});
    BOOST_TEST_REQUIRE(r.run(*p, 15s) == 0);
    BOOST_TEST(contains(p->out(), "HTTP/1.1 504"), p->out_when_printed());
}

BOOST_AUTO_TEST_CASE(a_child_killed_mid_request_does_not_wedge_the_broker)
{
    rig r;
    const auto t0 = std::chrono::steady_clock::now();
    auto p = r.exec({"die", "/slow"});
    BOOST_TEST(r.run(*p, 15s) == 128 + SIGKILL);
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 10s));  // not the 30 s upstream wait
}

BOOST_AUTO_TEST_CASE(exit_status_and_signals_pass_through)
{
    rig r;
    child_process seven(tether::test::binary("tether"),
                        {"exec", "--upstream", r.upstream(), "--credential-file", r.cred_file.string(),
                         "--state-dir", (r.dir.path() / "state").string(), "--", "sh", "-c", "exit 7"});
    BOOST_TEST(r.run(seven) == 7);

    child_process missing(tether::test::binary("tether"),
                          {"exec", "--upstream", r.upstream(), "--credential-file", r.cred_file.string(),
                           "--state-dir", (r.dir.path() / "state").string(), "--", "no-such-command-here"});
    BOOST_TEST(r.run(missing) == 127);
    BOOST_TEST(contains(missing.err(), "command not found: no-such-command-here"));

    child_process sleeper(
        tether::test::binary("tether"),
        {"exec", "--upstream", r.upstream(), "--credential-file", r.cred_file.string(), "--state-dir",
         (r.dir.path() / "state").string(), "--log-format", "json", "--", "sleep", "30"});
    BOOST_TEST_REQUIRE(
        sleeper.wait_output([](const std::string& e) { return contains(e, "exec.started"); }, 10s));
    sleeper.signal(SIGTERM);
    BOOST_TEST(r.run(sleeper, 5s) == 128 + SIGTERM);
    BOOST_TEST(contains(sleeper.err(), "exec.forward_signal"));
}

BOOST_AUTO_TEST_CASE(a_credential_file_others_can_read_is_refused)
{
    rig r;
    ::chmod(r.cred_file.c_str(), 0644);
    auto p = r.exec({"dump"});
    BOOST_TEST(r.run(*p) == 2);
    BOOST_TEST(contains(p->err(), "chmod 600"));
    BOOST_TEST(!contains(p->err(), r.credential));
    child_process no_file(tether::test::binary("tether"), {"exec", "--upstream", r.upstream(), "--state-dir",
                                                           (r.dir.path() / "state").string(), "--", "true"});
    BOOST_TEST(r.run(no_file) == 2);
    BOOST_TEST(contains(no_file.err(), "--credential-file"));
    // A wrong file is not read whole, and nothing a header cannot carry
    // reaches one.
    const std::vector<std::pair<std::string, std::string>> unusable{
        {std::string(20 * 1024, 'k'), "larger than 16 KiB"}, {"key\x01with-a-control", "control character"}};
    for (const auto& [content, why] : unusable) {
        tether::test::write_private_file(r.cred_file, content + "\n");
        auto refused = r.exec({"dump"});
        BOOST_TEST(r.run(*refused) == 2, why);
        BOOST_TEST(contains(refused->err(), why), refused->err_when_printed());
    }
}

BOOST_AUTO_TEST_CASE(orphans_the_child_leaves_behind_are_reaped)
{
    rig r;
    auto p = r.exec({"orphan", "0.3"});
    std::this_thread::sleep_for(1200ms);  // the orphan has exited; the child still sleeps
    const auto states = tether::test::child_states(p->pid());
    const auto zombies = std::count(states.begin(), states.end(), 'Z');
    BOOST_TEST(zombies == 0);
    BOOST_TEST(r.run(*p) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
