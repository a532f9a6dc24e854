// The agent's realtime path end to end: event stream -> dispatcher ->
// config sync -> store, against the real gateway where it can be made to do
// what the test needs, and a scripted one (real HTTP on loopback) for the
// failures it cannot be made to produce on demand.
#include "app/agent/tasks/config_render_task.hpp"
#include "app/agent/tasks/health_task.hpp"
#include "app/common/exit_status.hpp"
#include "auth/keys.hpp"
#include "net/connect_reply.hpp"
#include "net/protojson.hpp"
#include "support/agent_parts.hpp"
#include "support/child_process.hpp"
#include "support/gateway_fixture.hpp"
#include "support/loopback_server.hpp"
#include "support/node_states.hpp"
#include "support/run_for.hpp"
#include "support/scripted_gateway.hpp"
#include "support/text.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace net = tether::net;
namespace pj = tether::net::protojson;
using tether::awaitable;
using tether::test::poll_until;

namespace {

struct scripted_rig {
    scripted_rig()
        : srv(ioc, [this](net::http::request r, net::peer_info p) { return script(std::move(r), p); }),
          agent(ioc, srv.base(), tether::test::scripted_node(srv.base()),
                tether::auth::generate_key().private_pem)
    {
    }
    net::sse_options fast_stream() const
    {
        net::sse_options o;
        o.reconnect = {10ms, 200ms};
        return o;
    }
    void start_all()
    {
        agent.start_sync();
        agent.start_dispatcher();
        agent.start_realtime(fast_stream());
    }

