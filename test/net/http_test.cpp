#include "net/connect_reply.hpp"
#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "net/plain_http_endpoints.hpp"
#include "net/tls.hpp"
#include "support/child_process.hpp"
#include "support/loopback_server.hpp"
#include "support/run_for.hpp"
#include "support/test_pki.hpp"

#include <boost/algorithm/string/join.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

using namespace std::chrono_literals;
using tether::awaitable;
using tether::error_code;
using tether::timer;
using tether::net::http_client;
using tether::net::reply;
using tether::test::loopback_server;
using tether::test::run_for;
using tether::test::sleep_for;
namespace asio = boost::asio;
namespace http = tether::net::http;
namespace net = tether::net;

namespace {

awaitable<reply> echo(http::request req, net::peer_info peer)
{
    reply r;
    r.head.headers.set("X-Method", req.method);
    r.head.headers.set("X-Target", req.target);
    r.head.headers.set("X-Peer-Port", std::to_string(peer.port));
    r.head.headers.set("X-Host", std::string(req.headers.get("Host").value_or("")));
    r.head.body = req.body;
    co_return r;
}

http::request post(std::string target, std::string body)
{
    http::request r;
    r.method = "POST";
    r.target = std::move(target);
    r.body = std::move(body);
    r.headers.set("Content-Type", "application/json");
    return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_suite)

BOOST_AUTO_TEST_CASE(request_response_and_keep_alive_reuse)
{
    asio::io_context ioc;
    loopback_server srv(ioc, echo);
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        std::set<std::string> ports;
        for (int i = 0; i < 3; ++i) {
            auto res =
                co_await client.request(srv.base(), post("/svc/M", "{\"n\":" + std::to_string(i) + "}"), 5s);
            BOOST_TEST_REQUIRE(res.has_value(), res.error().message());
            BOOST_TEST(res->status == 200u);
            BOOST_TEST(res->body == "{\"n\":" + std::to_string(i) + "}");
            BOOST_TEST(*res->headers.get("X-Method") == "POST");
            BOOST_TEST(*res->headers.get("X-Target") == "/svc/M");
            BOOST_TEST(*res->headers.get("X-Host") == "127.0.0.1:" + std::to_string(srv.port()));
            ports.insert(std::string(*res->headers.get("X-Peer-Port")));
        }
        BOOST_TEST(ports.size() == 1u, "three requests should share one kept-alive connection");
    }());
}

BOOST_AUTO_TEST_CASE(server_limits_answer_with_connect_errors)
{
    asio::io_context ioc;
    net::server_options opts;
    opts.max_body_bytes = 1024;
    opts.refusal = net::connect::refusal_reply;  // a server of the RPC protocol, as the gateway is
    loopback_server srv(ioc, echo, nullptr, opts);
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        auto big = co_await client.request(srv.base(), post("/x", std::string(2048, 'a')), 5s);
        BOOST_TEST_REQUIRE(big.has_value(), big.error().message());
        BOOST_TEST(big->status == 429u);
        BOOST_TEST(big->body.find("resource_exhausted") != std::string::npos, big->body);
        auto ok = co_await client.request(srv.base(), post("/x", std::string(1024, 'a')), 5s);
        BOOST_TEST_REQUIRE(ok.has_value());
        BOOST_TEST(ok->status == 200u);
    }());
}

BOOST_AUTO_TEST_CASE(handler_exception_is_a_500_not_a_crash)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request, net::peer_info) -> awaitable<reply> {
        throw std::runtime_error("boom");
        co_return reply{};
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        auto res = co_await client.request(srv.base(), post("/x", "{}"), 5s);
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->status == 500u);
        BOOST_TEST(res->body.find("boom") == std::string::npos, "internal details must not leak");
    }());
    BOOST_TEST(srv.logs().has("http.handler_failed"));
}

BOOST_AUTO_TEST_CASE(a_reply_field_that_would_split_the_answer_is_a_500_and_never_written)
{
    // A value a handler took from a request or the store, with a line break
    // in it: written, it would add a field or start a second answer.
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request req, net::peer_info) -> awaitable<reply> {
        reply r;
        if (req.target != "/fine") r.head.headers.set("X-Name", "a\r\nSet-Cookie: stolen=1");
        if (req.target == "/stream") {
            r.stream = [](net::body_writer& w) -> awaitable<error_code> {
                co_return co_await w.write("data");
            };
        } else {
            r.head.body = "body";
        }
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client = co_await asio::this_coro::executor;
        http_client client(ex_client, nullptr);
        for (const char* target : {"/whole", "/stream"}) {
            http::request req;
            req.target = target;
            auto res = co_await client.request(srv.base(), req, 5s);
            BOOST_TEST_REQUIRE(res.has_value(), target << ": " << res.error().message());
            BOOST_TEST(res->status == 500u, target);
            BOOST_TEST(!res->headers.get("Set-Cookie"), target << ": the value's line break was written");
            BOOST_TEST(!res->headers.get("X-Name"), target);
            BOOST_TEST(res->body.find("data") == std::string::npos, target << ": " << res->body);
        }
        http::request fine;
        fine.target = "/fine";
        auto ok = co_await client.request(srv.base(), fine, 5s);
        BOOST_TEST_REQUIRE(ok.has_value(), ok.error().message());
        BOOST_TEST(ok->body == "body");
    }());
    BOOST_TEST(srv.logs().has("http.reply_unwritable"));
}

