// The gateway against its contract: every RPC's success and error codes,
// storage effects, and the event streams, over real HTTP on loopback.
#include "net/http_reader.hpp"
#include "support/gateway_fixture.hpp"
#include "support/raw_http.hpp"
#include "support/text.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using tether::secret;
using tether::test::gateway_fixture;
namespace json = boost::json;
namespace net = tether::net;
using code = net::connect::code;
using tether::test::code_of;
namespace t = tether::test;

BOOST_AUTO_TEST_SUITE(gateway_rpc_suite)

BOOST_AUTO_TEST_CASE(enrollment_codes_are_single_use_and_scoped)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    BOOST_TEST(n.org_id == "acme");
    BOOST_TEST(n.node_id.starts_with("node-"));
    BOOST_TEST(n.api_key.size() >= 32u);

    const auto code = g.new_code("acme");
    const auto key = tether::auth::generate_key();
    const json::object req{{"enrollmentCode", code},
                           {"nodeName", "a"},
                           {"publicKey", net::protojson::base64_encode(key.public_raw)}};
    BOOST_TEST(g.node("Enroll", req).has_value());
    BOOST_TEST((code_of(g.node("Enroll", req)) == code::permission_denied));  // reused

    BOOST_TEST((code_of(g.node("Enroll", {{"enrollmentCode", "made-up"},
                                          {"nodeName", "a"},
                                          {"publicKey", net::protojson::base64_encode(key.public_raw)}})) ==
                code::permission_denied));
    // Expired code.
    auto ttl = g.admin_call("CreateEnrollmentCode", {{"orgId", "acme"}, {"ttlSeconds", 60}});
    BOOST_TEST_REQUIRE(ttl.has_value());
    g.now += 61'000;
    BOOST_TEST((code_of(g.node("Enroll", {{"enrollmentCode", ttl->at("code")},
                                          {"nodeName", "a"},
                                          {"publicKey", net::protojson::base64_encode(key.public_raw)}})) ==
                code::permission_denied));
    // Malformed key: invalid_argument naming the field.
    auto bad =
        g.node("Enroll", {{"enrollmentCode", g.new_code("acme")}, {"nodeName", "a"}, {"publicKey", "AAAA"}});
    BOOST_TEST((code_of(bad) == code::invalid_argument));
    BOOST_TEST(bad.error().message.find("publicKey") != std::string::npos, bad.error().message);
    // Only hashes are stored.
    const auto db_bytes = tether::test::read_file(g.dir.path() / "tether.db") +
                          tether::test::read_file(g.dir.path() / "tether.db-wal");
    BOOST_TEST(db_bytes.find(std::string(n.api_key.reveal())) == std::string::npos);
    BOOST_TEST(db_bytes.find(code) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_code_with_max_uses_enrolls_that_many_nodes)
{
    gateway_fixture g;
    auto made = g.admin_call("CreateEnrollmentCode", {{"orgId", "acme"}, {"maxUses", 3}});
    BOOST_TEST_REQUIRE(made.has_value(), made.error().message);
    BOOST_TEST(made->at("maxUses").to_number<int>() == 3);
    const std::string code(made->at("code").as_string());
    const auto enroll = [&](const tether::auth::key_pair& key) {
        return g.node("Enroll", {{"enrollmentCode", code},
                                 {"nodeName", "n"},
                                 {"publicKey", net::protojson::base64_encode(key.public_raw)}});
    };
    const auto first = tether::auth::generate_key();
    BOOST_TEST_REQUIRE(enroll(first).has_value());
    // A key already enrolled takes no use of the code.
    BOOST_TEST((code_of(enroll(first)) == code::already_exists));
    std::set<std::string> ids;
    for (int i = 0; i < 2; ++i) {
        auto r = enroll(tether::auth::generate_key());
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        ids.insert(std::string(r->at("nodeId").as_string()));
    }
    BOOST_TEST(ids.size() == 2u);
    BOOST_TEST((code_of(enroll(tether::auth::generate_key())) == code::permission_denied));  // used up

    // The default is one; the bounds are named.
    auto one = g.new_code("acme");
    BOOST_TEST(g.node("Enroll",
                      {{"enrollmentCode", one},
                       {"nodeName", "n"},
                       {"publicKey", net::protojson::base64_encode(tether::auth::generate_key().public_raw)}})
                   .has_value());
    BOOST_TEST((code_of(g.node("Enroll", {{"enrollmentCode", one},
                                          {"nodeName", "n"},
                                          {"publicKey", net::protojson::base64_encode(
                                                            tether::auth::generate_key().public_raw)}})) ==
                code::permission_denied));
    for (const int bad : {-1, 100'001}) {
        auto r = g.admin_call("CreateEnrollmentCode", {{"orgId", "acme"}, {"maxUses", bad}});
        BOOST_TEST((code_of(r) == code::invalid_argument));
        BOOST_TEST(r.error().message.find("maxUses") != std::string::npos, r.error().message);
    }
}

BOOST_AUTO_TEST_CASE(enroll_refuses_control_characters_and_unusable_keys)
{
    gateway_fixture g;
    const auto enroll = [&](const std::string& name, const std::string& raw_key) {
        return g.node("Enroll", {{"enrollmentCode", g.new_code("acme")},
                                 {"nodeName", name},
                                 {"publicKey", net::protojson::base64_encode(raw_key)}});
    };
    const auto key = tether::auth::generate_key().public_raw;
    for (const std::string name : {"evil\x1b[2J", "two\nlines", "tab\there", "del\x7f", "c1\xc2\x9b"}) {
        const auto r = enroll(name, key);
        BOOST_TEST((code_of(r) == code::invalid_argument), name);
        BOOST_TEST(r.error().message.find("nodeName") != std::string::npos, r.error().message);
    }
    BOOST_TEST((code_of(enroll("zero", std::string(32, '\0'))) == code::invalid_argument));
    BOOST_TEST(enroll("caf\xc3\xa9 n\xc5\x8d"
                      "de",
                      key)
                   .has_value());  // UTF-8 is fine
    const auto dup = enroll("copy", key);
    BOOST_TEST((code_of(dup) == code::already_exists));
    // The refused enrollment did not spend its code.
    const auto code = g.new_code("acme");
    BOOST_TEST((code_of(g.node("Enroll", {{"enrollmentCode", code},
                                          {"nodeName", "copy"},
                                          {"publicKey", net::protojson::base64_encode(key)}})) ==
                code::already_exists));
    BOOST_TEST(g.node("Enroll",
                      {{"enrollmentCode", code},
                       {"nodeName", "fresh"},
                       {"publicKey", net::protojson::base64_encode(tether::auth::generate_key().public_raw)}})
                   .has_value());
}

BOOST_AUTO_TEST_CASE(enroll_bounds_capabilities_as_heartbeats_do)
{
    // Stored per node and paged to operators 1 000 nodes at a time: an
    // enrollee holding a shared code must not store 64 KiB of them, nor
    // terminal escapes.
    gateway_fixture g;
    auto made = g.admin_call("CreateEnrollmentCode", {{"orgId", "acme"}, {"maxUses", 2}});
    BOOST_TEST_REQUIRE(made.has_value(), made.error().message);
    const std::string code(made->at("code").as_string());
    const auto enroll = [&](const json::array& caps) {
        return g.node("Enroll",
                      {{"enrollmentCode", code},
                       {"nodeName", "n"},
                       {"publicKey", net::protojson::base64_encode(tether::auth::generate_key().public_raw)},
                       {"capabilities", caps}});
    };
    json::array too_many;
    for (int i = 0; i < 33; ++i) too_many.emplace_back("c" + std::to_string(i));
    const std::vector<json::array> refused{
        too_many, {std::string(65, 'c')}, {""}, {"config", "evil\x1b[2J"}, {"two\nlines"}};
    for (const auto& caps : refused) {
        const auto r = enroll(caps);
        const std::string said = r ? std::string("enrolled") : r.error().message;
        BOOST_TEST((code_of(r) == code::invalid_argument), json::serialize(caps) << ": " << said);
        BOOST_TEST(said.find("capabilities") != std::string::npos, said);
    }
    // Nothing refused took a use of the code: both are left.
    json::array most;
    for (int i = 0; i < 32; ++i) most.emplace_back(std::string(63, 'c') + static_cast<char>('A' + i));
    const auto first = enroll(most);
    BOOST_TEST_REQUIRE(first.has_value());
    BOOST_TEST(enroll({"heartbeat"}).has_value());
    const auto listed = g.admin_call("ListNodes", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(listed.has_value());
    std::size_t stored = 0;
    for (const auto& n : listed->at("nodes").as_array())
        if (n.at("nodeId") == first->at("nodeId")) stored = n.at("capabilities").as_array().size();
    BOOST_TEST(stored == 32U);
}

BOOST_AUTO_TEST_CASE(expired_enrollment_codes_are_pruned_with_the_credentials)
{
    // Codes made by automation, one per machine provisioned, must not pile
    // up for ever; an expired one enrolls nobody, so it goes.
    gateway_fixture g;
    const auto make = [&](int ttl_seconds) {
        auto r = g.admin_call("CreateEnrollmentCode", {{"orgId", "acme"}, {"ttlSeconds", ttl_seconds}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return std::string(r->at("code").as_string());
    };
    const auto enroll = [&](const std::string& code) {
        return g.node("Enroll", {{"enrollmentCode", code},
                                 {"nodeName", "n"},
                                 {"publicKey",
                                  net::protojson::base64_encode(tether::auth::generate_key().public_raw)}});
    };
    const auto prune = [&] {
        tether::test::run_for(g.ioc, g.store().prune_credentials(g.now.load()));
    };
    const auto before = g.count_rows("enrollment_codes");
    const auto short_lived = make(60);
    const auto used_up = make(3600);
    const auto unused = make(3600);
    BOOST_TEST_REQUIRE(enroll(used_up).has_value());
    BOOST_TEST(g.count_rows("enrollment_codes") == before + 3);

    prune();  // nothing has expired
    BOOST_TEST(g.count_rows("enrollment_codes") == before + 3);
    g.now += 61'000;
    prune();
    BOOST_TEST(g.count_rows("enrollment_codes") == before + 2, "the used-up code stays until it expires");
    BOOST_TEST((code_of(enroll(short_lived)) == code::permission_denied));
    BOOST_TEST((code_of(enroll(used_up)) == code::permission_denied));
    g.now += 3'600'000 - 61'000 - 1;  // the last millisecond of the hour codes
    prune();
    BOOST_TEST(g.count_rows("enrollment_codes") == before + 2);
    g.now += 1;
    prune();
    BOOST_TEST(g.count_rows("enrollment_codes") == before);
    BOOST_TEST((code_of(enroll(unused)) == code::permission_denied));
}

BOOST_AUTO_TEST_CASE(login_failures_from_one_ipv6_64_are_throttled_together)
{
    // Counted by address, a host with a /64 (what one IPv6 subscriber gets)
    // had 2^64 budgets of failed logins. The clients come in PROXY headers.
    net::server_options so;
    so.proxy_from = [](const boost::asio::ip::address& a) {
        return a.is_loopback();
    };
    gateway_fixture g({}, so);
    const auto n = g.enroll("acme");
    const std::string body = R"({"nodeId":")" + n.node_id + R"(","apiKey":"wrong"})";
    const auto begin_auth_from = [&](const std::string& client) {
        const std::string request =
            "PROXY TCP6 " + client +
            " 2001:db8::ffff 1000 443\r\n"
            "POST /tether.v1.NodeService/BeginAuth HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
        std::string answer;
        std::atomic<bool> done{false};
        std::thread client_thread([&] {
            answer = tether::test::raw_exchange(g.server().port(), request, 5000ms);
            done = true;
        });
        tether::test::poll_until(
            g.ioc, [&] { return done.load(); }, 10s);
        client_thread.join();
        return answer.substr(0, answer.find("\r\n"));
    };
    const auto limit = tether::gateway::gateway_options{}.auth_failures_per_window;
    for (std::size_t i = 0; i < limit; ++i) {
        const auto status = begin_auth_from("2001:db8:7:7::" + std::to_string(i + 1));
        BOOST_TEST(status.starts_with("HTTP/1.1 403"), status);
    }
    const auto same_64 = begin_auth_from("2001:db8:7:7:ffff:ffff:ffff:1");
    BOOST_TEST(same_64.starts_with("HTTP/1.1 429"), same_64);
    const auto next_64 = begin_auth_from("2001:db8:7:8::1");
    BOOST_TEST(next_64.starts_with("HTTP/1.1 403"), next_64);
}

BOOST_AUTO_TEST_CASE(repeated_login_failures_are_counted_logged_and_throttled_per_address)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto limit = tether::gateway::gateway_options{}.auth_failures_per_window;
    int denied = 0, throttled = 0;
    for (std::size_t i = 0; i < limit + 5; ++i) {
        const auto r = g.node("BeginAuth", {{"nodeId", n.node_id}, {"apiKey", "wrong"}});
        denied += code_of(r) == code::permission_denied;
        throttled += code_of(r) == code::resource_exhausted;
    }
    BOOST_TEST(denied == static_cast<int>(limit));
    BOOST_TEST(throttled == 5);
    // Even the right key waits out the window from this address...
    BOOST_TEST((code_of(g.login(n)) == code::resource_exhausted));
    BOOST_TEST(g.service().counters().login_failures.load() == limit);
    BOOST_TEST(g.service().counters().auth_throttled.load() == 6u);
    BOOST_TEST(g.logs.has("gateway.auth_failed"));
    // ...and logs in once it is over.
    g.now += 61'000;
    BOOST_TEST(g.login(n).has_value());

    // The counters, for the operator's scraper (admin token only).
    BOOST_TEST(g.get("/metrics").status == 401u);
    const auto scraped = g.get("/metrics", g.admin);
    BOOST_TEST(scraped.status == 200u);
    BOOST_TEST(scraped.body.find("tether_gateway_login_failures_total " + std::to_string(limit)) !=
                   std::string::npos,
               scraped.body);
}

BOOST_AUTO_TEST_CASE(health_readiness_and_rpc_metrics)
{
    gateway_fixture g;
    BOOST_TEST(g.get("/livez").status == 200u);
    BOOST_TEST(g.get("/readyz").status == 200u);  // the store answers
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST((code_of(g.node("Heartbeat", {{"uptimeSeconds", "x"}}, s)) == code::invalid_argument));
    const auto m = g.get("/metrics", g.admin);
    BOOST_TEST(
        m.body.find("tether_gateway_rpcs_total{method=\"Heartbeat\",code=\"ok\"} 1") != std::string::npos,
        m.body);
    BOOST_TEST(m.body.find("tether_gateway_rpcs_total{method=\"Heartbeat\",code=\"invalid_argument\"} 1") !=
                   std::string::npos,
               m.body);
    BOOST_TEST(m.body.find("tether_gateway_rpcs_total{method=\"Enroll\",code=\"ok\"} 1") !=
               std::string::npos);
    BOOST_TEST(m.body.find("tether_gateway_rpc_duration_seconds_bucket{le=\"+Inf\"}") != std::string::npos);
    BOOST_TEST(m.body.find("tether_gateway_storage_errors_total 0") != std::string::npos);

    // The store goes away: RPCs answer unavailable at once, readiness fails,
    // liveness does not; when it is back, everything serves again.
    g.set_storage_down(true);
    const auto started = std::chrono::steady_clock::now();
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::unavailable));
    BOOST_TEST((code_of(g.login(n)) == code::unavailable));
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
    BOOST_TEST(g.get("/readyz").status == 503u);
    BOOST_TEST(g.get("/livez").status == 200u);
    BOOST_TEST(g.service().counters().storage_errors.load() >= 3u);
    BOOST_TEST(g.logs.has("gateway.storage_failed"));
    g.set_storage_down(false);
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST(g.get("/readyz").status == 200u);

    // A stop (the supervisor cancels every task on SIGTERM) fails readiness
    // at once, while the listener still answers.
    namespace asio = boost::asio;
    boost::asio::cancellation_signal stop;
    bool ended = false;
    asio::co_spawn(
        g.ioc, g.service().readiness(),
        boost::asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { ended = true; }));
    g.ioc.poll();
    BOOST_TEST(g.get("/readyz").status == 200u);
    stop.emit(asio::cancellation_type::terminal);
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        g.ioc, [&] { return ended; }, 5s));
    BOOST_TEST(g.get("/readyz").status == 503u);
    BOOST_TEST(g.get("/livez").status == 200u);
}

