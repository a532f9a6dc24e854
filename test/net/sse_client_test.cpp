#include "net/sse_client.hpp"

#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "support/loopback_server.hpp"
#include "support/run_for.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

using namespace std::chrono_literals;
using tether::awaitable;
using tether::error_code;
using tether::timer;
using tether::net::reply;
using tether::test::loopback_server;
using tether::test::sleep_for;
namespace asio = boost::asio;
namespace http = tether::net::http;
namespace net = tether::net;

namespace {

reply stream_reply(std::string body, std::chrono::milliseconds hold = 0ms)
{
    return tether::test::sse_reply(std::move(body), hold);
}

reply status_reply(unsigned status)
{
    reply r;
    r.head.status = status;
    return r;
}

/// Everything a scripted server saw.
struct seen {
    std::vector<http::request> requests;
    std::vector<std::chrono::steady_clock::time_point> times;
};

net::sse_options options_for(std::vector<net::url> candidates)
{
    net::sse_options o;
    o.candidates = std::move(candidates);
    o.reconnect = {20ms, 10s};
    o.min_retry = 10ms;
    o.read_timeout = 5s;
    o.connect_timeout = 2s;
    o.probe_timeout = 200ms;
    o.probe_delays = {10ms};
    return o;
}

struct harness {
    asio::io_context ioc;
    tether::test::log_capture logs;
    std::vector<net::sse_event> events;
    std::vector<net::sse_attempt> attempts;
    asio::cancellation_signal cancel;
    std::optional<error_code> result;

    /// Runs the client until it returns (or the cap), cancelling when
    /// `stop_when` holds after an event.
    void run(net::sse_options opts, std::function<bool(const net::sse_event&)> stop_when,
             std::chrono::milliseconds cap = 10s)
    {
        net::http_client http(ioc.get_executor(), nullptr);
        net::sse_client client(
            http, std::move(opts), [] { return 1.0; }, logs.logger());
        asio::co_spawn(
            ioc,
            [&]() -> awaitable<error_code> {
                co_return co_await client.run(
                    [&](const net::sse_attempt& a) -> awaitable<tether::result<http::fields>> {
                        attempts.push_back(a);
                        http::fields f;
                        f.set("Authorization", "Bearer token-" + std::to_string(a.number));
                        tether::result<http::fields> out = f;
                        co_return out;
                    },
                    [&](const net::sse_event& e) -> awaitable<void> {
                        events.push_back(e);
                        if (stop_when && stop_when(e)) cancel.emit(asio::cancellation_type::terminal);
                        co_return;
                    });
            },
            asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, error_code ec) {
                BOOST_TEST(!e);
                result = ec;
            }));
        tether::test::poll_until(
            ioc, [this] { return result.has_value(); }, cap);
        BOOST_TEST_REQUIRE(result.has_value(), "sse client did not return within the cap:\n" + logs.all());
    }

    std::vector<std::int64_t> delays() const
    {
        std::vector<std::int64_t> out;
        for (const auto& e : logs.events("sse.reconnect")) out.push_back(e.at("delay_ms").as_int64());
        return out;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(sse_client_suite)

BOOST_AUTO_TEST_CASE(reconnects_with_last_event_id_and_fresh_credentials)
{
    harness h;
    seen s;
    loopback_server srv(h.ioc, [&](http::request req, net::peer_info) -> awaitable<reply> {
        s.requests.push_back(req);
        if (s.requests.size() == 1)
            co_return stream_reply("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: cut");
        co_return stream_reply("data: c\n\n", 5s);
    });
    h.run(options_for({srv.base().with_path("/v1/events")}), [](const auto& e) { return e.data == "c"; });
    BOOST_TEST((*h.result == asio::error::operation_aborted));
    BOOST_TEST_REQUIRE(h.events.size() == 3u);
    BOOST_TEST(h.events[0].data == "a");
    BOOST_TEST(h.events[1].data == "b");
    BOOST_TEST(h.events[2].data == "c");
    BOOST_TEST(h.events[2].last_event_id == "2");
    BOOST_TEST_REQUIRE(s.requests.size() == 2u);
    BOOST_TEST(!s.requests[0].headers.get("Last-Event-ID").has_value());
    // The id of the event cut off mid-way (3) is never reported as received.
    BOOST_TEST(*s.requests[1].headers.get("Last-Event-ID") == "2");
    BOOST_TEST(*s.requests[0].headers.get("Accept") == "text/event-stream");
    BOOST_TEST(*s.requests[0].headers.get("Cache-Control") == "no-cache");
    BOOST_TEST(s.requests[0].target == "/v1/events");
    BOOST_TEST(*s.requests[0].headers.get("Authorization") == "Bearer token-1");
    BOOST_TEST(*s.requests[1].headers.get("Authorization") == "Bearer token-2");
    BOOST_TEST_REQUIRE(h.attempts.size() == 2u);
    BOOST_TEST((h.attempts[1].last_error == asio::error::eof));
}

BOOST_AUTO_TEST_CASE(retry_field_sets_the_base_and_backoff_grows)
{
    harness h;
    int n = 0;
    loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        ++n;
        if (n == 1) co_return stream_reply("retry: 30\n\n");
        if (n < 5) co_return stream_reply("");
        co_return stream_reply("data: done\n\n", 5s);
    });
    h.run(options_for({srv.base()}), [](const auto& e) { return e.data == "done"; });
    // rand() == 1.0: each delay is the ceiling, doubling from the retry base.
    BOOST_TEST((h.delays() == std::vector<std::int64_t>{30, 60, 120, 240}));
}