BOOST_AUTO_TEST_CASE(the_server_frames_every_reply_whatever_the_handler_set)
{
    // A handler's own Content-Length, Transfer-Encoding or Connection would
    // frame the body a second way: the peer could read two answers, or wait
    // for bytes that never come. The server writes the framing alone.
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request req, net::peer_info peer) -> awaitable<reply> {
        reply r;
        r.head.headers.set("X-Peer-Port", std::to_string(peer.port));
        r.head.headers.set("Content-Length", "99");
        r.head.headers.set("Transfer-Encoding", "chunked");
        r.head.headers.set("Connection", "close");
        r.head.body = "hello";
        if (req.target == "/none") r.head.status = 204;  // never a body, nor a length
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client = co_await asio::this_coro::executor;
        http_client client(ex_client, nullptr);
        http::request get;
        auto first = co_await client.request(srv.base(), get, 5s);
        BOOST_TEST_REQUIRE(first.has_value(), first.error().message());
        BOOST_TEST(first->body == "hello");
        BOOST_TEST(first->headers.get("Content-Length").value_or("") == "5");
        BOOST_TEST(!first->headers.get("Transfer-Encoding"));
        BOOST_TEST(!first->headers.get("Connection"));
        http::request none;
        none.target = "/none";
        auto empty = co_await client.request(srv.base(), none, 5s);
        BOOST_TEST_REQUIRE(empty.has_value(), empty.error().message());
        BOOST_TEST(empty->status == 204u);
        BOOST_TEST(empty->body.empty());
        BOOST_TEST(!empty->headers.get("Content-Length"));
        auto again = co_await client.request(srv.base(), get, 5s);
        BOOST_TEST_REQUIRE(again.has_value(), again.error().message());
        BOOST_TEST(again->body == "hello");
        BOOST_TEST(*again->headers.get("X-Peer-Port") == *first->headers.get("X-Peer-Port"),
                   "the connection should stay open for the next request");
        BOOST_TEST(*empty->headers.get("X-Peer-Port") == *first->headers.get("X-Peer-Port"));
    }());
}

BOOST_AUTO_TEST_CASE(a_request_field_that_would_split_the_request_is_never_sent)
{
    // A token or header taken from a file or a server's answer, with a line
    // break in it: written, it would add a field or a second request.
    asio::io_context ioc;
    int seen = 0;
    std::string hosts;
    loopback_server srv(ioc, [&](http::request req, net::peer_info) -> awaitable<reply> {
        ++seen;
        hosts += std::string(req.headers.get("Host").value_or("none")) + ";";
        reply r;
        r.head.body = std::to_string(req.headers.count("Host")) + " " + std::to_string(req.body.size());
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client = co_await asio::this_coro::executor;
        http_client client(ex_client, nullptr);
        auto split = post("/x", "{}");
        split.headers.set("Authorization", "Bearer t\r\nX-Admin: 1");
        auto res = co_await client.request(srv.base(), split, 5s);
        BOOST_TEST_REQUIRE(!res.has_value(), "the request was sent");
        BOOST_TEST((res.error() == net::errc::unwritable_message), res.error().message());
        auto opened = co_await client.open(srv.base(), split, 5s);
        BOOST_TEST(!opened.has_value());
        // The client frames and addresses every request itself.
        auto own = post("/x", "{}");
        own.headers.set("Content-Length", "99");
        own.headers.set("Transfer-Encoding", "chunked");
        own.headers.set("Host", "elsewhere.example");
        auto ok = co_await client.request(srv.base(), own, 5s);
        BOOST_TEST_REQUIRE(ok.has_value(), ok.error().message());
        BOOST_TEST(ok->body == "1 2");
    }());
    BOOST_TEST(seen == 1, "requests the server saw: " << seen);
    BOOST_TEST(hosts == "127.0.0.1:" + std::to_string(srv.port()) + ";");
}

BOOST_AUTO_TEST_CASE(client_deadline_covers_the_whole_response)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request, net::peer_info) -> awaitable<reply> {
        co_await sleep_for(3s);
        co_return reply{};
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        const auto t0 = std::chrono::steady_clock::now();
        auto res = co_await client.request(srv.base(), post("/slow", "{}"), 200ms);
        const auto took = std::chrono::steady_clock::now() - t0;
        BOOST_TEST_REQUIRE(!res.has_value());
        BOOST_TEST((res.error() == net::errc::timeout), res.error().message());
        BOOST_TEST((took < 1s));
    }());
}

BOOST_AUTO_TEST_CASE(client_body_limit)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request, net::peer_info) -> awaitable<reply> {
        reply r;
        r.head.body = std::string(10000, 'z');
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        net::client_options o;
        o.max_body_bytes = 4096;
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr, o);
        auto res = co_await client.request(srv.base(), post("/x", "{}"), 5s);
        BOOST_TEST_REQUIRE(!res.has_value());
        BOOST_TEST((res.error() == net::errc::body_too_large), res.error().message());
    }());
}

