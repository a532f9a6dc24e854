// The heartbeat task against a scripted gateway on loopback: the paths the
// real gateway cannot be made to take on demand.
#include "app/exit_status.hpp"
#include "app/heartbeat_task.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "net/protojson.hpp"
#include "support/child_process.hpp"
#include "support/loopback_server.hpp"
#include "support/run_for.hpp"

#include <boost/asio/thread_pool.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace net = tether::net;
namespace pj = tether::net::protojson;
using tether::awaitable;

namespace {

/// Logs any node in, then answers Heartbeat with `heartbeat_code` (or OK).
struct scripted_gateway {
    std::string heartbeat_code;
    int begin_auth = 0;
    int heartbeats = 0;

    awaitable<net::reply> operator()(net::http::request req, net::peer_info)
    {
        if (req.target.ends_with("/BeginAuth")) {
            ++begin_auth;
            json::object o{{"challenge", pj::base64_encode(std::string(32, 'c'))},
                           {"expiresAt", "2030-01-01T00:00:00Z"}};
            co_return net::json_reply(json::serialize(o));
        }
        if (req.target.ends_with("/CompleteAuth")) {
            json::object o{{"sessionToken", "sess"},
                           {"expiresAt", "2030-01-02T00:00:00Z"},
                           {"serverTime", "2030-01-01T00:00:00Z"}};
            co_return net::json_reply(json::serialize(o));
        }
        if (req.target.ends_with("/Heartbeat")) {
            ++heartbeats;
            if (!heartbeat_code.empty())
                co_return net::error_reply(
                    net::connect::http_status(*net::connect::parse_code(heartbeat_code)), heartbeat_code,
                    "scripted");
            co_return net::json_reply("{}");
        }
        co_return net::error_reply(404, "unimplemented", "");
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(heartbeat_suite)

BOOST_AUTO_TEST_CASE(not_found_is_permanent_exit_3)
{
    tether::test::temp_dir dir;
    asio::io_context ioc;
    scripted_gateway script{"not_found"};
    tether::test::loopback_server srv(
        ioc, [&](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
    tether::test::log_capture logs;
    asio::thread_pool blocking(1);
    tether::auth::node_state st;
    st.server_url = srv.base().origin();
    st.node_id = "node-1";
    st.api_key = tether::secret("k");
    const tether::auth::state_paths paths{dir.path()};
    const auto key = tether::auth::generate_key();
    tether::auth::session_manager session(ioc.get_executor(), blocking.get_executor(), srv.base(), nullptr,
                                          paths, st, key.private_pem, logs.logger());
    tether::app::agent_status status;
    tether::app::heartbeat_options opts;
    opts.interval = 5s;
    std::optional<tether::app::exit_status> exit;
    try {
        tether::test::run_for(
            ioc,
            tether::app::run_heartbeats(opts, session, srv.base(), nullptr, paths, blocking.get_executor(),
                                        status, logs.logger(), [] { return 0.0; }),
            10s);
    } catch (const tether::app::fatal_exit& e) {
        exit = e.status;
        BOOST_TEST(std::string(e.what()).find("Re-enroll") != std::string::npos, e.what());
    }
    BOOST_TEST_REQUIRE(exit.has_value());
    BOOST_TEST(static_cast<int>(*exit) == 3);
    BOOST_TEST(script.heartbeats == 1);
    blocking.join();
}

BOOST_AUTO_TEST_CASE(transient_errors_keep_the_loop_going)
{
    tether::test::temp_dir dir;
    asio::io_context ioc;
    scripted_gateway script{"unavailable"};
    tether::test::loopback_server srv(
        ioc, [&](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
    tether::test::log_capture logs;
    asio::thread_pool blocking(1);
    tether::auth::node_state st;
    st.node_id = "node-1";
    st.api_key = tether::secret("k");
    const auto key = tether::auth::generate_key();
    tether::auth::session_manager session(ioc.get_executor(), blocking.get_executor(), srv.base(), nullptr,
                                          {dir.path()}, st, key.private_pem, logs.logger());
    tether::app::agent_status status;
    tether::app::heartbeat_options opts;
    opts.interval = 5s;
    // Runs the task for a bit more than one interval (random first beat at
    // 0, the next ~5 s later) and then cancels it.
    asio::cancellation_signal stop;
    bool done = false;
    asio::co_spawn(
        ioc,
        tether::app::run_heartbeats(opts, session, srv.base(), nullptr, {dir.path()}, blocking.get_executor(),
                                    status, logs.logger(), [] { return 0.0; }),
        asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { done = true; }));
    asio::steady_timer t(ioc, 5500ms);
    t.async_wait([&](tether::error_code) { stop.emit(asio::cancellation_type::terminal); });
    BOOST_TEST(tether::test::poll_until(
        ioc, [&] { return done; }, 10s));
    BOOST_TEST(script.heartbeats == 2);  // the failure did not end the loop
    BOOST_TEST(status.heartbeats_failed.load() == 2);
    BOOST_TEST(logs.events("heartbeat.failed").size() == 2u);
    BOOST_TEST(script.begin_auth == 1);  // one login, reused
    blocking.join();
}

BOOST_AUTO_TEST_SUITE_END()
