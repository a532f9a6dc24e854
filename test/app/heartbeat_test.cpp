// The heartbeat task against a scripted gateway on loopback: the paths the
// real gateway cannot be made to take on demand.
#include "app/agent/tasks/heartbeat_task.hpp"
#include "app/common/exit_status.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "net/connect_reply.hpp"
#include "net/protojson.hpp"
#include "settings/runtime_config.hpp"
#include "support/agent_parts.hpp"
#include "support/child_process.hpp"
#include "support/loopback_server.hpp"
#include "support/node_states.hpp"
#include "support/run_for.hpp"
#include "support/scripted_gateway.hpp"

#include <boost/asio/thread_pool.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace net = tether::net;
namespace pj = tether::net::protojson;
using tether::awaitable;

BOOST_AUTO_TEST_SUITE(heartbeat_suite)

BOOST_AUTO_TEST_CASE(not_found_is_permanent_exit_3)
{
    asio::io_context ioc;
    tether::test::scripted_gateway script;
    script.heartbeat_code = "not_found";
    tether::test::loopback_server srv(
        ioc, [&](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
    tether::test::agent_parts agent(ioc, srv.base(), tether::test::scripted_node(srv.base()),
                                    tether::auth::generate_key().private_pem);
    agent.start_heartbeats(5s);
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        ioc, [&] { return agent.any_done(); }, 10s));
    // rethrow_exception of a null pointer is undefined: a clean end must fail, not crash.
    BOOST_TEST_REQUIRE(static_cast<bool>(agent.failure()), "the heartbeat task ended without an exception");
    std::optional<tether::app::exit_status> exit;
    try {
        std::rethrow_exception(agent.failure());
    } catch (const tether::app::fatal_exit& e) {
        exit = e.status;
        BOOST_TEST(std::string(e.what()).find("Re-enroll") != std::string::npos, e.what());
        // Its enroll command keeps the code off the command line.
        BOOST_TEST(std::string(e.what()).find("--code-file FILE --force") != std::string::npos, e.what());
    }
    BOOST_TEST_REQUIRE(exit.has_value());
    BOOST_TEST(static_cast<int>(*exit) == 3);
    BOOST_TEST(script.heartbeats == 1);
}

// After applying a version the agent beats at once (about 250 ms), but never
// within a second of the previous beat *as the gateway stored it*: the
// gateway writes a changed report at most once a second per node, and a
// beat inside that second is neither stored nor retried until the next
// interval. The gateway stamps a beat when it processes it, which can be
// most of a slow round trip after the agent sent it.
BOOST_AUTO_TEST_CASE(the_beat_after_an_apply_waits_a_second_from_the_previous_answer)
{
    asio::io_context ioc;
    tether::test::scripted_gateway script;
    script.heartbeat_delay = 400ms;  // a loaded gateway: stored just before it answers
    tether::test::loopback_server srv(
        ioc, [&](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
    tether::test::agent_parts agent(ioc, srv.base(), tether::test::scripted_node(srv.base()),
                                    tether::auth::generate_key().private_pem);
    agent.start_heartbeats(10s, {100ms, 1h});  // first beat at 1 %: 100 ms
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        ioc, [&] { return agent.metrics.heartbeats_sent.load() == 1; }, 5s));
    auto cfg = tether::settings::decode_config(json::parse(R"({"flags": {"x": true}})"), 42);
    BOOST_TEST_REQUIRE(cfg.has_value());
    const auto next = std::make_shared<const tether::settings::runtime_config>(std::move(*cfg));
    BOOST_TEST(tether::test::run_for(ioc, agent.store.update(next)));
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        ioc, [&] { return script.beats.size() == 2; }, 5s));
    const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(script.beats[1].arrived -
                                                                           script.beats[0].stored);
    BOOST_TEST(gap.count() >= 1000, "the post-apply beat came " << gap.count() << " ms after the stored one");
    BOOST_TEST(gap.count() < 2000, "and not an interval later: " << gap.count() << " ms");
    BOOST_TEST(script.beats[1].applied == "42");
    agent.stop();
}

BOOST_AUTO_TEST_CASE(transient_errors_keep_the_loop_going)
{
    asio::io_context ioc;
    tether::test::scripted_gateway script;
    script.heartbeat_code = "unavailable";
    tether::test::loopback_server srv(
        ioc, [&](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
    tether::test::agent_parts agent(ioc, srv.base(), tether::test::scripted_node(srv.base()),
                                    tether::auth::generate_key().private_pem);
    // Runs the task for a bit more than one interval (first beat at 1 % of
    // it, the next ~0.9 s later, the third ~1.8 s) and then cancels it. The
    // production floor of 5 s is lowered for the test, not waited out.
    agent.start_heartbeats(1s, {100ms, 1h});
    tether::test::pump_for(ioc, 1300ms);
    agent.stop();
    BOOST_TEST(!agent.failure());
    BOOST_TEST(script.heartbeats == 2);  // the failure did not end the loop
    BOOST_TEST(agent.metrics.heartbeats_failed.load() == 2);
    BOOST_TEST(
        agent.metrics.heartbeats_failed_by_code[static_cast<std::size_t>(net::connect::code::unavailable)]
            .load() == 2);
    BOOST_TEST(agent.logs.events("heartbeat.failed").size() == 2u);
    BOOST_TEST(script.begin_auth == 1);  // one login, reused
}

namespace {

net::reply html_403()
{
    net::reply r;
    r.head.status = 403;
    r.head.headers.set("Content-Type", "text/html");
    r.head.body = "<html><body>Forbidden by proxy</body></html>";
    return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(only_the_contracts_permanent_answers_end_the_agent)
{
    // Each of these once ended the agent with "re-enroll".
    std::vector<std::pair<std::string, net::reply>> cases{
        {"BeginAuth", html_403()},
        {"Heartbeat", html_403()},
        {"CompleteAuth", net::connect::error_reply(403, net::connect::code::permission_denied, "scripted")},
        {"Heartbeat", net::connect::error_reply(500, net::connect::code::unknown, "scripted")},
    };
    {
        net::reply nf;
        nf.head.status = 404;
        nf.head.body = "Not Found";
        cases.emplace_back("Heartbeat", nf);  // a proxy's 404, no Connect body
    }
    for (auto& [method, answer] : cases) {
        asio::io_context ioc;
        tether::test::scripted_gateway script;
        script.broken_method = method;
        script.broken = answer;
        tether::test::loopback_server srv(
            ioc, [&](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
        tether::test::agent_parts agent(ioc, srv.base(), tether::test::scripted_node(srv.base()),
                                        tether::auth::generate_key().private_pem);
        agent.start_heartbeats(5s);
        tether::test::pump_for(ioc, 500ms);
        BOOST_TEST(!agent.any_done(), method << " " << answer.head.status << " ended the agent");
        BOOST_TEST(agent.logs.has("heartbeat.failed"), method);
        agent.stop();
    }
}

BOOST_AUTO_TEST_SUITE_END()