namespace {

/// A broken server: answers each connection's first request with `canned`
/// bytes, whatever was asked, then closes.
awaitable<void> canned_server(asio::ip::tcp::acceptor& acc, std::string canned)
{
    for (;;) {
        auto [ec, sock] = co_await acc.async_accept(tether::nothrow);
        if (ec) co_return;
        std::array<char, 4096> buf{};
        auto [rec, n] = co_await sock.async_read_some(asio::buffer(buf), tether::nothrow);
        (void)rec;
        (void)n;
        auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(canned), tether::nothrow);
        (void)wec;
        (void)wn;
        error_code ignored;
        sock.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(client_refuses_hostile_responses_without_throwing)
{
    const std::string trailer =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: " + std::string(70000, 'a') +
        "\r\n\r\n";
    const std::string many = [] {
        std::string t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
        for (int i = 0; i < 5000; ++i) t += "T" + std::to_string(i) + ": vvvvvvvvvvvvvv\r\n";
        return t + "\r\n";
    }();
    const std::string smuggle = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    const std::string fold = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: a\r\n b\r\n\r\n";
    for (const auto& [canned, want] : std::vector<std::pair<std::string, error_code>>{
             {trailer, net::errc::header_too_large},
             {many, net::errc::header_too_large},
             {smuggle, net::errc::bad_response},
             {fold, net::errc::bad_response},
         }) {
        for (const bool streamed : {false, true}) {
            asio::io_context ioc;
            asio::ip::tcp::acceptor acc(ioc, {asio::ip::make_address("127.0.0.1"), 0});
            const auto port = acc.local_endpoint().port();
            asio::co_spawn(ioc, canned_server(acc, canned),
                           [](const std::exception_ptr& e) { BOOST_TEST(!e, "the canned server threw"); });
            run_for(ioc, [&]() -> awaitable<void> {
                const auto ex_client = co_await asio::this_coro::executor;
                http_client client(ex_client, nullptr);
                const auto base = *net::parse_url("http://127.0.0.1:" + std::to_string(port));
                error_code got;
                if (!streamed) {
                    auto res = co_await client.request(base, post("/x", "{}"), 5s);
                    if (!res) got = res.error();
                } else {
                    http::request get;
                    auto st = co_await client.open(base, get, 5s);
                    if (!st) {
                        got = st.error();
                    } else {
                        for (;;) {
                            auto piece = co_await (*st)->read_some(5s);
                            if (!piece) {
                                got = piece.error();
                                break;
                            }
                            if (piece->empty()) break;
                        }
                    }
                }
                BOOST_TEST((got == want), canned.substr(0, 60) + " streamed=" + std::to_string(streamed) +
                                              ": " + got.message());
            }());
            acc.close();
            ioc.run_for(100ms);
        }
    }
}

BOOST_AUTO_TEST_CASE(connections_per_address_are_limited)
{
    asio::io_context ioc;
    net::server_options so;
    so.max_connections_per_ip = 3;
    loopback_server srv(ioc, echo, nullptr, so);
    std::vector<asio::ip::tcp::socket> idle;
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        for (int i = 0; i < 5; ++i) {
            asio::ip::tcp::socket s(ex);
            auto [ec] =
                co_await s.async_connect({asio::ip::make_address("127.0.0.1"), srv.port()}, tether::nothrow);
            BOOST_TEST_REQUIRE(!ec);
            idle.push_back(std::move(s));
        }
        co_await sleep_for(200ms);
        // The two beyond the limit were closed at once; the first three wait.
        int closed = 0;
        for (auto& s : idle) {
            s.non_blocking(true);
            std::array<char, 1> b{};
            error_code rec;
            const auto n = s.read_some(asio::buffer(b), rec);
            if (rec == asio::error::eof || rec == asio::error::connection_reset || (!rec && n == 0)) ++closed;
        }
        BOOST_TEST(closed == 2);
        // One goes away: its slot is free for a new connection.
        idle.front().close();
        co_await sleep_for(100ms);
        http_client client(ex, nullptr);
        auto res = co_await client.request(srv.base(), post("/after", "{}"), 5s);
        BOOST_TEST(res.has_value());
    }());
    BOOST_TEST(srv.logs().has("http.connection_refused"));
}

namespace {

/// Who the server took the peer for.
awaitable<reply> who(http::request, net::peer_info peer)
{
    reply r;
    r.head.body = peer.address + " " + std::to_string(peer.port);
    co_return r;
}

const std::string v1_client_a = "PROXY TCP4 198.51.100.7 10.0.0.1 4242 443\r\n";
const std::string v1_client_b = "PROXY TCP4 198.51.100.8 10.0.0.1 4243 443\r\n";
/// Version 2: 198.51.100.9:777 -> 10.0.0.1:443.
const std::string v2_client_c =
    std::string("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xC6\x33\x64\x09\x0A\x00\x00\x01\x03\x09\x01\xBB", 28);
/// Version 2 LOCAL: a balancer's health check.
const std::string v2_local = std::string("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
const std::string get_close = "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Writes `pieces` on a new connection, `gap` apart, and returns what the
/// server answers until it closes.
awaitable<std::string> exchange_in_pieces(std::uint16_t port, std::vector<std::string> pieces,
                                          std::chrono::milliseconds gap)
{
    const auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::socket s(ex);
    auto [cec] = co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port}, tether::nothrow);
    if (cec) co_return "connect failed";
    for (const auto& piece : pieces) {
        if (gap.count() > 0) co_await sleep_for(gap);
        auto [wec, written] = co_await asio::async_write(s, asio::buffer(piece), tether::nothrow);
        if (wec || written != piece.size()) break;
    }
    std::string answer;
    // Until the server closes (eof) or resets: what came before is the answer.
    [[maybe_unused]] auto [rec, n] =
        co_await asio::async_read(s, asio::dynamic_buffer(answer), tether::nothrow);
    co_return answer;
}

awaitable<std::string> exchange(std::uint16_t port, std::string bytes)
{
    std::vector<std::string> one;
    one.push_back(std::move(bytes));
    co_return co_await exchange_in_pieces(port, std::move(one), 0ms);
}