BOOST_AUTO_TEST_CASE(sessions_per_node_are_capped_oldest_first)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    std::vector<tether::secret> sessions;
    for (int i = 0; i < 20; ++i) sessions.push_back(g.session(n));
    const auto cap = tether::gateway::session_limits{}.sessions_per_node;
    for (std::size_t i = 0; i < sessions.size(); ++i) {
        const auto r = g.node("GetRuntimeConfig", {}, sessions[i]);
        if (i < sessions.size() - cap)
            BOOST_TEST((code_of(r) == code::unauthenticated), i);
        else
            BOOST_TEST(r.has_value(), i);
    }
}

BOOST_AUTO_TEST_CASE(login_rejects_with_the_contract_codes)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    // Unknown node, wrong api key: the same permission_denied.
    auto unknown = g.node("BeginAuth", {{"nodeId", "node-nope"}, {"apiKey", "x"}});
    auto wrong = g.node("BeginAuth", {{"nodeId", n.node_id}, {"apiKey", "x"}});
    BOOST_TEST((code_of(unknown) == code::permission_denied));
    BOOST_TEST((code_of(wrong) == code::permission_denied));
    BOOST_TEST(unknown.error().message == wrong.error().message);

    auto begin = g.node("BeginAuth", {{"nodeId", n.node_id}, {"apiKey", std::string(n.api_key.reveal())}});
    BOOST_TEST_REQUIRE(begin.has_value());
    const auto challenge = *net::protojson::base64_decode(begin->at("challenge").as_string(), "c");
    BOOST_TEST(challenge.size() == 32u);
    const auto other_key = tether::auth::generate_key();
    const auto bad_sig =
        tether::auth::sign(other_key.private_pem, tether::auth::login_message(n.node_id, challenge));
    auto complete = [&](const std::string& sig) {
        return g.node("CompleteAuth", {{"nodeId", n.node_id},
                                       {"challenge", net::protojson::base64_encode(challenge)},
                                       {"signature", net::protojson::base64_encode(sig)}});
    };
    BOOST_TEST((code_of(complete(bad_sig)) == code::unauthenticated));
    // The challenge was consumed by the failed attempt: single use.
    const auto good_sig =
        tether::auth::sign(n.key.private_pem, tether::auth::login_message(n.node_id, challenge));
    BOOST_TEST((code_of(complete(good_sig)) == code::unauthenticated));

    // A challenge older than 30 s.
    auto late = g.node("BeginAuth", {{"nodeId", n.node_id}, {"apiKey", std::string(n.api_key.reveal())}});
    const auto c2 = *net::protojson::base64_decode(late->at("challenge").as_string(), "c");
    g.now += 31'000;
    auto expired = g.node(
        "CompleteAuth", {{"nodeId", n.node_id},
                         {"challenge", net::protojson::base64_encode(c2)},
                         {"signature", net::protojson::base64_encode(tether::auth::sign(
                                           n.key.private_pem, tether::auth::login_message(n.node_id, c2)))}});
    BOOST_TEST((code_of(expired) == code::unauthenticated));

    auto ok = g.login(n);
    BOOST_TEST_REQUIRE(ok.has_value(), ok.error().message);
    const auto expires = net::protojson::parse_timestamp(ok->at("expiresAt").as_string(), "e").value();
    const auto server = net::protojson::parse_timestamp(ok->at("serverTime").as_string(), "s").value();
    BOOST_TEST((expires - server).count() == 24LL * 3600 * 1000);
}

