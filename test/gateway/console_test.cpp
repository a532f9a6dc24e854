// The web console's server side (issue 18): its embedded files and headers,
// the login that trades the admin token for a cookie session, CSRF, logout,
// expiry and caps. Compiled into gateway_test and postgres_test, so both
// backends keep console sessions. The browser itself is test/browser.
#include "support/gateway_fixture.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

using namespace std::chrono_literals;
using tether::test::gateway_fixture;
namespace json = boost::json;
namespace net = tether::net;

namespace {

struct answer {
    unsigned status = 0;
    net::http::fields headers;
    std::string body;
};

answer send(gateway_fixture& g, std::string method, std::string target, std::string body = {},
            std::initializer_list<std::pair<std::string, std::string>> headers = {})
{
    net::http::request req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    for (const auto& [k, v] : headers) req.headers.set(k, v);
    auto r = g.fetch(std::move(req));
    return {r.status, std::move(r.headers), std::move(r.body)};
}

struct console_login {
    std::string cookie;  ///< "tether_console=<value>", as a browser sends it back
    std::string csrf;
    std::string set_cookie;
};

console_login log_in(gateway_fixture& g, std::string_view admin_token = {})
{
    const auto token = admin_token.empty() ? g.admin.reveal() : admin_token;
    const auto a = send(g, "POST", "/ui/api/login", json::serialize(json::object{{"adminToken", token}}),
                        {{"Content-Type", "application/json"}});
    BOOST_TEST_REQUIRE(a.status == 200u, a.body);
    console_login out;
    out.set_cookie = std::string(a.headers.get("Set-Cookie").value_or(""));
    out.cookie = out.set_cookie.substr(0, out.set_cookie.find(';'));
    out.csrf = json::parse(a.body).at("csrfToken").as_string();
    return out;
}

answer list_nodes(gateway_fixture& g, const console_login& s, std::string_view csrf)
{
    return send(
        g, "POST", "/tether.v1.AdminService/ListNodes", "{}",
        {{"Content-Type", "application/json"}, {"Cookie", s.cookie}, {"X-CSRF-Token", std::string(csrf)}});
}

bool logged_in(gateway_fixture& g, const console_login& s)
{
    const auto a = send(g, "GET", "/ui/api/session", {}, {{"Cookie", s.cookie}});
    BOOST_TEST_REQUIRE(a.status == 200u);
    return json::parse(a.body).at("loggedIn").as_bool();
}

/// Whether `stream` ends (the server closes it) within `cap`.
bool ends_within(gateway_fixture& g, net::body_stream& stream, std::chrono::seconds cap)
{
    const auto deadline = std::chrono::steady_clock::now() + cap;
    while (std::chrono::steady_clock::now() < deadline) {
        auto chunk = tether::test::run_for(g.ioc, stream.read_some(2s));
        if (!chunk || chunk->empty()) return true;
    }
    return false;
}

/// /v1/admin/events with a cookie, as the console's EventSource opens it,
/// or with `Authorization: Bearer <admin token>` as the CLI does.
std::unique_ptr<net::body_stream> admin_stream(gateway_fixture& g, const std::string& cookie,
                                               std::string_view bearer = {})
{
    net::http::request req;
    req.target = "/v1/admin/events";
    if (!cookie.empty()) req.headers.set("Cookie", cookie);
    if (!bearer.empty()) req.headers.set("Authorization", "Bearer " + std::string(bearer));
    auto r = tether::test::run_for(g.ioc, g.http().open(g.server().base(), std::move(req), 5s));
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message());
    return std::move(*r);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(console_suite)

BOOST_AUTO_TEST_CASE(the_console_files_are_embedded_and_served_with_strict_headers)
{
    gateway_fixture g;
    const auto page = send(g, "GET", "/ui/");
    BOOST_TEST(page.status == 200u);
    BOOST_TEST(page.headers.get("Content-Type").value_or("").starts_with("text/html"));
    BOOST_TEST(page.body.find(R"(<script type="module" src="/ui/app.js">)") != std::string::npos);
    const auto csp = std::string(page.headers.get("Content-Security-Policy").value_or(""));
    BOOST_TEST(csp.find("script-src 'self'") != std::string::npos, csp);
    BOOST_TEST(csp.find("unsafe-inline") == std::string::npos, csp);
    BOOST_TEST(csp.find("frame-ancestors 'none'") != std::string::npos, csp);
    BOOST_TEST(page.headers.get("X-Frame-Options").value_or("") == "DENY");
    BOOST_TEST(page.headers.get("Referrer-Policy").value_or("") == "no-referrer");
    BOOST_TEST(page.headers.get("X-Content-Type-Options").value_or("") == "nosniff");
    // No inline script in the page itself: the CSP would refuse it.
    BOOST_TEST(page.body.find("<script>") == std::string::npos);

    const auto js = send(g, "GET", "/ui/app.js");
    BOOST_TEST(js.status == 200u);
    BOOST_TEST(js.headers.get("Content-Type").value_or("").starts_with("text/javascript"));
    const auto etag = std::string(js.headers.get("ETag").value_or(""));
    BOOST_TEST_REQUIRE(etag.size() > 2u);
    const auto again = send(g, "GET", "/ui/app.js", {}, {{"If-None-Match", etag}});
    BOOST_TEST(again.status == 304u);
    BOOST_TEST(again.body.empty());
    BOOST_TEST(send(g, "GET", "/ui/app.js", {}, {{"If-None-Match", "\"older\", W/" + etag}}).status == 304u);
    BOOST_TEST(send(g, "GET", "/ui/app.js", {}, {{"If-None-Match", "*"}}).status == 304u);
    const auto stale = send(g, "GET", "/ui/app.js", {}, {{"If-None-Match", "\"older\""}});
    BOOST_TEST(stale.status == 200u);
    BOOST_TEST(!stale.body.empty());
    BOOST_TEST(
        send(g, "GET", "/ui/style.css").headers.get("Content-Type").value_or("").starts_with("text/css"));

    const auto bare = send(g, "GET", "/ui");
    BOOST_TEST(bare.status == 308u);
    BOOST_TEST(bare.headers.get("Location").value_or("") == "/ui/");
    BOOST_TEST(send(g, "GET", "/ui/../admin.token").status == 404u);
    BOOST_TEST(send(g, "GET", "/ui/nothing.js").status == 404u);
    BOOST_TEST(send(g, "POST", "/ui/app.js", "{}").status == 405u);
    // Not logged in is an answer, not an error.
    const auto none = send(g, "GET", "/ui/api/session");
    BOOST_TEST(none.status == 200u);
    BOOST_TEST(json::parse(none.body).at("loggedIn").as_bool() == false);
}

BOOST_AUTO_TEST_CASE(login_trades_the_admin_token_for_a_hashed_cookie_session_with_csrf)
{
    gateway_fixture g;
    g.enroll("acme", "a");
    const std::initializer_list<std::pair<std::string, std::string>> as_json = {
        {"Content-Type", "application/json"}};

    const auto wrong = send(g, "POST", "/ui/api/login", R"({"adminToken":"guess"})", as_json);
    BOOST_TEST(wrong.status == 401u);
    BOOST_TEST(!wrong.headers.get("Set-Cookie"));
    // A cross-site form can only send form or text bodies: refused before
    // the token is even looked at.
    const auto form = send(g, "POST", "/ui/api/login", "adminToken=" + std::string(g.admin.reveal()),
                           {{"Content-Type", "application/x-www-form-urlencoded"}});
    BOOST_TEST(form.status == 415u);
    BOOST_TEST(send(g, "POST", "/ui/api/login", "[1]", as_json).status == 400u);
    BOOST_TEST(send(g, "POST", "/ui/api/login", R"({"adminToken":7})", as_json).status == 400u);
    BOOST_TEST(send(g, "GET", "/ui/api/login").status == 405u);

    const auto s = log_in(g);
    BOOST_TEST(s.set_cookie.find("HttpOnly") != std::string::npos, s.set_cookie);
    BOOST_TEST(s.set_cookie.find("SameSite=Strict") != std::string::npos, s.set_cookie);
    BOOST_TEST(s.set_cookie.find("Path=/") != std::string::npos, s.set_cookie);
    BOOST_TEST(s.set_cookie.find("Max-Age=") != std::string::npos, s.set_cookie);
    BOOST_TEST(s.set_cookie.find("Secure") == std::string::npos, "plain HTTP: no Secure");
    const auto value = s.cookie.substr(s.cookie.find('=') + 1);
    BOOST_TEST_REQUIRE(value.size() >= 32u);
    BOOST_TEST(value != std::string(g.admin.reveal()));
    // Stored hashed: neither the cookie nor the admin token is at rest, and
    // the token is in no log line.
    const auto at_rest = g.stored_bytes();
    BOOST_TEST(at_rest.find(value) == std::string::npos);
    BOOST_TEST(at_rest.find(s.csrf) == std::string::npos);
    BOOST_TEST(g.logs.all().find(g.admin.reveal()) == std::string::npos);
    BOOST_TEST(g.logs.all().find(value) == std::string::npos);
    BOOST_TEST(g.logs.has("gateway.console_login"));

    // The cookie with its CSRF token is an admin; without it, or with
    // another, a state-changing call is not.
    BOOST_TEST(list_nodes(g, s, s.csrf).status == 200u);
    BOOST_TEST(list_nodes(g, s, "").status == 401u);
    BOOST_TEST(list_nodes(g, s, s.csrf.substr(1) + "0").status == 401u);
    const auto forged = send(g, "POST", "/tether.v1.AdminService/ListNodes", "{}",
                             {{"Content-Type", "application/json"},
                              {"Cookie", "tether_console=" + std::string(64, 'a')},
                              {"X-CSRF-Token", s.csrf}});
    BOOST_TEST(forged.status == 401u);
    // Two console cookies: trust neither.
    const auto doubled = send(g, "POST", "/tether.v1.AdminService/ListNodes", "{}",
                              {{"Content-Type", "application/json"},
                               {"Cookie", s.cookie + "; " + s.cookie},
                               {"X-CSRF-Token", s.csrf}});
    BOOST_TEST(doubled.status == 401u);
    BOOST_TEST(logged_in(g, s));
    const auto again = send(g, "GET", "/ui/api/session", {}, {{"Cookie", s.cookie}});
    BOOST_TEST(json::parse(again.body).at("csrfToken").as_string() == s.csrf);

    // The admin event stream takes the cookie (EventSource cannot send a header).
    BOOST_TEST(admin_stream(g, s.cookie)->head().status == 200u);
    BOOST_TEST(admin_stream(g, "tether_console=" + std::string(64, 'b'))->head().status == 401u);
}

BOOST_AUTO_TEST_CASE(logout_and_expiry_end_the_session_and_its_open_stream)
{
    tether::gateway::gateway_options opts;
    opts.idle_comment = 200ms;  // the stream checks its session on each idle wake
    gateway_fixture g(opts);
    const auto s = log_in(g);
    const auto stream = admin_stream(g, s.cookie);
    BOOST_TEST_REQUIRE(stream->head().status == 200u);

    // Logout needs the CSRF token too: a cross-site page cannot log you out.
    BOOST_TEST(
        send(g, "POST", "/ui/api/logout", "{}", {{"Content-Type", "application/json"}, {"Cookie", s.cookie}})
            .status == 401u);
    BOOST_TEST(logged_in(g, s));
    const auto out =
        send(g, "POST", "/ui/api/logout", "{}",
             {{"Content-Type", "application/json"}, {"Cookie", s.cookie}, {"X-CSRF-Token", s.csrf}});
    BOOST_TEST(out.status == 200u);
    BOOST_TEST(out.headers.get("Set-Cookie").value_or("").find("Max-Age=0") != std::string_view::npos);
    BOOST_TEST(!logged_in(g, s));
    BOOST_TEST(list_nodes(g, s, s.csrf).status == 401u);

    // The stream opened with that cookie ends at its next idle wake.
    bool ended = false;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!ended && std::chrono::steady_clock::now() < deadline) {
        auto chunk = tether::test::run_for(g.ioc, stream->read_some(2s));
        ended = !chunk || chunk->empty();
    }
    BOOST_TEST(ended, "the logged-out console's stream is still open");

