// PostgreSQL only: the database goes away under a running gateway and comes
// back. The cases both backends pass are gateway_test.cpp's.
#include "support/gateway_fixture.hpp"
#include "support/postgres_fixture_backend.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>

using namespace std::chrono_literals;
using tether::test::gateway_fixture;
namespace net = tether::net;
using code = net::connect::code;
using tether::test::code_of;

BOOST_AUTO_TEST_SUITE(gateway_rpc_suite)

BOOST_AUTO_TEST_CASE(a_real_database_outage_fails_fast_keeps_streams_and_recovers)
{
    // A cluster of its own: this test stops it.
    tether::test::postgres_server own;
    tether::test::fixture_cluster = &own;
    gateway_fixture g;
    tether::test::fixture_cluster = nullptr;
    const auto ready = [&] {
        net::http::request req;
        req.target = "/readyz";
        auto r = tether::test::run_for(g.ioc, g.http().request(g.server().base(), req, 5s));
        BOOST_TEST_REQUIRE(r.has_value());
        return r->status;
    };
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    auto [status, stream] = g.open_stream(g.stream_token(s), "0");
    BOOST_TEST_REQUIRE(status == 200u);
    g.publish("acme", {{"flags", {{"before", true}}}});
    BOOST_TEST(g.read_events(*stream, 1).size() == 1u);

    own.stop("fast");  // the database goes away; what it committed stays
    const auto started = std::chrono::steady_clock::now();
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::unavailable));
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::unavailable));
    const auto took = std::chrono::steady_clock::now() - started;
    BOOST_TEST((took < 2s), "two calls took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms");
    BOOST_TEST(tether::test::poll_until(
        g.ioc, [&] { return ready() == 503u; }, 5s));
    // The open stream stays open through the outage.
    tether::test::pump_for(g.ioc, 1500ms);
    BOOST_TEST(g.service().hub().connections() == 1u);
    BOOST_TEST((g.logs.has("postgres.listen_lost") || g.logs.has("postgres.tail_failed")), g.logs.all());

    own.start();
    BOOST_TEST(tether::test::poll_until(
        g.ioc, [&] { return ready() == 200u; }, 15s));
    // The same session works again.
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST(g.node("GetRuntimeConfig", {}, s).has_value());
    // The stream that stayed open gets what is published after the outage.
    const auto at = g.publish("acme", {{"flags", {{"after", true}}}});
    const auto events = g.read_events(*stream, 1, 5s);
    BOOST_TEST_REQUIRE(!events.empty(), g.logs.all());
    BOOST_TEST(events.back().data.find(std::to_string(at)) != std::string::npos, events.back().data);
    stream.reset();
    g.stop();
}

BOOST_AUTO_TEST_SUITE_END()