    asio::io_context ioc;
    tether::test::scripted_gateway script;
    tether::test::loopback_server srv;
    tether::test::agent_parts agent;
};

std::string event(std::string_view type, std::string_view data, std::string_view id = {})
{
    std::string s;
    if (!id.empty()) s += "id: " + std::string(id) + "\n";
    return s + "event: " + std::string(type) + "\ndata: " + std::string(data) + "\n\n";
}

/// Writes what the test queues, for a minute: a named coroutine, its frame
/// owns the queue (a coroutine lambda's captures live in the lambda).
awaitable<tether::error_code> write_queued(std::shared_ptr<std::vector<std::string>> queued,
                                           net::body_writer& w)
{
    for (int i = 0; i < 1200; ++i) {
        for (; !queued->empty(); queued->erase(queued->begin()))
            if (auto ec = co_await w.write(queued->front())) co_return ec;
        co_await tether::test::sleep_for(50ms);
    }
    const tether::error_code none;  // named: see the GCC 12 rules in base/asio.hpp
    co_return none;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(realtime)

BOOST_AUTO_TEST_CASE(a_published_config_reaches_the_store_once_through_the_real_gateway)
{
    tether::test::gateway_fixture gw;
    const auto node = gw.enroll("org-a");
    const auto base = gw.server().base();
    tether::test::agent_parts agent(gw.ioc, base, tether::test::enrolled_state(node, base),
                                    node.key.private_pem);
    std::vector<std::int64_t> notified;
    agent.store.subscribe([&](const tether::settings::config_ptr& c) { notified.push_back(c->updated_at); });
    agent.start_sync();
    agent.start_dispatcher();
    net::sse_options o;
    agent.start_realtime(o);
    BOOST_TEST_REQUIRE(poll_until(
                           gw.ioc, [&] { return agent.metrics.realtime_connected.load(); }, 10s),
                       agent.logs.all());
    BOOST_TEST(poll_until(
        gw.ioc, [&] { return agent.metrics.config_fetches.load() == 1; }, 5s));  // catch-up

    gw.publish("org-b", {{"flags", json::object{{"other", true}}}});  // another org: not for us
    const auto at = gw.publish("org-a", {{"flags", json::object{{"beta", true}}}, {"newKey", 1}});
    BOOST_TEST_REQUIRE(poll_until(
                           gw.ioc, [&] { return agent.store.updated_at() == at; }, 5s),
                       agent.logs.all());
    // Logged once persisted; a little longer for a second notification that must not come.
    BOOST_TEST(poll_until(
        gw.ioc, [&] { return agent.logs.has("config.applied"); }, 5s));
    tether::test::pump_for(gw.ioc, 200ms);
    BOOST_TEST((notified == std::vector<std::int64_t>{at}));
    BOOST_TEST(agent.store.current()->flag("beta"));
    BOOST_TEST(agent.store.current()->document.contains("newKey"));  // unknown keys kept
    BOOST_TEST(agent.metrics.config_applies.load() == 1);
    BOOST_TEST(agent.metrics.events_by_type[0].load() == 1);  // config-updated, ours only
    BOOST_TEST(agent.metrics.stream_connects.load() == 1);

    // Persisted as the last known good config, and loadable at the next start.
    const auto saved = tether::settings::load_config_file(agent.paths.config_file(), agent.logs.logger());
    BOOST_TEST(saved->updated_at == at);
    BOOST_TEST(saved->flag("beta"));
    // Payloads never reach the logs at info level.
    BOOST_TEST(!tether::test::contains(agent.logs.all(), "beta\":true"));
}

BOOST_AUTO_TEST_CASE(revocation_event_ends_the_agent_with_exit_3)
{
    tether::test::gateway_fixture gw;
    const auto node = gw.enroll("org-a");
    const auto other = gw.enroll("org-a", "other");
    const auto base = gw.server().base();
    tether::test::agent_parts agent(gw.ioc, base, tether::test::enrolled_state(node, base),
                                    node.key.private_pem);
    tether::test::agent_parts bystander(gw.ioc, base, tether::test::enrolled_state(other, base),
                                        other.key.private_pem);
    for (auto* a : {&agent, &bystander}) {
        a->start_dispatcher();
        a->start_sync();
        a->start_realtime({});
    }
    BOOST_TEST_REQUIRE(poll_until(gw.ioc, [&] {
        return agent.metrics.realtime_connected.load() && bystander.metrics.realtime_connected.load();
    }));
    BOOST_TEST(gw.admin_call("RevokeNode", {{"nodeId", node.node_id}}).has_value());
    BOOST_TEST_REQUIRE(poll_until(
                           gw.ioc, [&] { return agent.failure() != nullptr; }, 10s),
                       agent.logs.all());
    try {
        std::rethrow_exception(agent.failure());
    } catch (const tether::app::fatal_exit& e) {
        BOOST_TEST(static_cast<int>(e.status) == 3);
    }
    tether::test::pump_for(gw.ioc, 300ms);
    BOOST_TEST(!bystander.failure());  // saw the event for another node, kept going
    BOOST_TEST(bystander.metrics.events_by_type[1].load() == 1);
}

BOOST_AUTO_TEST_CASE(a_revocation_event_the_gateway_does_not_confirm_is_not_an_exit)
{
    scripted_rig rig;  // its Heartbeat answers OK: the node is alive
    rig.script.stream = [](int) {
        return tether::test::sse_reply("event: node-revoked\ndata: {\"nodeId\": \"node-1\"}\n\n", 30s);
    };
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.logs.has("realtime.revocation_unconfirmed"); }, 10s));
    BOOST_TEST(!rig.agent.failure());
    BOOST_TEST(rig.script.heartbeats >= 1);  // it asked
}

