// The heartbeat task against a scripted gateway on loopback: the paths the
// real gateway cannot be made to take on demand.
#include "app/agent/tasks/heartbeat_task.hpp"
#include "app/common/exit_status.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "net/connect_reply.hpp"
#include "net/protojson.hpp"
#include "support/agent_parts.hpp"
#include "support/child_process.hpp"
#include "support/loopback_server.hpp"
#include "support/node_states.hpp"
#include "support/run_for.hpp"
#include "support/scripted_gateway.hpp"

#include <boost/asio/thread_pool.hpp>
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
    }
    BOOST_TEST_REQUIRE(exit.has_value());
    BOOST_TEST(static_cast<int>(*exit) == 3);
    BOOST_TEST(script.heartbeats == 1);
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