std::string body_of(const std::string& answer)
{
    const auto at = answer.find("\r\n\r\n");
    return at == std::string::npos ? "<no answer: " + answer + ">" : answer.substr(at + 4);
}

/// Options of a server behind a balancer on loopback: every connection from
/// it may begin with a PROXY header naming the client.
net::server_options behind_a_balancer(std::size_t connections_per_client = 0)
{
    net::server_options so;
    so.proxy_from = [](const asio::ip::address& a) {
        return a.is_loopback();
    };
    so.max_connections_per_ip = connections_per_client;
    return so;
}

/// A connection left open after `header` (empty: the balancer's own).
awaitable<asio::ip::tcp::socket> open_after(std::uint16_t port, std::string header)
{
    asio::ip::tcp::socket s(co_await asio::this_coro::executor);
    auto [cec] = co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port}, tether::nothrow);
    BOOST_TEST_REQUIRE(!cec);
    if (!header.empty()) co_await asio::async_write(s, asio::buffer(header), tether::nothrow);
    co_return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_balancer_s_proxy_header_names_the_client)
{
    // Behind a balancer every connection came from its address: one limit
    // for the whole fleet, and logs that named no client.
    asio::io_context ioc;
    auto so = behind_a_balancer(2);
    so.header_timeout = 1s;
    loopback_server srv(ioc, who, nullptr, so);
    net::server_options direct_only = so;
    direct_only.proxy_from = [](const asio::ip::address&) {
        return false;
    };
    loopback_server elsewhere(ioc, who, nullptr, direct_only);
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        std::string a = co_await exchange(srv.port(), v1_client_a + get_close);
        BOOST_TEST(body_of(a) == "198.51.100.7 4242");
        a = co_await exchange(srv.port(), v2_client_c + get_close);
        BOOST_TEST(body_of(a) == "198.51.100.9 777");
        // A header in pieces, and the request after it in a write of its own.
        const std::vector<std::string> pieces{v1_client_a.substr(0, 9), v1_client_a.substr(9, 20),
                                              v1_client_a.substr(29), get_close};
        a = co_await exchange_in_pieces(srv.port(), pieces, 30ms);
        BOOST_TEST(body_of(a) == "198.51.100.7 4242");
        // None (the balancer's own request) and LOCAL (its health check).
        a = co_await exchange(srv.port(), get_close);
        BOOST_TEST(body_of(a).starts_with("127.0.0.1 "), a);
        a = co_await exchange(srv.port(), v2_local + get_close);
        BOOST_TEST(body_of(a).starts_with("127.0.0.1 "), a);
        // A connect-only health check (HAProxy's plain `check` in TCP mode)
        // sends nothing at all: not a broken header, nothing to log.
        for (int i = 0; i < 3; ++i) {
            asio::ip::tcp::socket probe(ex);
            auto [pec] = co_await probe.async_connect({asio::ip::make_address("127.0.0.1"), srv.port()},
                                                      tether::nothrow);
            BOOST_TEST_REQUIRE(!pec);
        }
        co_await sleep_for(100ms);
        BOOST_TEST(!srv.logs().has("http.proxy_header_refused"));

        // A broken header, or one never finished: closed unanswered.
        const std::vector<std::string> broken{"PROXY TCP4 198.51.100.7 10.0.0.1 4242\r\n" + get_close,
                                              "PROXY TCP4 198.51.100.7 10.0.0.1 4242 443\n" + get_close,
                                              std::string(v2_client_c).replace(12, 1, "\x22") + get_close};
        for (const auto& b : broken) {
            a = co_await exchange(srv.port(), b);
            BOOST_TEST(a == "", b);
        }
        const auto started = std::chrono::steady_clock::now();
        a = co_await exchange(srv.port(), "PROXY TCP4 198.51");
        const auto waited = std::chrono::steady_clock::now() - started;
        BOOST_TEST(a == "");
        BOOST_TEST((waited >= 900ms && waited < 5s), "the header timeout bounds the wait");

        // The per-address limit counts clients, and the balancer not at all.
        std::vector<asio::ip::tcp::socket> held;
        const std::vector<std::string> openers{v1_client_a, v1_client_a, std::string(), std::string(),
                                               std::string()};
        for (const auto& header : openers) held.push_back(co_await open_after(srv.port(), header));
        co_await sleep_for(100ms);
        a = co_await exchange(srv.port(), v1_client_a + get_close);
        BOOST_TEST(a == "", "a third from 198.51.100.7");
        a = co_await exchange(srv.port(), v1_client_b + get_close);
        BOOST_TEST(body_of(a) == "198.51.100.8 4243");
        a = co_await exchange(srv.port(), get_close);
        BOOST_TEST(body_of(a).starts_with("127.0.0.1 "),
                   "the balancer's own, with three of its connections open");
        held.clear();
        co_await sleep_for(100ms);
        a = co_await exchange(srv.port(), v1_client_a + get_close);
        BOOST_TEST(body_of(a) == "198.51.100.7 4242", "its slots were given back");

        // From an address not trusted, a header is only a bad request.
        a = co_await exchange(elsewhere.port(), v1_client_a + get_close);
        BOOST_TEST(a.starts_with("HTTP/1.1 400"), a);
    }());
    BOOST_TEST(srv.logs().has("http.proxy_header_refused"));
    BOOST_TEST(srv.logs().has("http.connection_refused"));
}