BOOST_AUTO_TEST_CASE(retry_zero_is_clamped_and_backoff_still_grows)
{
    harness h;
    int n = 0;
    loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        ++n;
        co_return stream_reply("retry: 0\n\n");  // and close, every time
    });
    auto o = options_for({srv.base()});
    o.min_retry = 100ms;
    asio::steady_timer stopper(h.ioc, 1s);
    stopper.async_wait([&](error_code) { h.cancel.emit(asio::cancellation_type::terminal); });
    h.run(o, {});
    // rand() == 1.0: the ceiling each time, doubling from the floor.
    const auto d = h.delays();
    BOOST_TEST_REQUIRE(d.size() >= 2u);
    BOOST_TEST(d[0] == 100);
    BOOST_TEST(d[1] == 200);
    BOOST_TEST(n <= 5, n << " connects in 1 s");
}

BOOST_AUTO_TEST_CASE(backoff_resets_after_a_healthy_stream)
{
    harness h;
    int n = 0;
    loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        ++n;
        if (n == 3) co_return stream_reply(": up\n", 150ms);  // healthy: longer than healthy_after
        if (n < 5) co_return stream_reply("");
        co_return stream_reply("data: done\n\n", 5s);
    });
    auto o = options_for({srv.base()});
    o.healthy_after = 100ms;
    h.run(o, [](const auto& e) { return e.data == "done"; });
    BOOST_TEST((h.delays() == std::vector<std::int64_t>{20, 40, 20, 40}));
}

BOOST_AUTO_TEST_CASE(read_timeout_declares_a_silent_stream_dead)
{
    harness h;
    int n = 0;
    loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        ++n;
        if (n == 1) co_return stream_reply(": hello\n", 10s);  // TCP open, no bytes
        co_return stream_reply("data: fresh\n\n", 5s);
    });
    auto o = options_for({srv.base()});
    o.read_timeout = 200ms;
    const auto t0 = std::chrono::steady_clock::now();
    h.run(o, [](const auto& e) { return e.data == "fresh"; });
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 2s));
    const auto reconnects = h.logs.events("sse.reconnect");
    BOOST_TEST_REQUIRE(reconnects.size() == 1u);
    BOOST_TEST(reconnects[0].at("reason").as_string() == "timed out");
}

BOOST_AUTO_TEST_CASE(status_204_stops_for_good)
{
    harness h;
    loopback_server srv(
        h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> { co_return status_reply(204); });
    h.run(options_for({srv.base()}), {});
    BOOST_TEST((*h.result == net::errc::stream_ended));
    BOOST_TEST(h.attempts.size() == 1u);
}