BOOST_AUTO_TEST_CASE(heartbeat_config_and_session_expiry)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    auto hb = g.node("Heartbeat", {{"agentVersion", "t"}, {"uptimeSeconds", "1"}}, s);
    BOOST_TEST_REQUIRE(hb.has_value(), hb.error().message);
    BOOST_TEST(hb->at("configUpdatedAt").as_string() == "0");

    const auto at = g.publish("acme", {{"heartbeatIntervalSeconds", 12}, {"flags", {{"beta", true}}}});
    hb = g.node("Heartbeat", {{"configUpdatedAt", "0"}}, s);
    BOOST_TEST_REQUIRE(hb.has_value());
    BOOST_TEST(hb->at("configUpdatedAt").as_string() == std::to_string(at));
    BOOST_TEST(hb->at("heartbeatIntervalSeconds").as_int64() == 12);
    auto cfg = g.node("GetRuntimeConfig", {}, s);
    BOOST_TEST_REQUIRE(cfg.has_value());
    BOOST_TEST(cfg->at("config").at("flags").at("beta").as_bool());
    // A second publish is strictly newer even within the same millisecond.
    BOOST_TEST(g.publish("acme", {}) > at);

    BOOST_TEST((code_of(g.node("Heartbeat", {}, secret{})) == code::unauthenticated));
    BOOST_TEST((code_of(g.node("Heartbeat", {}, secret{"made-up"})) == code::unauthenticated));
    BOOST_TEST((code_of(g.node("Heartbeat", {{"uptimeSeconds", "x"}}, s)) == code::invalid_argument));
    g.now += 24LL * 3600 * 1000;
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::unauthenticated));
}

BOOST_AUTO_TEST_CASE(heartbeat_storm_writes_storage_once_per_5_seconds)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    const auto before = g.store().node_writes();
    for (int i = 0; i < 10; ++i) BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST(g.store().node_writes() - before == 1u);
    // The 11th within the same second is refused.
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::resource_exhausted));
    g.now += 4'000;
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST(g.store().node_writes() - before == 1u);
    g.now += 1'000;
    BOOST_TEST(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST(g.store().node_writes() - before == 2u);
}