BOOST_AUTO_TEST_CASE(connections_from_one_ipv6_64_count_as_one_client)
{
    // The clients come in PROXY headers: this machine has no IPv6 /64s of
    // its own to connect from.
    asio::io_context ioc;
    loopback_server srv(ioc, who, nullptr, behind_a_balancer(2));
    const auto from = [](const std::string& client) {
        return "PROXY TCP6 " + client + " 2001:db8::ffff 1000 443\r\n";
    };
    run_for(ioc, [&]() -> awaitable<void> {
        std::vector<asio::ip::tcp::socket> held;
        const std::vector<std::string> same_64{"2001:db8:1:2::1", "2001:db8:1:2:aaaa::9"};
        for (const auto& client : same_64) held.push_back(co_await open_after(srv.port(), from(client)));
        co_await sleep_for(100ms);
        auto a = co_await exchange(srv.port(), from("2001:db8:1:2:ffff:ffff:ffff:3") + get_close);
        BOOST_TEST(a == "", "a third from 2001:db8:1:2::/64");
        a = co_await exchange(srv.port(), from("2001:db8:1:3::1") + get_close);
        BOOST_TEST(body_of(a) == "2001:db8:1:3::1 1000", "the next /64 is another client");
        a = co_await exchange(srv.port(), from("::ffff:198.51.100.7") + get_close);
        BOOST_TEST(body_of(a) == "::ffff:198.51.100.7 1000");
    }());
    BOOST_TEST(srv.logs().has("http.connection_refused"));
}

BOOST_AUTO_TEST_CASE(a_proxy_header_precedes_the_tls_handshake)
{
    // A balancer passing TLS through (HAProxy in TCP mode, send-proxy-v2)
    // writes the header in the clear, then the client's handshake follows.
    tether::test::temp_dir dir;
    const auto pki = tether::test::make_pki(dir.path(), "localhost", {"localhost"}, {"127.0.0.1"});
    asio::io_context ioc;
    loopback_server srv(ioc, who, net::make_server_tls(pki.cert, pki.key), behind_a_balancer());
    const auto client_tls = net::make_client_tls(pki.ca_cert);
    std::string answer;
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        asio::ip::tcp::socket s(ex);
        co_await s.async_connect({asio::ip::make_address("127.0.0.1"), srv.port()}, tether::use_awaitable);
        co_await asio::async_write(s, asio::buffer(v2_client_c), tether::use_awaitable);
        asio::ssl::stream<asio::ip::tcp::socket&> tls(s, *client_tls);
        co_await tls.async_handshake(asio::ssl::stream_base::client, tether::use_awaitable);
        co_await asio::async_write(tls, asio::buffer(get_close), tether::use_awaitable);
        [[maybe_unused]] auto [ec, n] =
            co_await asio::async_read(tls, asio::dynamic_buffer(answer), tether::nothrow);
    }());
    BOOST_TEST(body_of(answer) == "198.51.100.9 777");
}

BOOST_AUTO_TEST_CASE(out_of_descriptors_the_server_logs_once_a_second_and_recovers)
{
    asio::io_context ioc;
    loopback_server srv(ioc, echo);
    rlimit before{};
    BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
    // Room for a few more descriptors only, so accept() meets EMFILE.
    int highest = ::dup(0);
    ::close(highest);
    rlimit tight = before;
    tight.rlim_cur = static_cast<rlim_t>(highest + 4);
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
    std::vector<int> clients;
    for (int i = 0; i < 8; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(srv.port());
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void)::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        clients.push_back(fd);
    }
    tether::test::pump_for(ioc, 1500ms);
    const auto failures = srv.logs().events("http.accept_failed").size();
    for (const int fd : clients) ::close(fd);
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &before) == 0);
    BOOST_TEST(failures >= 1u);
    BOOST_TEST(failures <= 2u, failures << " lines in 1.5 s");
    // With descriptors back, it serves again.
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        http_client client(ex, nullptr);
        auto res = co_await client.request(srv.base(), post("/again", "{}"), 5s);
        BOOST_TEST(res.has_value());
    }());
}

BOOST_AUTO_TEST_CASE(cancellation_returns_promptly)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request, net::peer_info) -> awaitable<reply> {
        co_await sleep_for(10s);
        co_return reply{};
    });
    asio::cancellation_signal cancel;
    bool finished = false;
    std::chrono::steady_clock::time_point emitted;
    std::chrono::steady_clock::duration latency{};
    http_client client(ioc.get_executor(), nullptr);
    asio::co_spawn(
        ioc,
        [&]() -> awaitable<void> {
            auto res = co_await client.request(srv.base(), post("/hang", "{}"), 30s);
            BOOST_TEST(!res.has_value());
        },
        asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr) {
            finished = true;
            latency = std::chrono::steady_clock::now() - emitted;
        }));
    run_for(ioc, [&]() -> awaitable<void> {
        co_await sleep_for(50ms);
        emitted = std::chrono::steady_clock::now();
        cancel.emit(asio::cancellation_type::terminal);
        for (int i = 0; i < 40 && !finished; ++i) co_await sleep_for(5ms);
    }());
    BOOST_TEST(finished);
    BOOST_TEST((latency < 100ms),
               "cancellation took " << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count()
                                    << " ms");
}