    // A session ends on its own after its lifetime.
    const auto t = log_in(g);
    BOOST_TEST(list_nodes(g, t, t.csrf).status == 200u);
    g.now += tether::gateway::gateway_options{}.console_session_ms + 1;
    BOOST_TEST(list_nodes(g, t, t.csrf).status == 401u);
    BOOST_TEST(!logged_in(g, t));
}

BOOST_AUTO_TEST_CASE(a_replaced_admin_token_ends_what_the_old_one_opened)
{
    // The token leaked, and its file was rotated: the old one must stop
    // working at once, and so must the console sessions and admin streams
    // it opened, while the new one works.
    tether::gateway::gateway_options opts;
    opts.idle_comment = 200ms;
    gateway_fixture g(opts);
    const std::string old_token(g.admin.reveal());
    const auto s = log_in(g);
    const auto by_cookie = admin_stream(g, s.cookie);
    const auto by_token = admin_stream(g, {}, old_token);
    BOOST_TEST_REQUIRE(by_cookie->head().status == 200u);
    BOOST_TEST_REQUIRE(by_token->head().status == 200u);
    const auto rpc = [&](std::string_view token) {
        return send(g, "POST", "/tether.v1.AdminService/ListNodes", "{}",
                    {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + std::string(token)}})
            .status;
    };
    BOOST_TEST(rpc(old_token) == 200u);

    const std::string new_token = "rotated-admin-token-0123456789abcdef";
    BOOST_TEST(!g.service().replace_admin_token(tether::secret(old_token)), "the same token is no change");
    BOOST_TEST(g.service().replace_admin_token(tether::secret(new_token)));
    BOOST_TEST(rpc(old_token) == 401u);
    BOOST_TEST(rpc(new_token) == 200u);
    BOOST_TEST(!logged_in(g, s), "the console session opened with the old token");
    BOOST_TEST(list_nodes(g, s, s.csrf).status == 401u);
    BOOST_TEST(ends_within(g, *by_token, 5s), "the stream opened with the old token is still open");
    BOOST_TEST(ends_within(g, *by_cookie, 5s), "the old console session's stream is still open");
    BOOST_TEST(admin_stream(g, {}, old_token)->head().status == 401u);

    // The new token logs in, and its session and stream carry on.
    BOOST_TEST(send(g, "POST", "/ui/api/login", json::serialize(json::object{{"adminToken", old_token}}),
                    {{"Content-Type", "application/json"}})
                   .status == 401u);
    const auto t = log_in(g, new_token);
    BOOST_TEST(list_nodes(g, t, t.csrf).status == 200u);
    const auto fresh = admin_stream(g, {}, new_token);
    BOOST_TEST_REQUIRE(fresh->head().status == 200u);
    BOOST_TEST(!ends_within(g, *fresh, 1s));
}