BOOST_AUTO_TEST_CASE(a_wall_clock_stepped_back_refuses_no_heartbeat_and_freezes_no_last_seen)
{
    // NTP steps the gateway's clock back an hour. Every rate window and
    // last_seen written before then lies in the future: heartbeat times
    // never left the per-node queue (after ten beats the node was refused
    // for the hour), last_seen was not written again for the hour (a node
    // that died looked online all along), an address throttled just
    // before stayed throttled for the hour, and a node that had stopped
    // just before the step counted as online for the hour.
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    const auto online = [&](const std::string& id) {
        auto r = g.admin_call("ListNodes", {{"orgId", "acme"}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        for (const auto& v : r->at("nodes").as_array())
            if (v.at("nodeId").as_string() == id) return v.at("online").as_bool();
        BOOST_FAIL("no node " + id);
        return false;
    };
    const auto rollout = [&] {
        auto r = g.admin_call("GetRollout", {{"orgId", "acme"}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return std::pair{r->at("online").as_int64(), r->at("offline").as_int64()};
    };
    // A second node that beats once and stops just before the step: its
    // last_seen is then an hour ahead, and it must not count as online for
    // that hour.
    const auto gone = g.enroll("acme", "gone");
    BOOST_TEST_REQUIRE(g.node("Heartbeat", {}, g.session(gone)).has_value());
    BOOST_TEST_REQUIRE(g.node("Heartbeat", {}, s).has_value());
    BOOST_TEST_REQUIRE((rollout() == std::pair<std::int64_t, std::int64_t>{2, 0}));
    // A few seconds ahead is a replica whose clock runs ahead, not a step.
    g.now -= 5'000;
    BOOST_TEST(online(gone.node_id));
    BOOST_TEST((rollout() == std::pair<std::int64_t, std::int64_t>{2, 0}), "online, offline");
    g.now += 5'000;
    const auto limit = tether::gateway::gateway_options{}.auth_failures_per_window;
    for (std::size_t i = 0; i < limit; ++i)
        (void)g.node("BeginAuth", {{"nodeId", n.node_id}, {"apiKey", "wrong"}});
    BOOST_TEST_REQUIRE((code_of(g.login(n)) == code::resource_exhausted));

    g.now -= 3'600'000;
    BOOST_TEST(!online(gone.node_id), "a node last seen an hour from now counts as online");
    for (int i = 0; i < 15; ++i) {
        g.now += 2'000;
        const auto r = g.node("Heartbeat", {}, s);
        BOOST_TEST(r.has_value(), "heartbeat " << i << " after the step: " << (r ? "" : r.error().message));
    }
    BOOST_TEST(online(n.node_id));
    BOOST_TEST(!online(gone.node_id));
    BOOST_TEST((rollout() == std::pair<std::int64_t, std::int64_t>{1, 1}), "online, offline");
    g.now += 10 * 60'000;  // no heartbeat for ten minutes: the node is gone
    BOOST_TEST(!online(n.node_id), "last_seen stood still ahead of the clock");
    BOOST_TEST((rollout() == std::pair<std::int64_t, std::int64_t>{0, 2}), "online, offline");

    // The throttle's window ended with the step, not an hour later.
    g.now += 61'000;
    BOOST_TEST(g.login(n).has_value());
}

BOOST_AUTO_TEST_CASE(heartbeats_record_the_applied_config_and_list_nodes_shows_it)
{
    gateway_fixture g;
    const auto a = g.enroll("acme", "a");
    const auto b = g.enroll("acme", "b");
    const auto sa = g.session(a);
    const auto sb = g.session(b);
    const auto find = [&](const std::string& id) {
        auto r = g.admin_call("ListNodes", {{"orgId", "acme"}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        for (const auto& v : r->at("nodes").as_array())
            if (v.at("nodeId").as_string() == id) return v.as_object();
        BOOST_FAIL("no node " + id);
        return json::object{};
    };
    // Enrolled, never beat: offline, nothing applied.
    BOOST_TEST(!find(a.node_id).at("online").as_bool());
    BOOST_TEST(!find(a.node_id).contains("appliedConfigUpdatedAt"));

    const json::object beat{{"agentVersion", "1.2.3"},
                            {"uptimeSeconds", "5"},
                            {"configUpdatedAt", "1700"},
                            {"capabilities", json::array{"heartbeat", "config"}}};
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, sa).has_value());
    auto na = find(a.node_id);
    BOOST_TEST(na.at("online").as_bool());
    BOOST_TEST(na.at("appliedConfigUpdatedAt").as_string() == "1700");
    BOOST_TEST(na.at("agentVersion").as_string() == "1.2.3");
    BOOST_TEST(na.at("capabilities").as_array().size() == 2U);
    BOOST_TEST(na.contains("appliedChangedAt"));

    // A new applied version is written at once, inside the last_seen
    // debounce; the same report again is not written.
    const auto writes = g.store().node_writes();
    g.now += 1'000;
    auto next = beat;
    next["configUpdatedAt"] = "1800";
    BOOST_TEST_REQUIRE(g.node("Heartbeat", next, sa).has_value());
    BOOST_TEST(g.store().node_writes() == writes + 1);
    BOOST_TEST(find(a.node_id).at("appliedConfigUpdatedAt").as_string() == "1800");
    g.now += 1'000;
    BOOST_TEST_REQUIRE(g.node("Heartbeat", next, sa).has_value());
    BOOST_TEST(g.store().node_writes() == writes + 1);
    // A node that changes its story on every beat: one write a second.
    for (int i = 0; i < 5; ++i) {
        auto flap = beat;
        flap["configUpdatedAt"] = std::to_string(2000 + i);
        BOOST_TEST_REQUIRE(g.node("Heartbeat", flap, sa).has_value());
    }
    BOOST_TEST(g.store().node_writes() == writes + 2, "rewritten within a second");
    BOOST_TEST(find(a.node_id).at("appliedConfigUpdatedAt").as_string() == "2000");
    g.now += 1'000;
    // Capabilities left out keep the ones stored.
    auto no_caps = next;
    no_caps.erase("capabilities");
    BOOST_TEST_REQUIRE(g.node("Heartbeat", no_caps, sa).has_value());
    BOOST_TEST(find(a.node_id).at("capabilities").as_array().size() == 2U);

    // Two intervals (30 s without a config saying otherwise) plus the
    // debounce later, a node that stopped beating is offline.
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, sb).has_value());
    g.now += 66'000;
    BOOST_TEST(!find(b.node_id).at("online").as_bool());

    // Hostile reports are refused, not stored.
    auto bad = beat;
    bad["agentVersion"] = std::string(65, 'v');
    BOOST_TEST((code_of(g.node("Heartbeat", bad, sa)) == code::invalid_argument));
    bad = beat;
    bad["agentVersion"] = "1.0\x1b[2J";
    BOOST_TEST((code_of(g.node("Heartbeat", bad, sa)) == code::invalid_argument));
    bad = beat;
    json::array many;
    for (int i = 0; i < 33; ++i) many.emplace_back("c" + std::to_string(i));
    bad["capabilities"] = many;
    BOOST_TEST((code_of(g.node("Heartbeat", bad, sa)) == code::invalid_argument));
}

BOOST_AUTO_TEST_CASE(get_rollout_counts_the_org_and_pages_the_nodes_behind)
{
    gateway_fixture g;
    const auto a = g.enroll("acme", "a");
    const auto b = g.enroll("acme", "b");
    const auto c = g.enroll("acme", "c");
    const auto d = g.enroll("acme", "d");  // never beats: offline
    const auto e = g.enroll("acme", "e");  // revoked
    const auto other = g.enroll("other", "o");
    BOOST_TEST_REQUIRE(g.admin_call("RevokeNode", {{"nodeId", e.node_id}}).has_value());
    const auto rollout = [&](json::object req) {
        req["orgId"] = "acme";
        auto r = g.admin_call("GetRollout", req);
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return *r;
    };
    const auto count = [](const json::object& r, const char* k) {
        return r.at(k).to_number<std::int64_t>();
    };
    const auto beat = [&](const secret& s, std::int64_t applied) {
        const json::object req{
            {"agentVersion", "1.0.0"}, {"uptimeSeconds", "5"}, {"configUpdatedAt", std::to_string(applied)}};
        BOOST_TEST_REQUIRE(g.node("Heartbeat", req, s).has_value());
    };
    // No config yet: nothing to apply, so every online node is up to date.
    const auto sa = g.session(a), sb = g.session(b), sc = g.session(c);
    beat(sa, 0);
    auto r = rollout({});
    BOOST_TEST(r.at("configUpdatedAt").as_string() == "0");
    BOOST_TEST(count(r, "online") == 1);
    BOOST_TEST(count(r, "behind") == 0);
    BOOST_TEST(count(r, "offline") == 3);  // b, c, d
    BOOST_TEST(count(r, "revoked") == 1);

    const auto at = g.publish("acme", {{"flags", {{"x", true}}}});
    g.now += 2'000;
    beat(sa, at);
    g.now += 2'000;
    const auto caught_up = g.now.load();
    beat(sb, at);
    beat(sc, at - 1);
    r = rollout({});
    BOOST_TEST(r.at("configUpdatedAt").as_string() == std::to_string(at));
    BOOST_TEST(count(r, "online") == 3);
    BOOST_TEST(count(r, "applied") == 2);
    BOOST_TEST(count(r, "behind") == 1);
    BOOST_TEST(count(r, "offline") == 1);
    BOOST_TEST(count(r, "revoked") == 1);
    BOOST_TEST(r.at("lastCaughtUpAt").as_string() == tether::gateway::detail::timestamp(caught_up));
    BOOST_TEST_REQUIRE(r.at("behindNodes").as_array().size() == 1u);
    const auto& behind = r.at("behindNodes").as_array()[0].as_object();
    BOOST_TEST(behind.at("nodeId").as_string() == c.node_id);
    BOOST_TEST(behind.at("appliedConfigUpdatedAt").as_string() == std::to_string(at - 1));
    BOOST_TEST(behind.at("online").as_bool());

    // Pages of the nodes behind, in id order.
    const auto sd = g.session(d);
    beat(sd, 0);
    std::set<std::string> seen;
    std::string token;
    int pages = 0;
    do {
        json::object req{{"pageSize", 1}};
        if (!token.empty()) req["pageToken"] = token;
        r = rollout(req);
        BOOST_TEST(count(r, "behind") == 2);
        for (const auto& v : r.at("behindNodes").as_array())
            seen.insert(std::string(v.at("nodeId").as_string()));
        const auto* next = r.if_contains("nextPageToken");
        token = next ? std::string(next->as_string()) : std::string();
        ++pages;
    } while (!token.empty() && pages < 5);
    BOOST_TEST(pages == 2);
    BOOST_TEST((seen == std::set<std::string>{c.node_id, d.node_id}));

    // The other org's node counts there only; a node that stopped beating
    // leaves the online counts.
    auto o = g.admin_call("GetRollout", {{"orgId", "other"}});
    BOOST_TEST_REQUIRE(o.has_value());
    BOOST_TEST(count(*o, "offline") == 1);
    BOOST_TEST(count(*o, "online") == 0);
    g.now += 66'000;
    beat(sa, at);
    r = rollout({});
    BOOST_TEST(count(r, "online") == 1);
    BOOST_TEST(count(r, "applied") == 1);
    BOOST_TEST(count(r, "offline") == 3);

    // Bad input.
    BOOST_TEST((code_of(g.admin_call("GetRollout", {})) == code::invalid_argument));
    BOOST_TEST((code_of(g.admin_call("GetRollout", {{"orgId", "a b"}})) == code::invalid_argument));
    BOOST_TEST((code_of(g.admin_call("GetRollout", {{"orgId", "acme"}, {"pageToken", "bm86eA"}})) ==
                code::invalid_argument));
    BOOST_TEST((code_of(g.admin_call("GetRollout", {{"orgId", "acme"}, {"pageSize", -1}})) ==
                code::invalid_argument));
    BOOST_TEST((code_of(g.call("tether.v1.AdminService", "GetRollout", {{"orgId", "acme"}},
                               secret("wrong"))) == code::unauthenticated));
    (void)other;
}

BOOST_AUTO_TEST_CASE(a_publish_keeps_the_newest_versions_of_its_org_only)
{
    // A pipeline publishing every minute must not grow the database for
    // ever: only the newest version is ever served.
    gateway_fixture g;
    const auto publish = [&](const std::string& org, int n) {
        auto r = g.admin_call(
            "PublishConfig",
            {{"orgId", org},
             {"config", json::object{{"flags", json::object{{"f" + std::to_string(n), true}}}}}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return std::stoll(std::string(r->at("configUpdatedAt").as_string()));
    };
    const auto kept = static_cast<std::int64_t>(tether::gateway::configs_kept_per_org);
    const auto other = publish("other", 0);
    std::int64_t last = 0;
    for (int i = 1; i <= kept + 5; ++i) {
        const auto at = publish("acme", i);
        BOOST_TEST(at > last);
        last = at;
        BOOST_TEST(g.count_rows("configs") == 1 + std::min<std::int64_t>(i, kept), "after " << i);
    }
    const auto acme = g.admin_call("GetConfig", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(acme.has_value(), acme.error().message);
    BOOST_TEST(acme->at("configUpdatedAt").as_string() == std::to_string(last));
    BOOST_TEST(acme->at("config").at("flags").as_object().contains("f" + std::to_string(kept + 5)));
    // The other org's only version is untouched, and a version after the
    // cut still goes up.
    const auto theirs = g.admin_call("GetConfig", {{"orgId", "other"}});
    BOOST_TEST_REQUIRE(theirs.has_value(), theirs.error().message);
    BOOST_TEST(theirs->at("configUpdatedAt").as_string() == std::to_string(other));
    BOOST_TEST(publish("acme", 0) > last);
}

BOOST_AUTO_TEST_CASE(get_config_returns_the_document_operators_edit)
{
    gateway_fixture g;
    auto none = g.admin_call("GetConfig", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(none.has_value(), none.error().message);
    BOOST_TEST(none->at("configUpdatedAt").as_string() == "0");
    BOOST_TEST(none->at("config").as_object().empty());
    const json::object doc{{"heartbeatIntervalSeconds", 10}, {"custom", {{"deep", json::array{1, 2}}}}};
    const auto at = g.publish("acme", doc);
    auto got = g.admin_call("GetConfig", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(got.has_value());
    BOOST_TEST(got->at("configUpdatedAt").as_string() == std::to_string(at));
    BOOST_TEST((got->at("config").as_object() == doc));
    BOOST_TEST((code_of(g.admin_call("GetConfig", {})) == code::invalid_argument));
}

BOOST_AUTO_TEST_CASE(a_publish_that_names_the_version_it_edited_never_undoes_another)
{
    // Two operators edit one org's config (the console, or get-config and
    // publish-config): the second to publish must not silently throw the
    // first one's change away.
    gateway_fixture g;
    const auto publish_if = [&](const json::value& expected, const json::object& doc) {
        return g.admin_call("PublishConfig",
                            {{"orgId", "acme"}, {"config", doc}, {"ifConfigUpdatedAt", expected}});
    };
    const json::object first_doc{{"flags", {{"a", true}}}};
    auto first = publish_if("0", first_doc);  // "the org has none yet"
    BOOST_TEST_REQUIRE(first.has_value(), first.error().message);
    const std::string at1(first->at("configUpdatedAt").as_string());
    const auto configs = g.count_rows("configs");
    const auto events = g.count_rows("events");

    // Still editing what it read before the first publish: refused, and
    // nothing is stored or announced.
    auto stale = publish_if("0", json::object{{"flags", {{"b", true}}}});
    BOOST_TEST_REQUIRE(!stale.has_value());
    BOOST_TEST((stale.error().c == code::aborted), stale.error().message);
    BOOST_TEST(t::contains(stale.error().message, "latest config is " + at1 + ", not 0"),
               stale.error().message);
    BOOST_TEST(g.count_rows("configs") == configs);
    BOOST_TEST(g.count_rows("events") == events);
    auto kept = g.admin_call("GetConfig", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(kept.has_value(), kept.error().message);
    BOOST_TEST(kept->at("configUpdatedAt").as_string() == at1);
    BOOST_TEST((kept->at("config").as_object() == first_doc));

    // Edited from the latest (the version as a number or a string): stored.
    auto second = publish_if(std::stoll(at1), json::object{{"flags", {{"a", true}, {"b", true}}}});
    BOOST_TEST_REQUIRE(second.has_value(), second.error().message);
    const std::string at2(second->at("configUpdatedAt").as_string());
    BOOST_TEST(std::stoll(at2) > std::stoll(at1));
    auto behind = publish_if(json::value(at1), json::object{});
    BOOST_TEST((code_of(behind) == code::aborted));
    BOOST_TEST(g.count_rows("configs") == configs + 1);

    for (const json::value& bad : {json::value("-1"), json::value("x"), json::value(-5), json::value(true)})
        BOOST_TEST((code_of(publish_if(bad, json::object{})) == code::invalid_argument),
                   json::serialize(bad));
    // Without the field a publish is what it always was.
    const auto third = g.publish("acme", json::object{});
    BOOST_TEST(third > std::stoll(at2));
}

BOOST_AUTO_TEST_CASE(a_write_that_fails_halfway_leaves_nothing_behind)
{
    // On SQLite an enrollment spent its code, a publish stored its version
    // and a revocation marked its node in one transaction each, and their
    // second write (the node, the event) in another: when that one failed
    // the call answered unavailable with the first kept. A single-use code
    // was gone for the node told to retry; a config no stream was told of
    // was served to heartbeats; a node was revoked with no event.
    gateway_fixture g;
    const auto a = g.enroll("acme", "a");
    const auto before = g.publish("acme", json::object{{"flags", {{"a", true}}}});

    const auto code = g.new_code("acme");
    const auto key = tether::auth::generate_key();
    const auto enroll = [&] {
        return g.node("Enroll", {{"enrollmentCode", code},
                                 {"nodeName", "b"},
                                 {"publicKey", net::protojson::base64_encode(key.public_raw)}});
    };
    g.refuse_inserts("nodes", true);
    BOOST_TEST((code_of(enroll()) == code::unavailable));
    g.refuse_inserts("nodes", false);
    const auto b = enroll();
    BOOST_TEST(b.has_value(), "the single-use code is still good: " << b.error().message);

    const auto configs = g.count_rows("configs");
    const auto events = g.count_rows("events");
    g.refuse_inserts("events", true);
    const auto failed = g.admin_call("PublishConfig", {{"orgId", "acme"}, {"config", json::object{}}});
    BOOST_TEST((code_of(failed) == code::unavailable));
    const auto revoke = g.admin_call("RevokeNode", {{"nodeId", a.node_id}});
    BOOST_TEST((code_of(revoke) == code::unavailable));
    g.refuse_inserts("events", false);
    BOOST_TEST(g.count_rows("configs") == configs);
    BOOST_TEST(g.count_rows("events") == events);
    const auto served = g.admin_call("GetConfig", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(served.has_value(), served.error().message);
    BOOST_TEST(served->at("configUpdatedAt").as_string() == std::to_string(before));
    BOOST_TEST(g.login(a).has_value(), "a revocation that failed revoked nothing");

    // Retried once the fault is gone, each goes through whole.
    BOOST_TEST(g.publish("acme", json::object{}) > before);
    BOOST_TEST(g.admin_call("RevokeNode", {{"nodeId", a.node_id}}).has_value());
    BOOST_TEST(g.count_rows("events") == events + 2);
}

BOOST_AUTO_TEST_CASE(a_leaked_enrollment_code_is_revoked_before_it_expires)
{
    // A DaemonSet's Secret may hold a code good for 100 000 nodes and 30
    // days: once it leaks, waiting for it to expire is not an answer.
    gateway_fixture g;
    const auto code_for = [&](const std::string& org, int uses) {
        auto r = g.admin_call("CreateEnrollmentCode", {{"orgId", org}, {"maxUses", uses}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return std::string(r->at("code").as_string());
    };
    const auto enroll = [&](const std::string& code) {
        const auto key = tether::auth::generate_key();
        return g.node("Enroll", {{"enrollmentCode", code},
                                 {"nodeName", "n"},
                                 {"publicKey", net::protojson::base64_encode(key.public_raw)}});
    };
    const auto leaked = code_for("acme", 100), other_acme = code_for("acme", 1),
               theirs = code_for("other", 1);
    const auto first = enroll(leaked);
    BOOST_TEST_REQUIRE(first.has_value(), first.error().message);

    auto r = g.admin_call("RevokeEnrollmentCode", {{"code", leaked}});
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
    BOOST_TEST(r->at("revoked").as_int64() == 1);
    const auto refused = enroll(leaked);
    BOOST_TEST((code_of(refused) == code::permission_denied));
    BOOST_TEST(t::contains(refused.error().message, "revoked"), refused.error().message);
    BOOST_TEST((code_of(g.admin_call("RevokeEnrollmentCode", {{"code", leaked}})) == code::not_found));
    // The node it enrolled stays: revoking it is a separate act.
    const auto rollout = g.admin_call("GetRollout", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(rollout.has_value(), rollout.error().message);
    BOOST_TEST(rollout->at("offline").as_int64() == 1);
    BOOST_TEST(rollout->at("revoked").as_int64() == 0);

    // Every code of one org, when which one leaked is unknown.
    r = g.admin_call("RevokeEnrollmentCode", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
    BOOST_TEST(r->at("revoked").as_int64() == 1);
    BOOST_TEST((code_of(enroll(other_acme)) == code::permission_denied));
    BOOST_TEST(enroll(theirs).has_value(), "another org's code is untouched");
    BOOST_TEST(g.count_rows("enrollment_codes") == 1, "only the used-up code of the other org is left");

    for (const auto& bad : {json::object{}, json::object{{"code", leaked}, {"orgId", "acme"}},
                            json::object{{"orgId", "a/b"}}, json::object{{"code", std::string(5000, 'x')}}})
        BOOST_TEST((code_of(g.admin_call("RevokeEnrollmentCode", bad)) == code::invalid_argument),
                   json::serialize(bad));
}

BOOST_AUTO_TEST_CASE(nodes_gone_for_good_are_forgotten_and_refused_if_they_come_back)
{
    // An autoscaling fleet enrolls new nodes every day: the ones gone for
    // good stayed for ever, counted offline in every rollout.
    gateway_fixture g;
    const auto gone = g.enroll("acme", "gone");
    const auto here = g.enroll("acme", "here");
    const auto theirs = g.enroll("other", "theirs");
    const auto gone_session = g.session(gone), here_session = g.session(here);
    const json::object beat{{"agentVersion", "1.0.0"}, {"uptimeSeconds", "5"}};
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, gone_session).has_value());
    g.now += 3'600'000;
    const auto never_seen = g.enroll("acme", "never seen");  // enrolled an hour later, never heard of
    g.now += 3'600'000;
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, here_session).has_value());
    const auto forget = [&](std::int64_t seconds) {
        return g.admin_call("ForgetNodes", {{"orgId", "acme"}, {"offlineForSeconds", seconds}});
    };

    // Two hours without a word: gone is forgotten; never-seen (enrolled an
    // hour ago) and here stay, and so does the other org's node.
    auto r = forget(7'000);
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
    BOOST_TEST(r->at("forgotten").as_int64() == 1);
    BOOST_TEST(g.count_rows("nodes") == 3);
    BOOST_TEST((code_of(g.node("Heartbeat", beat, gone_session)) == code::unauthenticated));
    BOOST_TEST((code_of(g.login(gone)) == code::permission_denied));
    BOOST_TEST(g.node("Heartbeat", beat, here_session).has_value());
    BOOST_TEST(g.login(theirs).has_value());
    g.now += 1'000;
    r = forget(3'600);
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
    BOOST_TEST(r->at("forgotten").as_int64() == 1, "the node enrolled an hour ago and never heard of");
    BOOST_TEST((code_of(g.login(never_seen)) == code::permission_denied));
    BOOST_TEST(g.login(here).has_value());

    for (const std::int64_t bad : {std::int64_t{0}, std::int64_t{3'599}, std::int64_t{400'000'000}})
        BOOST_TEST((code_of(forget(bad)) == code::invalid_argument), bad);
    BOOST_TEST(
        (code_of(g.admin_call("ForgetNodes", {{"offlineForSeconds", 7'200}})) == code::invalid_argument));
}

BOOST_AUTO_TEST_CASE(node_status_events_reach_operators_and_never_nodes)
{
    gateway_fixture g;
    const auto a = g.enroll("acme", "a");
    const auto sa = g.session(a);
    auto [admin_status, admin_stream] = g.open_stream(g.admin, "", true);
    BOOST_TEST_REQUIRE(admin_status == 200u);
    auto [node_status, node_stream] = g.open_stream(g.stream_token(sa));
    BOOST_TEST_REQUIRE(node_status == 200u);

    const json::object beat{{"agentVersion", "2.0.0"}, {"uptimeSeconds", "5"}, {"configUpdatedAt", "77"}};
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, sa).has_value());
    auto seen = g.read_events(*admin_stream, 1);
    BOOST_TEST_REQUIRE(seen.size() == 1u);
    BOOST_TEST(seen[0].type == "node-status");
    const auto data = json::parse(seen[0].data).as_object();
    BOOST_TEST(data.at("nodeId").as_string() == a.node_id);
    BOOST_TEST(data.at("appliedConfigUpdatedAt").to_number<std::int64_t>() == 77);
    BOOST_TEST(data.at("agentVersion").as_string() == "2.0.0");
    // The same report again is no news.
    g.now += 1'000;
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, sa).has_value());
    g.publish("acme", {{"flags", {{"x", true}}}});
    seen = g.read_events(*admin_stream, 1);
    BOOST_TEST_REQUIRE(seen.size() == 1u);
    BOOST_TEST(seen[0].type == "config-updated");

    // The node's stream skipped the status, live and in a replay.
    auto live = g.read_events(*node_stream, 1);
    BOOST_TEST_REQUIRE(live.size() == 1u);
    BOOST_TEST(live[0].type == "config-updated");
    auto [again, replayed] = g.open_stream(g.stream_token(sa), "0");
    BOOST_TEST_REQUIRE(again == 200u);
    const auto history = g.read_events(*replayed, 3, 500ms);
    BOOST_TEST_REQUIRE(!history.empty());
    for (const auto& e : history) BOOST_TEST(e.type != "node-status");
    BOOST_TEST(history.back().type == "config-updated");
}

BOOST_AUTO_TEST_CASE(the_fleet_sampler_keeps_each_orgs_online_count)
{
    gateway_fixture g;
    const auto a = g.enroll("acme", "a");
    g.enroll("acme", "b");
    const json::object beat{{"agentVersion", "1"}, {"uptimeSeconds", "5"}, {"configUpdatedAt", "0"}};
    BOOST_TEST_REQUIRE(g.node("Heartbeat", beat, g.session(a)).has_value());
    boost::asio::cancellation_signal stop;
    bool ended = false;
    boost::asio::co_spawn(
        g.ioc, g.service().sample_fleet(),
        boost::asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { ended = true; }));
    std::vector<json::value> samples;
    for (int i = 0; i < 50 && samples.empty(); ++i) {
        tether::test::pump_for(g.ioc, 100ms);
        auto r = g.admin_call("GetOnlineHistory", {{"orgId", "acme"}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        samples.assign(r->at("samples").as_array().begin(), r->at("samples").as_array().end());
    }
    BOOST_TEST_REQUIRE(samples.size() >= 1u);
    BOOST_TEST(samples[0].at("online").to_number<std::int64_t>() == 1);
    BOOST_TEST(samples[0].at("at").as_string() == tether::gateway::detail::timestamp(g.now.load()));
    auto none = g.admin_call("GetOnlineHistory", {{"orgId", "nobody"}});
    BOOST_TEST_REQUIRE(none.has_value());
    BOOST_TEST(none->at("samples").as_array().empty());
    stop.emit(boost::asio::cancellation_type::all);
    BOOST_TEST(tether::test::poll_until(g.ioc, [&] { return ended; }));
}

BOOST_AUTO_TEST_CASE(revocation_is_permanent_and_visible)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    BOOST_TEST(g.admin_call("RevokeNode", {{"nodeId", n.node_id}}).has_value());
    // The contract: a node revoked after its session was issued gets
    // not_found on every session call; a new login is refused for good.
    BOOST_TEST((code_of(g.node("Heartbeat", {}, s)) == code::not_found));
    BOOST_TEST((code_of(g.node("GetRuntimeConfig", {}, s)) == code::not_found));
    BOOST_TEST((code_of(g.node("CreateStreamToken", {}, s)) == code::not_found));
    BOOST_TEST((code_of(g.login(n)) == code::permission_denied));
    BOOST_TEST((code_of(g.admin_call("RevokeNode", {{"nodeId", "node-nope"}})) == code::not_found));
    auto list = g.admin_call("ListNodes", {{"orgId", "acme"}});
    BOOST_TEST_REQUIRE(list.has_value());
    BOOST_TEST(list->at("nodes").as_array()[0].at("revoked").as_bool());
}

BOOST_AUTO_TEST_CASE(list_nodes_pages_with_tokens)
{
    gateway_fixture g;
    for (int i = 0; i < 5; ++i) g.enroll("acme", "n" + std::to_string(i));
    g.enroll("other");
    std::set<std::string> seen;
    std::string token;
    int pages = 0;
    do {
        json::object req{{"orgId", "acme"}, {"pageSize", 2}};
        if (!token.empty()) req["pageToken"] = token;
        auto r = g.admin_call("ListNodes", req);
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        for (const auto& v : r->at("nodes").as_array()) {
            BOOST_TEST(v.at("orgId").as_string() == "acme");
            seen.insert(std::string(v.at("nodeId").as_string()));
        }
        const auto* next = r->if_contains("nextPageToken");
        token = next ? std::string(next->as_string()) : std::string();
        ++pages;
    } while (!token.empty() && pages < 10);
    BOOST_TEST(seen.size() == 5u);
    BOOST_TEST(pages == 3);
    BOOST_TEST((code_of(g.admin_call("ListNodes", {{"pageToken", "garbage!"}})) == code::invalid_argument));
    auto all = g.admin_call("ListNodes", {});
    BOOST_TEST(all->at("nodes").as_array().size() == 6u);
}

BOOST_AUTO_TEST_CASE(admin_requests_need_the_admin_token_and_valid_input)
{
    gateway_fixture g;
    auto no = g.call("tether.v1.AdminService", "CreateEnrollmentCode", {{"orgId", "acme"}}, secret{"wrong"});
    BOOST_TEST((code_of(no) == code::unauthenticated));
    BOOST_TEST((code_of(g.admin_call("CreateEnrollmentCode", {{"orgId", ""}})) == code::invalid_argument));
    BOOST_TEST((code_of(g.admin_call("CreateEnrollmentCode", {{"orgId", "a b"}})) == code::invalid_argument));
    BOOST_TEST((code_of(g.admin_call("PublishConfig", {{"orgId", "acme"}, {"config", "x"}})) ==
                code::invalid_argument));
    // A node session is no admin token.
    const auto n = g.enroll("acme");
    auto as_node = g.call("tether.v1.AdminService", "ListNodes", {}, g.session(n));
    BOOST_TEST((code_of(as_node) == code::unauthenticated));

    // Each refusal is counted and logged (someone probing, or a script
    // with a replaced token), the admin stream's and /metrics' too...
    BOOST_TEST(g.get("/v1/admin/events", secret{"wrong"}).status == 401u);
    BOOST_TEST(g.get("/metrics").status == 401u);
    BOOST_TEST(g.service().counters().admin_auth_failures.load() == 4u);
    // (At most a line a second: the first refusal's is there.)
    const auto logged = g.logs.events("gateway.auth_failed");
    BOOST_TEST_REQUIRE(!logged.empty(), g.logs.all());
    BOOST_TEST(logged.front().at("method").as_string() == "tether.v1.AdminService/CreateEnrollmentCode");
    BOOST_TEST(logged.front().at("peer").as_string() == "127.0.0.1");
    // ... but not throttled: nodes behind the same address still log in.
    for (int i = 0; i < 30; ++i) (void)g.call("tether.v1.AdminService", "ListNodes", {}, secret{"wrong"});
    BOOST_TEST(g.service().counters().admin_auth_failures.load() == 34u);
    BOOST_TEST(g.login(n).has_value());
    BOOST_TEST(g.service().counters().auth_throttled.load() == 0u);
    BOOST_TEST(g.get("/metrics", g.admin).status == 200u);
}

BOOST_AUTO_TEST_CASE(http_level_errors_follow_connect)
{
    gateway_fixture g;
    auto raw = [&](std::string method, std::string target, std::string content_type, std::string body) {
        net::http::request req;
        req.method = std::move(method);
        req.target = std::move(target);
        if (!content_type.empty()) req.headers.set("Content-Type", content_type);
        req.body = std::move(body);
        return g.fetch(std::move(req));
    };
    const auto unknown = raw("POST", "/tether.v1.NodeService/Nope", "application/json", "{}");
    BOOST_TEST(unknown.status == 404u);
    BOOST_TEST((net::connect::decode_error(unknown.status, unknown.body).c == code::unimplemented));
    const auto malformed = raw("POST", "/tether.v1.NodeService/Enroll", "application/json", "{\"a\":");
    BOOST_TEST(malformed.status == 400u);
    const auto e = net::connect::decode_error(malformed.status, malformed.body);
    BOOST_TEST((e.c == code::invalid_argument));
    BOOST_TEST(e.message.find("malformed JSON") != std::string::npos, e.message);
    BOOST_TEST(raw("GET", "/tether.v1.NodeService/Enroll", "", "").status == 405u);
    BOOST_TEST(raw("POST", "/tether.v1.NodeService/Enroll", "text/plain", "{}").status == 415u);
    const auto big =
        raw("POST", "/tether.v1.NodeService/Enroll", "application/json", std::string(70 * 1024, ' '));
    BOOST_TEST(big.status == 429u);
}

BOOST_AUTO_TEST_CASE(connect_headers_are_answered_as_the_protocol_says)
{
    gateway_fixture g;
    auto call = [&](std::string name, std::string value) {
        net::http::request req;
        req.method = "POST";
        req.target = "/tether.v1.NodeService/BeginAuth";
        req.headers.set("Content-Type", "application/json");
        req.headers.set(name, value);
        req.body = "{}";
        return g.fetch(std::move(req));
    };
    const auto gz = call("Content-Encoding", "gzip");
    BOOST_TEST((net::connect::decode_error(gz.status, gz.body).c == code::unimplemented));
    BOOST_TEST(gz.headers.get("Accept-Encoding").value_or("") == "identity");
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"Connect-Protocol-Version", "2"},
             {"Connect-Timeout-Ms", "soon"},
             {"Connect-Timeout-Ms", "12345678901"},
             {"Connect-Timeout-Ms", "-5"},
         }) {
        const auto r = call(name, value);
        BOOST_TEST(r.status == 400u, name + ": " + value);
        BOOST_TEST((net::connect::decode_error(r.status, r.body).c == code::invalid_argument), name);
    }
    // The well-formed ones pass through to the method (which then wants its fields).
    const auto ok = call("Connect-Timeout-Ms", "15000");
    BOOST_TEST(net::connect::decode_error(ok.status, ok.body).message.find("Connect-Timeout-Ms") ==
               std::string::npos);
    const auto bad_org = g.admin_call("ListNodes", {{"orgId", "bad org!"}});
    BOOST_TEST((code_of(bad_org) == code::invalid_argument));
    BOOST_TEST(g.admin_call("ListNodes", {{"orgId", ""}}).has_value());
}

BOOST_AUTO_TEST_CASE(restart_keeps_nodes_configs_and_history)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto at = g.publish("acme", {{"flags", {{"x", true}}}});
    const auto old_session = g.session(n);
    const auto unused_stream_token = g.stream_token(old_session);
    g.restart();
    // Sessions and stream tokens are in the store: a restart logs nobody out.
    BOOST_TEST(g.node("Heartbeat", {}, old_session).has_value());
    // ... and the store holds only their hashes: a stolen copy replays nothing.
    const auto at_rest = g.stored_bytes();
    BOOST_TEST(at_rest.find(n.node_id) != std::string::npos);  // the dump is really of this store
    BOOST_TEST(at_rest.find(old_session.reveal()) == std::string::npos);
    BOOST_TEST(at_rest.find(unused_stream_token.reveal()) == std::string::npos);
    {
        auto [status, stream] = g.open_stream(unused_stream_token, "0");
        BOOST_TEST(status == 200u);  // issued before the restart, used after it
    }
    const auto s = g.session(n);
    auto cfg = g.node("GetRuntimeConfig", {}, s);
    BOOST_TEST_REQUIRE(cfg.has_value());
    BOOST_TEST(cfg->at("configUpdatedAt").as_string() == std::to_string(at));
    auto [status, stream] = g.open_stream(g.stream_token(s), "0");
    BOOST_TEST(status == 200u);
    const auto events = g.read_events(*stream, 1);
    BOOST_TEST_REQUIRE(events.size() == 1u);
    BOOST_TEST(events[0].type == "config-updated");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gateway_stream_suite)

BOOST_AUTO_TEST_CASE(stream_tokens_are_limited_single_use_and_short_lived)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    std::vector<secret> tokens;
    for (int i = 0; i < 10; ++i) tokens.push_back(g.stream_token(s));
    BOOST_TEST((code_of(g.node("CreateStreamToken", {}, s)) == code::resource_exhausted));
    {
        auto [ok, stream] = g.open_stream(tokens[0]);
        BOOST_TEST(ok == 200u);
        BOOST_TEST(*stream->head().headers.get("Content-Type") == "text/event-stream");
        BOOST_TEST(*stream->head().headers.get("Cache-Control") == "no-store");
        BOOST_TEST(*stream->head().headers.get("X-Accel-Buffering") == "no");
    }
    auto [reused, s2] = g.open_stream(tokens[0]);
    BOOST_TEST(reused == 401u);
    // Consumed tokens no longer count against the limit.
    BOOST_TEST(g.node("CreateStreamToken", {}, s).has_value());
    g.now += 5 * 60 * 1000 + 1;
    auto [expired, s3] = g.open_stream(tokens[1]);
    BOOST_TEST(expired == 401u);
}

BOOST_AUTO_TEST_CASE(live_events_filtered_per_org_and_admin_sees_all)
{
    gateway_fixture g;
    const auto a = g.enroll("acme");
    const auto b = g.enroll("beta");
    auto [sa, stream_a] = g.open_stream(g.stream_token(g.session(a)));
    auto [sb, stream_b] = g.open_stream(g.stream_token(g.session(b)));
    auto [sc, admin] = g.open_stream(g.admin, {}, true);
    BOOST_TEST_REQUIRE((sa == 200u && sb == 200u && sc == 200u));
    const auto at = g.publish("acme", {});
    g.publish("beta", {});
    const auto ea = g.read_events(*stream_a, 1);
    BOOST_TEST_REQUIRE(ea.size() == 1u);
    BOOST_TEST(ea[0].type == "config-updated");
    BOOST_TEST(json::parse(ea[0].data).at("configUpdatedAt").as_int64() == at);
    const auto eb = g.read_events(*stream_b, 1);
    BOOST_TEST_REQUIRE(eb.size() == 1u);
    BOOST_TEST(eb[0].last_event_id != ea[0].last_event_id);  // beta saw only its own
    BOOST_TEST(g.read_events(*admin, 2).size() == 2u);
}

BOOST_AUTO_TEST_CASE(replay_without_gap_and_reset_when_history_is_gone)
{
    tether::gateway::gateway_options o;
    o.history = 3;
    gateway_fixture g(o);
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    for (int i = 0; i < 2; ++i) g.publish("acme", {});
    auto [st, first] = g.open_stream(g.stream_token(s), "0");
    const auto two = g.read_events(*first, 2);
    BOOST_TEST_REQUIRE(two.size() == 2u);
    first.reset();

    g.publish("acme", {});  // missed while disconnected
    auto [st2, again] = g.open_stream(g.stream_token(s), two[1].last_event_id);
    g.publish("acme", {});  // live
    const auto next = g.read_events(*again, 2);
    BOOST_TEST_REQUIRE(next.size() == 2u);
    BOOST_TEST(std::stoll(next[0].last_event_id) > std::stoll(two[1].last_event_id));
    BOOST_TEST(std::stoll(next[1].last_event_id) > std::stoll(next[0].last_event_id));
    again.reset();

    for (int i = 0; i < 5; ++i) g.publish("acme", {});  // pushes id 1.. out of the 3-event history
    auto [st3, gap] = g.open_stream(g.stream_token(s), two[0].last_event_id);
    const auto after_gap = g.read_events(*gap, 4);
    BOOST_TEST_REQUIRE(after_gap.size() == 4u);
    BOOST_TEST(after_gap[0].type == "reset");
    for (std::size_t i = 2; i < after_gap.size(); ++i)
        BOOST_TEST(std::stoll(after_gap[i].last_event_id) > std::stoll(after_gap[i - 1].last_event_id));
}

BOOST_AUTO_TEST_CASE(revocation_sends_node_revoked_then_closes)
{
    gateway_fixture g;
    const auto n = g.enroll("acme");
    const auto other = g.enroll("acme");
    auto [s1, mine] = g.open_stream(g.stream_token(g.session(n)));
    auto [s2, theirs] = g.open_stream(g.stream_token(g.session(other)));
    BOOST_TEST(g.admin_call("RevokeNode", {{"nodeId", n.node_id}}).has_value());
    const auto got = g.read_events(*mine, 2);
    BOOST_TEST_REQUIRE(got.size() == 1u);  // the stream ended after it
    BOOST_TEST(got[0].type == "node-revoked");
    BOOST_TEST(json::parse(got[0].data).at("nodeId").as_string() == n.node_id);
    // The other node of the org sees the event and stays connected.
    BOOST_TEST(g.read_events(*theirs, 1).size() == 1u);
    g.publish("acme", {});
    BOOST_TEST(g.read_events(*theirs, 1).size() == 1u);
}

BOOST_AUTO_TEST_CASE(connection_limits_answer_429_and_503)
{
    tether::gateway::gateway_options o;
    o.hub.per_ip = 2;
    o.hub.global = 3;
    gateway_fixture g(o);
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    auto [a, s1] = g.open_stream(g.stream_token(s));
    auto [b, s2] = g.open_stream(g.stream_token(s));
    auto [c, s3] = g.open_stream(g.stream_token(s));
    BOOST_TEST(a == 200u);
    BOOST_TEST(b == 200u);
    BOOST_TEST(c == 429u);
    // The operator's stream has a budget of its own (issue 13): nodes behind
    // the same address cannot lock it out.
    auto [d, s4] = g.open_stream(g.admin, {}, true);
    BOOST_TEST(d == 200u);
    BOOST_TEST(g.service().hub().connections() == 3u);
}

BOOST_AUTO_TEST_CASE(event_streams_from_one_ipv6_64_share_one_limit)
{
    tether::gateway::gateway_options o;
    o.hub.per_ip = 2;
    net::server_options so;
    so.proxy_from = [](const boost::asio::ip::address& a) {
        return a.is_loopback();
    };
    gateway_fixture g(o, so);
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    std::vector<int> open;
    // A stream through a PROXY header naming `client`: its status line.
    const auto stream_from = [&](const std::string& client) {
        const int fd = tether::test::connect_loopback(g.server().port());
        BOOST_TEST_REQUIRE(fd >= 0);
        open.push_back(fd);
        const auto token = g.stream_token(s);
        BOOST_TEST_REQUIRE(tether::test::send_all(
            fd, "PROXY TCP6 " + client +
                    " 2001:db8::ffff 1000 443\r\nGET /v1/events HTTP/1.1\r\nHost: x\r\n" +
                    "Authorization: Bearer " + std::string(token.reveal()) + "\r\n\r\n"));
        std::string got;
        tether::test::poll_until(
            g.ioc,
            [&] {
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, 0) != 1) return false;
                char buf[512];
                const auto r = ::recv(fd, buf, sizeof buf, 0);
                if (r <= 0) return true;
                got.append(buf, static_cast<std::size_t>(r));
                return got.find("\r\n") != std::string::npos;
            },
            5s);
        return got.substr(0, got.find("\r\n"));
    };
    BOOST_TEST(stream_from("2001:db8:9:9::1") == "HTTP/1.1 200 OK");
    BOOST_TEST(stream_from("2001:db8:9:9:ffff::2") == "HTTP/1.1 200 OK");
    BOOST_TEST(stream_from("2001:db8:9:9::3").starts_with("HTTP/1.1 429"));
    BOOST_TEST(stream_from("2001:db8:9:a::1") == "HTTP/1.1 200 OK", "the next /64 is another client");
    for (const int fd : open) ::close(fd);
}

BOOST_AUTO_TEST_CASE(a_closed_stream_frees_its_slot_at_once)
{
    tether::gateway::gateway_options o;
    o.hub.per_ip = 2;  // idle comments stay at 15 s: the close must be noticed on its own
    gateway_fixture g(o);
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    auto [a, s1] = g.open_stream(g.stream_token(s));
    auto [b, s2] = g.open_stream(g.stream_token(s));
    BOOST_TEST_REQUIRE(a == 200u);
    BOOST_TEST_REQUIRE(b == 200u);
    s1.reset();  // FIN from the client
    bool freed = false;
    for (int i = 0; i < 20 && !freed; ++i) {
        tether::test::run_for(g.ioc, tether::test::sleep_for(25ms));
        freed = g.service().hub().connections() == 1;
    }
    BOOST_TEST(freed, "the closed stream still holds its slot");
    auto [c, s3] = g.open_stream(g.stream_token(s));
    BOOST_TEST(c == 200u);
}

namespace {

/// An event stream opened on a raw socket with a small receive buffer that
/// never reads (autotuning would otherwise let the kernel buffer tens of
/// megabytes on loopback). Returns the socket; the caller closes it.
int open_unread_stream(gateway_fixture& g, const tether::secret& token)
{
    const int slow = ::socket(AF_INET, SOCK_STREAM, 0);
    const int small = 4096;
    ::setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(g.server().port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_TEST_REQUIRE(::connect(slow, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string req = "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                            std::string(token.reveal()) + "\r\n\r\n";
    BOOST_TEST_REQUIRE(::write(slow, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
    return slow;
}

}  // namespace

BOOST_AUTO_TEST_CASE(client_that_stops_reading_is_dropped_while_a_fast_one_keeps_receiving)
{
    tether::gateway::gateway_options o;
    o.hub.queue = 8;
    net::server_options so;
    so.write_timeout = 500ms;     // production: 10 s
    so.send_buffer_bytes = 4096;  // so ~100-byte events fill the path quickly
    gateway_fixture g(o, so);
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    // The slow consumer.
    const int slow = open_unread_stream(g, g.stream_token(s));
    auto [b, fast] = g.open_stream(g.stream_token(s));
    BOOST_TEST_REQUIRE(b == 200u);
    BOOST_TEST_REQUIRE(g.service().hub().connections() == 2u);
    std::size_t fast_got = 0;
    const int publishes = 600;  // ~60 KB of events: far more than both small buffers hold
    for (int i = 0; i < publishes; ++i) {
        g.publish("acme", {});
        fast_got += g.read_events(*fast, 1).size();
    }
    // The slow stream is gone (queue overflow or write timeout), the fast one is not.
    bool dropped = false;
    for (int i = 0; i < 60 && !dropped; ++i) {
        dropped = g.service().hub().connections() == 1;
        if (!dropped) tether::test::run_for(g.ioc, tether::test::sleep_for(100ms));
    }
    BOOST_TEST(dropped, "the consumer that stopped reading is still connected");
    // Dropped by the write timeout or by its queue overflowing, both logged.
    BOOST_TEST((g.logs.has("gateway.stream_write_failed") || g.logs.has("gateway.stream_evicted")));
    BOOST_TEST(fast_got == static_cast<std::size_t>(publishes));
    ::close(slow);
}

BOOST_AUTO_TEST_CASE(with_the_gateways_own_settings_a_stream_that_never_reads_is_evicted_by_queue_depth)
{
    gateway_fixture g({}, tether::gateway::default_server_options());
    const auto n = g.enroll("acme");
    const auto s = g.session(n);
    const int slow = open_unread_stream(g, g.stream_token(s));
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        g.ioc, [&] { return g.service().hub().connections() == 1; }, 5s));
    // Far fewer than the ~22 000 events an autotuned send buffer absorbed.
    for (int i = 0; i < 4000 && g.service().hub().connections() == 1; ++i) {
        g.publish("acme", {});
        if (i % 50 == 0) tether::test::run_for(g.ioc, tether::test::sleep_for(1ms));
    }
    BOOST_TEST(tether::test::poll_until(
        g.ioc, [&] { return g.service().hub().connections() == 0; }, 5s));
    BOOST_TEST(g.logs.has("gateway.stream_evicted"), g.logs.all());
    // Ended by its queue depth, not by the 10 s write timeout (how long the
    // publishes took depends on the backend and the sanitizer, not on this).
    BOOST_TEST(!g.logs.has("gateway.stream_write_failed"), g.logs.all());
    ::close(slow);
}

namespace {

/// Bursts of events of a few KiB, each handed to the hub at once (one
/// delivery job, so the burst goes out in one gathered write), to an idle
/// stream whose path holds a few KiB: the direct write stops part-way
/// through an event and the stream's coroutine must finish it while the
/// reader lags. Every chunk and event must arrive whole, in order, once.
void a_lagging_reader_gets_every_event_whole_and_in_order(gateway_fixture& g, int rounds)
{
    const auto n = g.enroll("acme");
    const int fd = open_unread_stream(g, g.stream_token(g.session(n)));
    net::http::response_reader reader({16 * 1024, 1 << 20});
    net::sse_parser parser;
    const std::string pad(3000, 'p');
    std::vector<std::int64_t> published;
    std::vector<std::int64_t> got;
    std::vector<std::int64_t> ids;
    char buf[4096];
    const auto read_until = [&](const auto& enough) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!enough() && std::chrono::steady_clock::now() < deadline) {
            tether::test::run_for(g.ioc, tether::test::sleep_for(1ms));  // the gateway writes as we read
            const ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0) break;
            if (r < 0) continue;
            const auto st = reader.feed({buf, static_cast<std::size_t>(r)});
            BOOST_TEST_REQUIRE((st != net::http::read_status::failed), reader.failure().reason);
            const auto body = reader.take_body();
            const auto perr = parser.feed(body, [&](const net::sse_event& e) {
                if (e.type != "config-updated") return;
                const auto v = json::parse(e.data).as_object();
                BOOST_TEST(v.at("pad").as_string() == pad);
                got.push_back(v.at("configUpdatedAt").as_int64());
                ids.push_back(std::stoll(e.last_event_id));
            });
            BOOST_TEST_REQUIRE(!perr, perr.message());
        }
    };
    read_until([&] { return reader.header_done(); });
    BOOST_TEST_REQUIRE(reader.header_done());
    for (int round = 0; round < rounds; ++round) {
        tether::test::run_for(g.ioc, tether::test::sleep_for(5ms));  // the stream waits for events again
        for (int i = 0; i < 10; ++i) {
            const auto v = static_cast<std::int64_t>(published.size()) + 1;
            published.push_back(v);
            g.service().hub().publish(tether::gateway::event_record{
                1000 + v, "acme", "config-updated",
                R"({"configUpdatedAt":)" + std::to_string(v) + R"(,"pad":")" + pad + R"("})"});
        }
        read_until([&] { return got.size() >= published.size(); });
    }
    ::close(fd);
    BOOST_TEST(got == published, got.size() << " of " << published.size() << " events");
    BOOST_TEST(std::is_sorted(ids.begin(), ids.end()));
    BOOST_TEST((std::adjacent_find(ids.begin(), ids.end()) == ids.end()));
}

/// The configUpdatedAt of each config-updated event, in order.
std::vector<std::int64_t> versions(const std::vector<net::sse_event>& events)
{
    std::vector<std::int64_t> out;
    for (const auto& e : events) out.push_back(json::parse(e.data).at("configUpdatedAt").as_int64());
    return out;
}

net::server_options small_send_buffer()
{
    auto so = tether::gateway::default_server_options();  // one strand: the direct write path
    so.send_buffer_bytes = 4096;
    so.write_timeout = 30s;  // the reader waits on purpose
    return so;
}

tether::gateway::gateway_options deep_queue()
{
    tether::gateway::gateway_options o;
    o.hub.queue = 4096;
    return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_reader_behind_its_stream_gets_every_event_whole_and_in_order)
{
    gateway_fixture g(deep_queue(), small_send_buffer());
    a_lagging_reader_gets_every_event_whole_and_in_order(g, 30);
}

BOOST_AUTO_TEST_CASE(a_reader_slower_than_its_tls_stream_gets_every_event_whole_and_in_order)
{
    gateway_fixture g(deep_queue(), small_send_buffer(), true);
    // A raw socket cannot speak TLS: this reader uses the client, and reads
    // only after every publish, so the stream's queue holds a backlog.
    const auto n = g.enroll("acme");
    auto [st, stream] = g.open_stream(g.stream_token(g.session(n)));
    BOOST_TEST_REQUIRE(st == 200u);
    std::vector<std::int64_t> published;
    for (int i = 0; i < 300; ++i) published.push_back(g.publish("acme", {}));
    const auto got = versions(g.read_events(*stream, published.size()));
    BOOST_TEST(got == published, got.size() << " of " << published.size() << " events");
}

BOOST_AUTO_TEST_CASE(streams_on_one_strand_and_on_their_own_get_the_same_events)
{
    // The gateway's own settings put every connection on one strand (one hub
    // shard); a server with a strand per connection makes a shard each.
    for (const bool shared : {true, false}) {
        auto so = tether::gateway::default_server_options();
        if (!shared) so.connection_strands = 0;
        gateway_fixture g({}, so);
        const auto a = g.enroll("acme");
        const auto b = g.enroll("acme");
        auto [s1, one] = g.open_stream(g.stream_token(g.session(a)));
        auto [s2, two] = g.open_stream(g.stream_token(g.session(b)));
        auto [s3, admin] = g.open_stream(g.admin, {}, true);
        BOOST_TEST_REQUIRE((s1 == 200u && s2 == 200u && s3 == 200u));
        std::vector<std::int64_t> published;
        for (int i = 0; i < 20; ++i) published.push_back(g.publish("acme", {}));
        for (auto* s : {one.get(), two.get(), admin.get()}) {
            const auto got = versions(g.read_events(*s, published.size()));
            BOOST_TEST(got == published, (shared ? "shared strand: " : "own strands: ") << got.size());
        }
    }
}

BOOST_AUTO_TEST_CASE(a_stream_whose_reader_stops_ends_at_the_write_timeout_with_its_queue_far_from_full)
{
    auto o = deep_queue();
    o.idle_comment = 60s;  // the timeout, not an idle comment, must wake the stream
    auto so = small_send_buffer();
    so.write_timeout = 300ms;
    gateway_fixture g(o, so);
    const auto n = g.enroll("acme");
    const int fd = open_unread_stream(g, g.stream_token(g.session(n)));
    BOOST_TEST_REQUIRE(tether::test::poll_until(
        g.ioc, [&] { return g.service().hub().connections() == 1; }, 5s));
    tether::test::run_for(g.ioc, tether::test::sleep_for(20ms));
    // Enough to fill the few KiB the path holds, far below the 4096 queue.
    const std::string pad(3000, 'p');
    for (int i = 1; i <= 40; ++i)
        g.service().hub().publish(tether::gateway::event_record{
            1000 + i, "acme", "config-updated",
            R"({"configUpdatedAt":)" + std::to_string(i) + R"(,"pad":")" + pad + R"("})"});
    // Without the write timeout nothing would end it: no overflow, no idle comment for a minute.
    BOOST_TEST(tether::test::poll_until(
        g.ioc, [&] { return g.service().hub().connections() == 0; }, 5s));
    BOOST_TEST(g.logs.has("gateway.stream_write_failed"), g.logs.all());
    BOOST_TEST(!g.logs.has("gateway.stream_evicted"), g.logs.all());
    BOOST_TEST(g.service().hub().evictions() == 0u);
    ::close(fd);
}

BOOST_AUTO_TEST_CASE(idle_streams_get_comments)
{
    tether::gateway::gateway_options o;
    o.idle_comment = 100ms;
    gateway_fixture g(o);
    const auto n = g.enroll("acme");
    auto [st, stream] = g.open_stream(g.stream_token(g.session(n)));
    auto chunk = tether::test::run_for(g.ioc, stream->read_some(2s));
    BOOST_TEST_REQUIRE(chunk.has_value());
    BOOST_TEST(chunk->starts_with(":"), *chunk);
}

BOOST_AUTO_TEST_SUITE_END()