BOOST_AUTO_TEST_CASE(streams_and_head_requests_share_the_keep_alive_pool)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request req, net::peer_info peer) -> awaitable<reply> {
        reply r;
        r.head.headers.set("X-Peer-Port", std::to_string(peer.port));
        if (req.target == "/stream") {
            r.reuse_after_stream = true;
            r.stream = [](net::body_writer& w) -> awaitable<tether::error_code> {
                for (const char* piece : {"a", "b", "c"})
                    if (auto ec = co_await w.write(piece)) co_return ec;
                co_return tether::error_code{};
            };
        } else {
            r.head.body = "hello";
        }
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client = co_await asio::this_coro::executor;
        http_client client(ex_client, nullptr);
        const auto port_of = [](const http::response& r) {
            return std::string(*r.headers.get("X-Peer-Port"));
        };
        const http::request get_x;
        http::request get_stream;
        get_stream.target = "/stream";

        auto first = co_await client.request(srv.base(), get_x, 5s);
        BOOST_TEST_REQUIRE(first.has_value());
        const auto port = port_of(*first);
        {
            auto s = co_await client.open(srv.base(), get_stream, 5s);
            BOOST_TEST_REQUIRE(s.has_value());
            BOOST_TEST(port_of((*s)->head()) == port);  // taken from the pool
            std::string all;
            for (;;) {
                auto piece = co_await (*s)->read_some(5s);
                BOOST_TEST_REQUIRE(piece.has_value());
                if (piece->empty()) break;
                all += *piece;
            }
            BOOST_TEST(all == "abc");
            BOOST_TEST((*s)->done());
        }  // read to its end: back to the pool
        auto second = co_await client.request(srv.base(), get_x, 5s);
        BOOST_TEST_REQUIRE(second.has_value());
        BOOST_TEST(port_of(*second) == port);
        {
            auto s = co_await client.open(srv.base(), get_stream, 5s);
            BOOST_TEST_REQUIRE(s.has_value());
            BOOST_TEST(!(*s)->done());
        }  // dropped half read: closed, never reused
        auto third = co_await client.request(srv.base(), get_x, 5s);
        BOOST_TEST_REQUIRE(third.has_value());
        BOOST_TEST(port_of(*third) != port);

        // HEAD: the length of the GET answer, no body, and the connection
        // still in step for the next request (not waiting for 5 bytes).
        http::request head;
        head.method = "HEAD";
        auto h = co_await client.request(srv.base(), head, 5s);
        BOOST_TEST_REQUIRE(h.has_value(), h.error().message());
        BOOST_TEST(*h->headers.get("Content-Length") == "5");
        BOOST_TEST(h->body.empty());
        auto after = co_await client.request(srv.base(), get_x, 5s);
        BOOST_TEST_REQUIRE(after.has_value());
        BOOST_TEST(after->body == "hello");
        BOOST_TEST(port_of(*after) == port_of(*h));
    }());
}