BOOST_AUTO_TEST_CASE(statuses_retry_or_stop_and_content_type_is_checked)
{
    {
        harness h;
        int n = 0;
        loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
            co_return status_reply(++n == 1 ? 503 : 403);
        });
        h.run(options_for({srv.base()}), {});
        BOOST_TEST((*h.result == net::errc::bad_status));
        BOOST_TEST(n == 2);
        BOOST_TEST_REQUIRE(h.attempts.size() == 2u);
        BOOST_TEST(h.attempts[1].last_status == 503u);
    }
    {
        harness h;
        loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
            reply r;
            r.head.headers.set("Content-Type", "application/json");
            r.head.body = "{}";
            co_return r;
        });
        h.run(options_for({srv.base()}), {});
        BOOST_TEST((*h.result == net::errc::not_event_stream));
    }
}

BOOST_AUTO_TEST_CASE(redirects_are_followed_within_limits)
{
    harness h;
    std::vector<std::string> targets;
    loopback_server srv(h.ioc, [&](http::request req, net::peer_info) -> awaitable<reply> {
        targets.push_back(req.target);
        if (req.target == "/old") {
            reply r = status_reply(307);
            r.head.headers.set("Location", "/new");
            co_return r;
        }
        if (req.target == "/loop") {
            reply r = status_reply(302);
            r.head.headers.set("Location", "/loop");
            co_return r;
        }
        co_return stream_reply("data: moved\n\n", 5s);
    });
    h.run(options_for({srv.base().with_path("/old")}), [](const auto& e) { return e.data == "moved"; });
    BOOST_TEST((targets == std::vector<std::string>{"/old", "/new"}));

    harness loop;
    loopback_server srv2(loop.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        reply r = status_reply(302);
        r.head.headers.set("Location", "/again");
        co_return r;
    });
    auto o = options_for({srv2.base()});
    o.reconnect = {1h, 1h};
    asio::steady_timer stopper(loop.ioc, 300ms);
    stopper.async_wait([&](error_code) { loop.cancel.emit(asio::cancellation_type::terminal); });
    loop.run(o, {});
    BOOST_TEST(loop.logs.has("sse.redirect_refused"));
}

BOOST_AUTO_TEST_CASE(credentials_never_follow_a_redirect_to_another_origin)
{
    harness h;
    std::vector<http::request> seen_requests;
    std::uint16_t port = 0;
    loopback_server srv(h.ioc, [&](http::request req, net::peer_info) -> awaitable<reply> {
        seen_requests.push_back(req);
        if (req.target == "/same") {
            reply r = status_reply(307);
            r.head.headers.set("Location", "/other");
            co_return r;
        }
        if (req.target == "/other") {
            // Same server, another name: another origin.
            reply r = status_reply(307);
            r.head.headers.set("Location", "http://localhost:" + std::to_string(port) + "/stolen");
            co_return r;
        }
        co_return stream_reply("data: there\n\n", 5s);
    });
    port = srv.port();
    h.run(options_for({srv.base().with_path("/same")}), [](const auto& e) { return e.data == "there"; });
    BOOST_TEST_REQUIRE(seen_requests.size() == 3u);
    BOOST_TEST(seen_requests[1].headers.get("Authorization").has_value());  // same origin: kept
    BOOST_TEST(seen_requests[2].target == "/stolen");
    BOOST_TEST(!seen_requests[2].headers.get("Authorization").has_value());
    BOOST_TEST(h.logs.has("sse.redirect_other_origin"));
}

BOOST_AUTO_TEST_CASE(never_give_up_retries_slowly_after_answers_that_would_stop)
{
    for (const unsigned first : {404u, 204u, 431u}) {
        harness h;
        int n = 0;
        loopback_server srv(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
            ++n;
            if (n == 1) co_return status_reply(first);
            if (n == 2) {
                reply html;
                html.head.headers.set("Content-Type", "text/html");
                html.head.body = "<html>login</html>";
                co_return html;
            }
            co_return stream_reply("data: back\n\n", 5s);
        });
        auto o = options_for({srv.base()});
        o.never_give_up = true;
        o.slow_retry = 100ms;
        const auto t0 = std::chrono::steady_clock::now();
        h.run(o, [](const auto& e) { return e.data == "back"; });
        BOOST_TEST((*h.result == asio::error::operation_aborted), first);
        BOOST_TEST(n == 3, first);
        // Two slow retries of at least half of slow_retry each.
        BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 100ms), first);
    }
}