BOOST_AUTO_TEST_CASE(an_invalid_document_is_rejected_whole_and_the_old_one_kept)
{
    scripted_rig rig;
    rig.script.config_at = 5;
    rig.script.config = {{"blockedIps", json::array{"10.0.0.0/8"}}};
    rig.script.stream = [&](int) {
        return tether::test::sse_reply("", 30s);
    };
    // The workload's file and /status see it too (issue 17).
    tether::test::temp_dir out;
    tether::app::config_render_task render({rig.agent.store,
                                            {out.path() / "cfg", 0640, std::nullopt},
                                            rig.agent.blocking.get_executor(),
                                            rig.agent.metrics,
                                            rig.agent.logs.logger()});
    rig.agent.start(render.run(), "config-render");
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.store.updated_at() == 5; }, 5s));
    const auto v5 = tether::app::rendered_document(*rig.agent.store.current());
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return tether::settings::projected_document(out.path() / "cfg") == v5; }, 5s));

    rig.script.config_at = 6;
    rig.script.config = {
        {"blockedIps", json::array{"10.0.0.0/8"}},
        {"rateLimits", json::array{json::object{{"route", "/a"}, {"maxRequests", 1}, {"windowSeconds", 0}}}}};
    rig.agent.dispatch.post({"config-updated", R"({"configUpdatedAt": 6})", {}});
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.config_rejections.load() == 1; }, 5s));
    BOOST_TEST(rig.agent.store.updated_at() == 5);
    BOOST_TEST(rig.agent.store.current()->blocked_ips.size() == 1u);
    const auto rejected = rig.agent.logs.events("config.rejected");
    BOOST_TEST_REQUIRE(rejected.size() == 1u);
    BOOST_TEST(rejected[0].at("error").as_string() == "rateLimits[0].windowSeconds: must be > 0");
    // Nothing changed on disk; /status says why.
    tether::test::pump_for(rig.ioc, 200ms);
    BOOST_TEST(tether::settings::projected_document(out.path() / "cfg").value_or("") == v5);
    BOOST_TEST(tether::settings::projected_version_dir(out.path() / "cfg").value_or("") == "..5");
    tether::app::health_sources src;
    src.metrics = &rig.agent.metrics;
    const auto health = tether::app::health_handler(src);
    net::http::request get;
    get.target = "/status";
    auto answer = asio::co_spawn(rig.ioc, health(get, {}), asio::use_future);
    tether::test::pump_for(rig.ioc, 50ms);
    const auto status = json::parse(answer.get().head.body);
    const auto& cfg = status.at("config");
    BOOST_TEST(cfg.at("version").to_number<std::int64_t>() == 5);
    BOOST_TEST(cfg.at("lastError").at("message").as_string() == "rateLimits[0].windowSeconds: must be > 0");
    BOOST_TEST(cfg.at("lastError").at("configUpdatedAt").to_number<std::int64_t>() == 6);
    // The refused version is not fetched again for the same news; an older
    // or equal one never is.
    const int fetches = rig.script.fetches;
    rig.agent.dispatch.post({"config-updated", R"({"configUpdatedAt": 6})", {}});
    rig.agent.dispatch.post({"config-updated", R"({"configUpdatedAt": 5})", {}});
    rig.agent.dispatch.post({"config-updated", R"({"configUpdatedAt": 4})", {}});
    tether::test::pump_for(rig.ioc, 300ms);
    BOOST_TEST(rig.script.fetches == fetches);
    BOOST_TEST(rig.agent.metrics.config_applies.load() == 1);
    rig.agent.stop();  // before `render` goes
}

