// The session manager against a gateway that grants odd lifetimes: short
// sessions must not mean a login per call, and nonsense must neither loop
// nor overflow.
#include "auth/session.hpp"

#include "auth/keys.hpp"
#include "net/connect_reply.hpp"
#include "net/protojson.hpp"
#include "support/child_process.hpp"
#include "support/log_capture.hpp"
#include "support/loopback_server.hpp"
#include "support/node_states.hpp"
#include "support/run_for.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace net = tether::net;
using tether::awaitable;

namespace {

/// Grants sessions that end `lifetime` after its serverTime.
struct granting_gateway {
    std::string expires_at;
    std::string server_time = "2030-01-01T00:00:00Z";
    std::string token{};  ///< empty: "sess-N"
    int logins = 0;

    awaitable<net::reply> operator()(net::http::request req, net::peer_info)
    {
        if (req.target.ends_with("/BeginAuth")) {
            ++logins;
            const json::object o{{"challenge", net::protojson::base64_encode(std::string(32, 'c'))}};
            co_return net::json_reply(json::serialize(o));
        }
        if (req.target.ends_with("/CompleteAuth")) {
            const json::object o{{"sessionToken", token.empty() ? "sess-" + std::to_string(logins) : token},
                                 {"expiresAt", expires_at},
                                 {"serverTime", server_time}};
            co_return net::json_reply(json::serialize(o));
        }
        co_return net::connect::error_reply(404, net::connect::code::unimplemented, "");
    }
};

struct rig {
    asio::io_context ioc;
    asio::thread_pool blocking{1};
    tether::test::temp_dir dir;
    tether::test::log_capture logs;
    granting_gateway script;
    tether::test::loopback_server srv{ioc, [this](net::http::request r, net::peer_info p) {
                                          return script(std::move(r), p);
                                      }};
    tether::auth::session_manager session;

    explicit rig(std::string expires_at)
        : script{std::move(expires_at)},
          session(ioc.get_executor(), blocking.get_executor(), srv.base(), nullptr,
                  tether::auth::state_paths{dir.path()}, state(), tether::auth::generate_key().private_pem,
                  logs.logger())
    {
        session.persist_logins(false);
    }
    ~rig() { blocking.join(); }

    tether::auth::node_state state() const { return tether::test::scripted_node(srv.base()); }

    bool token_ok()
    {
        bool ok = false;
        tether::test::run_for(ioc, [&]() -> awaitable<void> {
            auto t = co_await session.token();
            ok = t.has_value();
        }());
        return ok;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(session_suite)

BOOST_AUTO_TEST_CASE(a_short_session_is_reused_until_a_third_of_it_is_left)
{
    rig r("2030-01-01T00:01:00Z");  // 60 s
    for (int i = 0; i < 20; ++i) BOOST_TEST_REQUIRE(r.token_ok());
    BOOST_TEST(r.script.logins == 1);
    BOOST_TEST(r.session.valid());
}

BOOST_AUTO_TEST_CASE(a_session_already_expired_is_refused_not_looped_on)
{
    rig r("2029-12-31T23:00:00Z");  // before serverTime
    BOOST_TEST(!r.token_ok());
    BOOST_TEST(!r.session.valid());
    BOOST_TEST(r.script.logins == 1);
}

BOOST_AUTO_TEST_CASE(an_absurd_lifetime_neither_overflows_nor_is_trusted_for_centuries)
{
    rig r("2400-01-01T00:00:00Z");  // 370 years: more than a steady_clock's nanoseconds hold
    BOOST_TEST_REQUIRE(r.token_ok());
    BOOST_TEST(r.session.valid());
    for (int i = 0; i < 5; ++i) BOOST_TEST_REQUIRE(r.token_ok());
    BOOST_TEST(r.script.logins == 1);
}

BOOST_AUTO_TEST_CASE(a_token_that_cannot_go_in_a_header_is_refused_once_not_sent)
{
    // Sent, such a token would add a field to every request, or fail each
    // one at once: it counts as no session, like a missing token.
    for (const std::string& bad : {std::string("t\r\nX-Admin: 1"), std::string("two words"),
                                   std::string("nul\0", 4), std::string(5000, 'a')}) {
        rig r("2030-01-01T01:00:00Z");
        r.script.token = bad;
        BOOST_TEST(!r.token_ok(), bad.size());
        BOOST_TEST(!r.session.valid());
        BOOST_TEST(r.script.logins == 1, bad.size());
    }
    rig r("2030-01-01T01:00:00Z");
    r.script.token = std::string(4096, 'a');
    BOOST_TEST(r.token_ok(), "the longest token a header takes here");
}

BOOST_AUTO_TEST_SUITE_END()