BOOST_AUTO_TEST_CASE(cancellation_in_backoff_returns_within_100ms)
{
    harness h;
    loopback_server srv(
        h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> { co_return status_reply(503); });
    auto o = options_for({srv.base()});
    o.reconnect = {1h, 1h};
    std::chrono::steady_clock::time_point emitted;
    asio::steady_timer stopper(h.ioc, 100ms);
    stopper.async_wait([&](error_code) {
        emitted = std::chrono::steady_clock::now();
        h.cancel.emit(asio::cancellation_type::terminal);
    });
    h.run(o, {});
    const auto latency = std::chrono::steady_clock::now() - emitted;
    BOOST_TEST((*h.result == asio::error::operation_aborted));
    BOOST_TEST((latency < 100ms));
    BOOST_TEST(h.logs.has("sse.reconnect"));  // it really was sitting in backoff
}

BOOST_AUTO_TEST_CASE(falls_back_then_returns_to_the_preferred_url)
{
    harness h;
    bool preferred_up = false;
    int preferred_streams = 0;
    loopback_server preferred(h.ioc, [&](http::request req, net::peer_info) -> awaitable<reply> {
        if (!preferred_up) {
            co_await sleep_for(10s);  // "down": no answer within the probe timeout
            co_return status_reply(503);
        }
        // Probes carry no credential, the stream connect does: counting
        // credentialed requests proves the probe did not send the token.
        if (req.headers.get("Authorization")) ++preferred_streams;
        co_return stream_reply("data: preferred\n\n", 5s);
    });
    loopback_server fallback(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        reply r = stream_reply("data: fallback\n\n");
        r.stream = [](net::body_writer& w) -> awaitable<error_code> {
            if (auto ec = co_await w.write("data: fallback\n\n")) co_return ec;
            for (int i = 0; i < 100; ++i) {
                co_await sleep_for(20ms);
                if (auto ec = co_await w.write(": tick\n")) co_return ec;
            }
            co_return error_code{};
        };
        co_return r;
    });
    auto o = options_for({preferred.base(), fallback.base()});
    o.reprobe_every = 150ms;
    asio::steady_timer up(h.ioc, 700ms);  // after both start-up probes (2 x 200 ms) failed
    up.async_wait([&](error_code) { preferred_up = true; });
    h.run(o, [](const auto& e) { return e.data == "preferred"; });
    BOOST_TEST(h.logs.has("sse.using_fallback"), h.logs.all());
    BOOST_TEST(h.logs.has("sse.preferred_back"));
    BOOST_TEST_REQUIRE(h.events.size() >= 2u);
    BOOST_TEST(h.events.front().data == "fallback");
    BOOST_TEST(h.events.back().data == "preferred");
    BOOST_TEST(preferred_streams == 1);
}

BOOST_AUTO_TEST_CASE(peers_move_to_the_next_replica_when_one_fails_and_never_probe)
{
    harness h;
    int dead_requests = 0, live_requests = 0;
    // "Dead": answers 503 at once (a replica without its database, or a
    // proxy in front of a dead one). Live: a stream that ends after one event.
    loopback_server dead(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        ++dead_requests;
        co_return status_reply(503);
    });
    loopback_server live(h.ioc, [&](http::request, net::peer_info) -> awaitable<reply> {
        ++live_requests;
        co_return stream_reply("data: live" + std::to_string(live_requests) + "\n\n");
    });
    auto o = options_for({dead.base(), live.base()});
    o.peers = true;
    h.run(o, [](const auto& e) { return e.data == "live3"; });
    // One try on the dead replica, then the live one; its streams end (not
    // healthy), so each end moves on: dead, live, dead, live, dead, live.
    BOOST_TEST(live_requests == 3);
    BOOST_TEST(dead_requests == 3);
    BOOST_TEST(!h.logs.has("sse.using_fallback"));  // no preference among peers
    BOOST_TEST(!h.logs.has("sse.candidate_unreachable"), "peers are not probed");
}

BOOST_AUTO_TEST_SUITE_END()