BOOST_AUTO_TEST_CASE(streamed_reply_reaches_the_body_reader)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request, net::peer_info) -> awaitable<reply> {
        reply r;
        r.head.headers.set("Content-Type", "text/event-stream");
        r.stream = [](net::body_writer& w) -> awaitable<error_code> {
            for (int i = 0; i < 3; ++i) {
                if (auto ec = co_await w.write("data: " + std::to_string(i) + "\n\n")) co_return ec;
                co_await sleep_for(10ms);
            }
            co_return error_code{};
        };
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        http::request req;
        req.target = "/v1/events";
        auto s = co_await client.open(srv.base(), req, 5s);
        BOOST_TEST_REQUIRE(s.has_value(), s.error().message());
        BOOST_TEST((*s)->head().status == 200u);
        BOOST_TEST(*(*s)->head().headers.get("Content-Type") == "text/event-stream");
        std::string all;
        for (;;) {
            auto chunk = co_await (*s)->read_some(5s);
            BOOST_TEST_REQUIRE(chunk.has_value(), chunk.error().message());
            if (chunk->empty()) break;
            all += *chunk;
        }
        BOOST_TEST(all == "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    }());
}

BOOST_AUTO_TEST_CASE(stream_read_timeout_fires_without_bytes)
{
    asio::io_context ioc;
    loopback_server srv(ioc, [](http::request, net::peer_info) -> awaitable<reply> {
        reply r;
        r.stream = [](net::body_writer& w) -> awaitable<error_code> {
            auto ec = co_await w.write(": hello\n");
            if (!ec) co_await sleep_for(5s);
            co_return ec;
        };
        co_return r;
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        const http::request get;  // named: a braced prvalue here trips GCC 12's coroutine codegen
        auto s = co_await client.open(srv.base(), get, 5s);
        BOOST_TEST_REQUIRE(s.has_value());
        auto first = co_await (*s)->read_some(300ms);
        BOOST_TEST_REQUIRE(first.has_value());
        BOOST_TEST(*first == ": hello\n");
        auto second = co_await (*s)->read_some(300ms);
        BOOST_TEST_REQUIRE(!second.has_value());
        BOOST_TEST((second.error() == net::errc::timeout));
    }());
}

BOOST_AUTO_TEST_CASE(tls_with_test_ca_and_hostname_checks)
{
    tether::test::temp_dir dir;
    const auto good = tether::test::make_pki(dir.path(), "localhost", {"localhost"}, {"127.0.0.1"});
    const auto wrong = tether::test::make_pki(dir.path(), "other", {"other.example"}, {});
    asio::io_context ioc;
    loopback_server srv(ioc, echo, net::make_server_tls(good.cert, good.key));
    loopback_server bad(ioc, echo, net::make_server_tls(wrong.cert, wrong.key));
    const auto expired = tether::test::make_pki(dir.path(), "expired", {"localhost"}, {"127.0.0.1"}, true);
    loopback_server old(ioc, echo, net::make_server_tls(expired.cert, expired.key));
    run_for(ioc, [&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        http_client trusted(ex, net::make_client_tls(good.ca_cert));
        for (const char* host : {"localhost", "127.0.0.1"}) {
            auto res = co_await trusted.request(srv.base(host), post("/x", "hi"), 5s);
            BOOST_TEST_REQUIRE(res.has_value(), host << ": " << res.error().message());
            BOOST_TEST(res->body == "hi");
        }
        // Same CA, but the certificate names another host: each failure says why.
        auto mismatch = co_await trusted.request(bad.base("localhost"), post("/x", "hi"), 5s);
        BOOST_TEST_REQUIRE(!mismatch.has_value());
        BOOST_TEST((mismatch.error() == net::errc::tls_wrong_host), mismatch.error().message());
        auto ip_mismatch = co_await trusted.request(bad.base("127.0.0.1"), post("/x", "hi"), 5s);
        BOOST_TEST_REQUIRE(!ip_mismatch.has_value());
        BOOST_TEST((ip_mismatch.error() == net::errc::tls_wrong_host), ip_mismatch.error().message());
        // The system store does not know the test CA.
        http_client system(ex, net::make_client_tls(std::nullopt));
        auto unknown = co_await system.request(srv.base("localhost"), post("/x", "hi"), 5s);
        BOOST_TEST_REQUIRE(!unknown.has_value());
        BOOST_TEST((unknown.error() == net::errc::tls_unknown_ca), unknown.error().message());
        auto stale = co_await trusted.request(old.base("localhost"), post("/x", "hi"), 5s);
        BOOST_TEST_REQUIRE(!stale.has_value());
        BOOST_TEST((stale.error() == net::errc::tls_expired), stale.error().message());
        // No TLS context at all: https is refused before connecting.
        http_client plain_only(ex, nullptr);
        auto refused = co_await plain_only.request(srv.base("localhost"), post("/x", "hi"), 5s);
        BOOST_TEST_REQUIRE(!refused.has_value());
        BOOST_TEST((refused.error() == net::errc::url_refused));
    }());
}

BOOST_AUTO_TEST_CASE(plain_http_goes_only_to_loopback_addresses)
{
    // parse_url allows plain http only to a loopback host, but a name is
    // resolved after that: "localhost." is in no /etc/hosts, and DNS may
    // answer anything. Of what a name resolves to, http keeps only loopback.
    using tcp = asio::ip::tcp;
    const auto entry = [](const char* address) {
        return tcp::resolver::results_type::value_type(tcp::endpoint(asio::ip::make_address(address), 80),
                                                       "localhost.", "80");
    };
    const std::vector<tcp::resolver::results_type::value_type> answer{
        entry("10.1.2.3"), entry("127.0.0.1"),        entry("2001:db8::1"),
        entry("::1"),      entry("::ffff:127.0.0.2"), entry("::ffff:10.0.0.1")};
    const auto plain = net::parse_url("http://localhost.:80/");
    const auto secure = net::parse_url("https://gw.example.com/");
    BOOST_TEST_REQUIRE(plain.has_value());
    BOOST_TEST_REQUIRE(secure.has_value());
    std::vector<std::string> kept;
    for (const auto& ep : net::permitted_endpoints(*plain, answer)) kept.push_back(ep.address().to_string());
    const std::vector<std::string> loopback{"127.0.0.1", "::1", "::ffff:127.0.0.2"};
    BOOST_TEST(kept == loopback, boost::algorithm::join(kept, " "));
    BOOST_TEST(net::permitted_endpoints(*secure, answer).size() == answer.size());

    // And the client does not connect when nothing is left: a url made by
    // hand stands for a name whose DNS answer is off loopback.
    asio::io_context ioc;
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client = co_await asio::this_coro::executor;
        http_client client(ex_client, nullptr);
        net::url off;
        off.scheme = "http";
        off.host = "192.0.2.1";  // TEST-NET-1: nobody's
        off.port = 80;
        auto refused = co_await client.request(off, post("/x", "a session token"), 5s);
        BOOST_TEST_REQUIRE(!refused.has_value());
        BOOST_TEST((refused.error() == net::errc::not_loopback), refused.error().message());
        BOOST_TEST(refused.error().message().find("loopback") != std::string::npos);
    }());
}