// `tether exec --on-config-change signal:SIGHUP` (a real process) against
// the scripted gateway, which can send what the real one refuses: a
// document that fails validation reaches neither the child's file nor the
// child; the next good one does both.
BOOST_AUTO_TEST_CASE(exec_renders_and_signals_nothing_for_an_invalid_document)
{
    asio::io_context ioc;
    tether::test::scripted_gateway script;
    script.config_at = 5;
    script.config = {{"flags", json::object{{"x", true}}}};
    // Events the test queues go out on the open stream.
    auto queued = std::make_shared<std::vector<std::string>>();
    script.stream = [queued](int) {
        net::reply r;
        r.head.headers.set("Content-Type", "text/event-stream");
        r.stream = [queued](net::body_writer& w) {
            return write_queued(queued, w);
        };
        return r;
    };
    tether::test::loopback_server srv(
        ioc, [&script](net::http::request r, net::peer_info p) { return script(std::move(r), p); });
    tether::test::temp_dir dir;
    const tether::auth::state_paths paths{dir.path() / "state"};
    std::filesystem::create_directories(paths.dir);
    tether::auth::save_state(paths, tether::test::scripted_node(srv.base()));
    tether::auth::save_key(paths, tether::secret(tether::auth::generate_key().private_pem));
    constexpr const char* child = R"(
import os, signal, time
f = os.environ["TETHER_CONFIG_FILE"]
def show(tag):
    with open(f) as fh:
        print(tag, fh.read().strip(), flush=True)
signal.signal(signal.SIGHUP, lambda *a: show("hup"))
show("start")
while True:
    time.sleep(0.05)
)";
    tether::test::child_process exec(
        tether::test::binary("tether"),
        {"exec", "--state-dir", paths.dir.string(), "--on-config-change", "signal:SIGHUP",
         "--wait-for-config", "--log-format", "json", "--", "/usr/bin/python3", "-c", child});
    const auto out_has = [&](const std::string& s) {
        return tether::test::contains(exec.out(), s);
    };
    BOOST_TEST_REQUIRE(poll_until(
                           ioc, [&] { return out_has(R"(start {"flags":{"x":true}})"); }, 15s),
                       exec.out_when_printed() << exec.err_when_printed());

    script.config_at = 6;
    script.config = {
        {"rateLimits", json::array{json::object{{"route", "/a"}, {"maxRequests", 1}, {"windowSeconds", 0}}}}};
    queued->push_back("event: config-updated\ndata: {\"configUpdatedAt\": 6}\n\n");
    BOOST_TEST_REQUIRE(poll_until(
                           ioc, [&] { return tether::test::contains(exec.err(), "config.rejected"); }, 10s),
                       exec.err_when_printed());
    tether::test::pump_for(ioc, 1500ms);  // longer than a render and a signal take
    BOOST_TEST(!out_has("hup"), exec.out_when_printed());

    tether::test::pump_for(ioc, 1000ms);  // fetches are a second apart
    script.config_at = 7;
    script.config = {{"flags", json::object{{"x", false}}}};
    queued->push_back("event: config-updated\ndata: {\"configUpdatedAt\": 7}\n\n");
    BOOST_TEST_REQUIRE(poll_until(
                           ioc, [&] { return out_has(R"(hup {"flags":{"x":false}})"); }, 10s),
                       exec.out_when_printed() << exec.err_when_printed());
    BOOST_TEST(tether::test::count(exec.out(), "hup") == 1, exec.out_when_printed());
    exec.signal(SIGTERM);
    BOOST_TEST(poll_until(
        ioc, [&] { return exec.wait_for(10ms).has_value(); }, 10s));
}

BOOST_AUTO_TEST_CASE(a_burst_of_100_events_costs_at_most_two_fetches)
{
    std::string burst;  // before the rig: its server reads it until the rig is gone
    scripted_rig rig;
    rig.script.config_at = 100;
    rig.script.config = {{"flags", json::object{{"x", true}}}};
    rig.script.fetch_delay = 200ms;  // the burst lands while a fetch is in flight
    for (int i = 1; i <= 100; ++i)
        burst += i % 2 ? event("config-updated", "{\"configUpdatedAt\": " + std::to_string(i) + "}")
                       : event("config-updated", "not json");  // still news: fetch
    rig.script.stream = [&](int) {
        return tether::test::sse_reply(burst, 30s);
    };
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.dispatch.handled.load() == 100; }, 10s));
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return rig.agent.store.updated_at() == 100; }, 5s));
    tether::test::pump_for(rig.ioc, 600ms);
    BOOST_TEST(rig.script.fetches >= 1);
    BOOST_TEST(rig.script.fetches <= 2);
    BOOST_TEST(rig.agent.metrics.config_applies.load() == 1);
}