BOOST_AUTO_TEST_CASE(console_sessions_are_capped_and_failed_logins_throttled)
{
    tether::gateway::gateway_options opts;
    opts.console_sessions = 2;
    opts.console_secure_cookie = true;
    gateway_fixture g(opts);
    const auto a = log_in(g);
    BOOST_TEST(a.set_cookie.find("; Secure") != std::string::npos, a.set_cookie);
    log_in(g);
    const auto third = send(g, "POST", "/ui/api/login",
                            json::serialize(json::object{{"adminToken", std::string(g.admin.reveal())}}),
                            {{"Content-Type", "application/json"}});
    BOOST_TEST(third.status == 429u);
    BOOST_TEST(third.body.find("at most 2 console sessions") != std::string::npos, third.body);
    // A logout frees its place.
    BOOST_TEST(send(g, "POST", "/ui/api/logout", "{}",
                    {{"Content-Type", "application/json"}, {"Cookie", a.cookie}, {"X-CSRF-Token", a.csrf}})
                   .status == 200u);
    log_in(g);

    // Guessing the token is throttled per address like any login.
    const auto limit = opts.auth_failures_per_window;
    int refused = 0, throttled = 0;
    for (std::size_t i = 0; i < limit + 3; ++i) {
        const auto r = send(g, "POST", "/ui/api/login", R"({"adminToken":"guess"})",
                            {{"Content-Type", "application/json"}});
        refused += r.status == 401u;
        throttled += r.status == 429u;
    }
    BOOST_TEST(refused == static_cast<int>(limit));
    BOOST_TEST(throttled == 3);
}

BOOST_AUTO_TEST_CASE(a_storage_outage_answers_unavailable_not_logged_out)
{
    gateway_fixture g;
    const auto s = log_in(g);
    g.set_storage_down(true);
    // The console must not send its operator to the login page because the
    // database blinked: 503, and the session is there afterwards.
    BOOST_TEST(list_nodes(g, s, s.csrf).status == 503u);
    BOOST_TEST(send(g, "GET", "/ui/api/session", {}, {{"Cookie", s.cookie}}).status == 503u);
    BOOST_TEST(admin_stream(g, s.cookie)->head().status == 503u);
    g.set_storage_down(false);
    BOOST_TEST(list_nodes(g, s, s.csrf).status == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