BOOST_AUTO_TEST_CASE(a_large_reply_arrives_whole_with_and_without_tls)
{
    // Larger than one TLS record or one write: the head and the body, or a
    // chunk's size line and bytes, go out as several buffers, which a TLS
    // stream takes a record at a time.
    tether::test::temp_dir dir;
    const auto pki = tether::test::make_pki(dir.path(), "localhost", {"localhost"}, {"127.0.0.1"});
    std::string big(3U << 20U, 'x');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    const auto handler = [&](http::request req, net::peer_info) -> awaitable<reply> {
        reply r;
        if (req.target == "/stream") {
            r.reuse_after_stream = true;
            r.stream = [&](net::body_writer& w) -> awaitable<error_code> {
                if (auto ec = co_await w.write(std::string_view(big).substr(0, 100000))) co_return ec;
                co_return co_await w.write(std::string_view(big).substr(100000, 20000));
            };
        } else {
            r.head.body = big;
        }
        co_return r;
    };
    asio::io_context ioc;
    loopback_server plain(ioc, handler);
    loopback_server secure(ioc, handler, net::make_server_tls(pki.cert, pki.key));
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        net::client_options opts;
        opts.max_body_bytes = 4U << 20U;
        http_client client(ex, net::make_client_tls(pki.ca_cert), opts);
        const std::vector<net::url> bases{plain.base(),
                                          secure.base("localhost")};  // named: GCC 12 coroutines
        for (const auto& base : bases) {
            for (int round = 0; round < 2; ++round) {  // the second on the kept-alive connection
                const http::request get;
                auto res = co_await client.request(base, get, 20s);
                BOOST_TEST_REQUIRE(res.has_value(), base.origin() << ": " << res.error().message());
                BOOST_TEST(res->body.size() == big.size(), base.origin());
                BOOST_TEST((res->body == big), base.origin());
            }
            http::request get_stream;
            get_stream.target = "/stream";
            auto s = co_await client.open(base, get_stream, 20s);
            BOOST_TEST_REQUIRE(s.has_value(), base.origin() << ": " << s.error().message());
            std::string all;
            for (int reads = 0; reads < 1000 && !(*s)->done(); ++reads) {
                auto piece = co_await (*s)->read_some(20s);
                BOOST_TEST_REQUIRE(piece.has_value(), base.origin() << ": " << piece.error().message());
                all += *piece;
            }
            BOOST_TEST(all.size() == 120000U, base.origin());
            BOOST_TEST((all == big.substr(0, 120000)), base.origin());
        }
    }());
}

BOOST_AUTO_TEST_CASE(server_drains_open_connections_on_cancel)
{
    asio::io_context ioc;
    auto srv = std::make_unique<loopback_server>(ioc, echo);
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex_client =
            co_await asio::this_coro::executor;  // bound first: GCC 12 coroutine temporaries
        http_client client(ex_client, nullptr);
        auto res = co_await client.request(srv->base(), post("/x", "{}"), 5s);
        BOOST_TEST(res.has_value());
        // the kept-alive connection stays open in the client's pool
    }());
    const auto t0 = std::chrono::steady_clock::now();
    srv->stop();
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 2s));
}

BOOST_AUTO_TEST_SUITE_END()

#include "net/rpc_client.hpp"

#include <boost/json/parse.hpp>

BOOST_AUTO_TEST_SUITE(rpc_suite)

BOOST_AUTO_TEST_CASE(unary_calls_follow_the_connect_conventions)
{
    asio::io_context ioc;
    std::vector<http::request> seen;
    loopback_server srv(ioc, [&](http::request req, net::peer_info) -> awaitable<reply> {
        seen.push_back(req);
        if (req.target == "/tether.v1.NodeService/BeginAuth")
            co_return net::connect::error_reply(403, net::connect::code::permission_denied, "unknown node");
        if (req.target == "/tether.v1.NodeService/Broken") {
            reply r;
            r.head.body = "not json";
            co_return r;
        }
        co_return net::json_reply(R"({"configUpdatedAt":"42"})");
    });
    run_for(ioc, [&]() -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        http_client http(ex, nullptr);
        net::rpc_client rpc(http, srv.base());
        const tether::secret token{"sess-abc"};
        boost::json::object beat;
        beat["uptimeSeconds"] = "5";
        auto ok = co_await rpc.call("tether.v1.NodeService", "Heartbeat", beat, token, 5s);
        BOOST_TEST_REQUIRE(ok.has_value());
        BOOST_TEST(ok->at("configUpdatedAt").as_string() == "42");

        const boost::json::object empty;
        const tether::secret none;
        auto denied = co_await rpc.call("tether.v1.NodeService", "BeginAuth", empty, none, 5s);
        BOOST_TEST_REQUIRE(!denied.has_value());
        BOOST_TEST((denied.error().c == net::connect::code::permission_denied));
        BOOST_TEST(denied.error().message == "unknown node");

        auto broken = co_await rpc.call("tether.v1.NodeService", "Broken", empty, none, 5s);
        BOOST_TEST_REQUIRE(!broken.has_value());
        BOOST_TEST((broken.error().c == net::connect::code::internal));

        // Nothing listens on port 1: a transport failure is `unavailable`.
        net::rpc_client nowhere(http, *net::parse_url("http://127.0.0.1:1"));
        auto down = co_await nowhere.call("tether.v1.NodeService", "Heartbeat", empty, token, 2s);
        BOOST_TEST_REQUIRE(!down.has_value());
        BOOST_TEST((down.error().c == net::connect::code::unavailable));
        BOOST_TEST(down.error().message.find("sess-abc") == std::string::npos);
    }());
    BOOST_TEST_REQUIRE(seen.size() == 3u);
    BOOST_TEST(seen[0].method == "POST");
    BOOST_TEST(*seen[0].headers.get("Content-Type") == "application/json");
    BOOST_TEST(*seen[0].headers.get("Connect-Protocol-Version") == "1");
    BOOST_TEST(*seen[0].headers.get("Connect-Timeout-Ms") == "5000");
    BOOST_TEST(*seen[0].headers.get("Authorization") == "Bearer sess-abc");
    BOOST_TEST(boost::json::parse(seen[0].body).at("uptimeSeconds").as_string() == "5");
    BOOST_TEST(!seen[1].headers.get("Authorization").has_value());
    BOOST_TEST(seen[1].body == "{}");
}

BOOST_AUTO_TEST_SUITE_END()