BOOST_AUTO_TEST_CASE(a_flood_of_resets_costs_one_fetch_per_second)
{
    scripted_rig rig;
    rig.script.config_at = 100;
    rig.script.stream = [](int) {
        net::reply r = tether::test::sse_reply("");
        r.stream = [](net::body_writer& w) -> awaitable<tether::error_code> {
            for (int i = 0; i < 600; ++i) {  // a reset every 2 ms for about 1.2 s
                if (auto ec = co_await w.write("event: reset\ndata: {}\n\n")) co_return ec;
                co_await tether::test::sleep_for(2ms);
            }
            co_await tether::test::sleep_for(30s);
            co_return tether::error_code{};
        };
        return r;
    };
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.dispatch.handled.load() >= 600; }, 10s));
    tether::test::pump_for(rig.ioc, 1200ms);  // room for the trailing fetch
    // 1.2 s of flood plus the reconnect fetch: a handful, not hundreds.
    BOOST_TEST(rig.script.fetches >= 2);
    BOOST_TEST(rig.script.fetches <= 4, rig.script.fetches << " fetches");
}

BOOST_AUTO_TEST_CASE(a_version_from_the_future_is_refused_and_real_publishes_still_apply)
{
    scripted_rig rig;
    rig.script.config_at = INT64_MAX;
    rig.script.config = {{"flags", json::object{{"future", true}}}};
    rig.agent.start_sync();
    rig.agent.sync.request(std::nullopt, "test");
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.logs.has("config.rejected"); }, 5s));
    BOOST_TEST(rig.agent.store.updated_at() == 0);
    BOOST_TEST(rig.agent.logs.all().find("beyond the gateway's clock") != std::string::npos);
    rig.script.config_at = 1'000'000;
    rig.script.config = {{"flags", json::object{{"real", true}}}};
    rig.agent.sync.request(1'000'000, "test");
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return rig.agent.store.updated_at() == 1'000'000; }, 5s));
}

BOOST_AUTO_TEST_CASE(a_refused_stream_token_is_logged_as_what_it_is)
{
    scripted_rig rig;
    rig.script.token_code = "resource_exhausted";
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.logs.events("sse.reconnect").size() >= 2; }, 10s));
    const auto all = rig.agent.logs.all();
    BOOST_TEST(all.find("no candidate URL is reachable") == std::string::npos, all);
    BOOST_TEST(rig.agent.logs.has("realtime.token_failed"));
    BOOST_TEST(all.find("resource_exhausted") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_stream_token_that_cannot_go_in_a_header_is_never_sent)
{
    // Sent, it would add a field to the stream request: it is refused as no
    // token, and the stream backs off as for any failed token.
    scripted_rig rig;
    rig.script.stream_token = "st\r\nX-Admin: 1";
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.logs.events("sse.reconnect").size() >= 2; }, 10s));
    BOOST_TEST(rig.script.opens == 0, "stream requests the gateway saw: " << rig.script.opens);
    BOOST_TEST(rig.agent.logs.all().find("without a usable token") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_killed_stream_reconnects_with_last_event_id_and_catches_up)
{
    scripted_rig rig;
    rig.script.config_at = 3;
    rig.script.stream = [&](int n) {
        if (n == 0)
            return tether::test::sse_reply(event("config-updated", R"({"configUpdatedAt": 3})", "41"));
        return tether::test::sse_reply(": live\n", 30s);
    };
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.stream_connects.load() == 2; }, 10s));
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return rig.script.fetches == 2; }, 5s));
    tether::test::pump_for(rig.ioc, 300ms);
    BOOST_TEST(rig.script.fetches == 2);  // one catch-up per connect, the event added none
    BOOST_TEST_REQUIRE(rig.script.last_event_ids.size() == 2u);
    BOOST_TEST(!rig.script.last_event_ids[0].has_value());
    BOOST_TEST(rig.script.last_event_ids[1].value_or("") == "41");
    BOOST_TEST(rig.script.tokens == 2);  // a fresh stream token per connect
    BOOST_TEST(rig.agent.metrics.stream_disconnects.load() == 1);
}

BOOST_AUTO_TEST_CASE(an_unavailable_stream_warns_once_heartbeats_go_on_then_it_connects)
{
    bool up = false;  // before the rig: its server reads it until the rig is gone
    scripted_rig rig;
    rig.script.stream = [&](int) {
        if (up) return tether::test::sse_reply(": hi\n", 30s);
        return net::connect::error_reply(503, net::connect::code::unavailable, "down for maintenance");
    };
    rig.start_all();
    rig.agent.start_heartbeats(5s);
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.script.opens >= 4; }, 10s));
    BOOST_TEST(rig.agent.logs.events("realtime.unavailable").size() == 1u);
    BOOST_TEST(tether::test::contains(rig.agent.logs.all(), "heartbeats will still pick up"));
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.heartbeats_sent.load() >= 1; }, 5s));
    BOOST_TEST(!rig.agent.any_done());
    up = true;
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.realtime_connected.load(); }, 5s));
    BOOST_TEST(rig.agent.logs.events("realtime.available").size() == 1u);
    BOOST_TEST(rig.agent.logs.events("realtime.unavailable").size() == 1u);
}

BOOST_AUTO_TEST_CASE(repeated_401_on_the_stream_refreshes_the_session)
{
    scripted_rig rig;
    rig.script.stream = [&](int n) {
        if (n < 2)
            return net::connect::error_reply(401, net::connect::code::unauthenticated,
                                             "stream token refused");
        return tether::test::sse_reply(": hi\n", 30s);
    };
    rig.start_all();
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.realtime_connected.load(); }, 10s));
    BOOST_TEST(rig.script.tokens == 3);      // a new stream token after each 401
    BOOST_TEST(rig.script.begin_auth == 2);  // and a new session after the second
}

BOOST_AUTO_TEST_CASE(permission_denied_stops_the_stream_task_only)
{
    scripted_rig rig;
    rig.script.token_code = "permission_denied";
    rig.start_all();
    rig.agent.start_heartbeats(5s);
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.any_done(); }, 10s));
    BOOST_TEST(!rig.agent.failure());
    BOOST_TEST(rig.agent.logs.has("realtime.stopped"));
    BOOST_TEST(rig.script.opens == 0);
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.heartbeats_sent.load() >= 1; }, 5s));
}

BOOST_AUTO_TEST_CASE(readyz_flips_when_heartbeats_fail)
{
    scripted_rig rig;
    tether::test::loopback_server health(
        rig.ioc, tether::app::health_handler({&rig.agent.metrics, [] { return std::uint64_t{1}; },
                                              [&] { return rig.agent.session.valid(); }, "node-1"}));
    net::http_client http(rig.ioc.get_executor(), nullptr);
    const auto get = [&](const std::string& path) {
        net::http::request req;
        req.target = path;
        auto r = tether::test::run_for(rig.ioc, http.request(health.base().with_path(path), req, 5s));
        BOOST_TEST_REQUIRE(r.has_value());
        return *r;
    };
    BOOST_TEST(get("/readyz").status == 503u);  // nothing sent yet
    rig.agent.start_heartbeats(5s);
    BOOST_TEST_REQUIRE(poll_until(
        rig.ioc, [&] { return rig.agent.metrics.heartbeats_sent.load() == 1; }, 5s));
    BOOST_TEST(get("/readyz").status == 200u);
    rig.script.heartbeat_code = "unavailable";
    // Two intervals (10 s) after the last success, with beats failing.
    BOOST_TEST(poll_until(
        rig.ioc, [&] { return get("/readyz").status == 503u; }, 15s));
    BOOST_TEST(rig.agent.metrics.heartbeats_failed.load() >= 1);
    const auto metrics = get("/metrics").body;
    BOOST_TEST(tether::test::contains(metrics, "tether_heartbeat_failures_total{reason=\"unavailable\"}"));
    BOOST_TEST(tether::test::contains(metrics, "tether_dispatch_queue_depth 0"));
    BOOST_TEST(get("/livez").status == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
