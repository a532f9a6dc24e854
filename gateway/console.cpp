// The web console at /ui/: its embedded files, and the login that trades the
// admin token, once, for a console session in a cookie. Every console call
// after that is an ordinary AdminService RPC or the admin event stream,
// authorized by the cookie (and, when it changes state, the CSRF token).
#include "auth/keys.hpp"
#include "base/random_bytes.hpp"
#include "gateway/console_assets.hpp"
#include "gateway/service.hpp"
#include "net/cookie.hpp"
#include "net/request_params.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace tether::gateway {

namespace pj = net::protojson;
namespace json = boost::json;
using net::connect::code;

namespace {

constexpr std::string_view cookie_name = "tether_console";

// Scripts and styles from this origin only, nothing inline, no framing, no
// forms or base URLs elsewhere.
constexpr std::string_view csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

void harden(net::http::response& r)
{
    r.headers.set("Content-Security-Policy", csp);
    r.headers.set("X-Frame-Options", "DENY");
    r.headers.set("Referrer-Policy", "no-referrer");
    r.headers.set("X-Content-Type-Options", "nosniff");
    r.headers.set("Cross-Origin-Opener-Policy", "same-origin");
}

/// Every answer of the login API: never cached, hardened like the pages.
net::reply private_reply(net::reply r)
{
    r.head.headers.set("Cache-Control", "no-store");
    harden(r.head);
    return r;
}

net::reply console_error(unsigned status, code c, std::string message)
{
    return private_reply(net::connect::error_reply(status, c, std::move(message)));
}

/// The session cookie: `value` empty and `max_age_s` 0 end it.
std::string session_cookie(std::string_view value, std::int64_t max_age_s, bool secure)
{
    return std::string(cookie_name) + "=" + std::string(value) +
           "; Path=/; Max-Age=" + std::to_string(max_age_s) + "; HttpOnly; SameSite=Strict" +
           (secure ? "; Secure" : "");
}

/// The console cookie's value, if the request carries exactly one.
std::optional<std::string> console_cookie(const net::http::request& req)
{
    return net::http::cookie_value(req.headers, cookie_name, 128);
}

/// Derived from the session secret, so it needs no storage of its own and
/// is worthless without the cookie it goes with.
std::string csrf_of(std::string_view session_token)
{
    return auth::sha256_hex("tether console csrf\n" + std::string(session_token));
}

std::string session_hash(std::string_view session_token)
{
    return auth::sha256_hex("tether console session\n" + std::string(session_token));
}

}  // namespace

awaitable<std::optional<service::console_grant>> service::console_authorized(const net::http::request& req,
                                                                             bool changes_state)
{
    std::optional<console_grant> out;
    const auto token = console_cookie(req);
    if (!token) co_return out;
    if (changes_state) {
        const auto sent = req.headers.get("X-CSRF-Token");
        if (!sent || !constant_time_equal(*sent, csrf_of(*token))) co_return out;
    }
    auto hash = session_hash(*token);
    const auto found =
        co_await db_.find_credential(credential_kind::console_session, hash, sessions_.now_ms());
    // Opened with a token since replaced: ended, as if logged out.
    if (found && found->org_id == admin_fingerprint())
        out = console_grant{std::move(hash), found->expires_ms};
    co_return out;
}

awaitable<bool> service::console_session_live(std::string session_hash)
{
    try {
        const auto found = co_await db_.find_credential(credential_kind::console_session,
                                                        std::move(session_hash), sessions_.now_ms());
        co_return found && found->org_id == admin_fingerprint();
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) throw;
        storage_failed(e);
    } catch (const std::exception& e) {
        storage_failed(e);
    }
    // The store is out: the stream keeps going (it carries nothing new
    // meanwhile) rather than sending every console into a reconnect storm.
    co_return true;
}

awaitable<net::reply> service::console(const net::http::request& req, const net::peer_info& peer,
                                       std::string_view path)
{
    if (path == "/ui") {
        net::reply r;
        r.head.status = 308;
        r.head.headers.set("Location", "/ui/");
        harden(r.head);
        co_return r;
    }
    const auto name = path.substr(4);  // after "/ui/"
    if (name == "api/login" || name == "api/logout" || name == "api/session") {
        auto r = co_await console_api(req, peer, name.substr(4));
        co_return r;
    }
    if (req.method != "GET" && req.method != "HEAD")
        co_return console_error(405, code::unimplemented, "the console's files are read with GET");
    const auto file = name.empty() ? std::string_view("index.html") : name;
    for (const auto& a : console_assets()) {
        if (a.path != file) continue;
        net::reply r;
        harden(r.head);
        r.head.headers.set("ETag", a.etag);
        // Revalidated every time: a new gateway build serves its own files.
        r.head.headers.set("Cache-Control", "no-cache");
        r.head.headers.set("Content-Type", a.content_type);
        // A list, W/ or * as well: browsers and caches send all three.
        if (const auto inm = req.headers.get("If-None-Match"); inm && net::if_none_match(*inm, a.etag)) {
            r.head.status = 304;
            co_return r;
        }
        r.head.body = std::string(a.body);
        co_return r;
    }
    co_return console_error(404, code::not_found, "no such console page");
}

awaitable<net::reply> service::console_api(const net::http::request& req, const net::peer_info& peer,
                                           std::string_view what)
{
    if (what == "session") {
        // Lets a reloaded page find its session (and CSRF token) again.
        if (req.method != "GET") co_return console_error(405, code::unimplemented, "use GET");
        const auto grant = co_await console_authorized(req, false);
        // 200 either way: a page that is not logged in yet is not an error.
        json::object out{{"loggedIn", grant.has_value()}};
        if (grant) out["csrfToken"] = csrf_of(*console_cookie(req));  // a grant had the cookie
        co_return private_reply(net::json_reply(json::serialize(out)));
    }
    if (req.method != "POST") co_return console_error(405, code::unimplemented, "use POST");
    // A cross-site form cannot send JSON without asking first (CORS), and
    // this origin answers no such question.
    const auto ct = req.headers.get("Content-Type").value_or("");
    if (!net::http::iequals(ct.substr(0, ct.find(';')), "application/json"))
        co_return console_error(415, code::invalid_argument, "Content-Type must be application/json");

    if (what == "logout") {
        const auto grant = co_await console_authorized(req, true);
        if (!grant) co_return console_error(401, code::unauthenticated, "not logged in");
        co_await db_.take_credential(credential_kind::console_session, grant->session_hash,
                                     sessions_.now_ms());
        auto r = private_reply(net::json_reply("{}"));
        r.head.headers.set("Set-Cookie", session_cookie("", 0, opts_.console_secure_cookie));
        log_.info("gateway.console_logout", {{"address", peer.address}});
        co_return r;
    }

    // login: the admin token, in the body only (never a URL), checked like
    // any login, and failures counted against the address.
    if (auth_throttled(peer.address)) {
        ++counters_.auth_throttled;
        co_return console_error(429, code::resource_exhausted,
                                "too many failed attempts from this address; retry later");
    }
    auto body = pj::parse_object(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
    if (!body) co_return console_error(400, code::invalid_argument, body.error().message());
    auto presented = pj::get_string(*body, "adminToken");
    if (!presented) co_return console_error(400, code::invalid_argument, presented.error().message());
    if (!admin_token_is(*presented)) {
        auth_failed(peer.address, "ConsoleLogin", rpc_error{code::unauthenticated, "wrong admin token"});
        co_return console_error(401, code::unauthenticated, "wrong admin token");
    }
    const std::string token = random_token(32);
    const auto now = sessions_.now_ms();
    // org_id carries the token's fingerprint: a session ends when the token
    // it was opened with is replaced (on every replica, whichever saw it).
    credential_record rec{"console", admin_fingerprint(), now + opts_.console_session_ms, 0};
    const bool stored = co_await db_.put_credential_capped(
        credential_kind::console_session, session_hash(token), rec, opts_.console_sessions, now);
    if (!stored)
        co_return console_error(
            429, code::resource_exhausted,
            "at most " + std::to_string(opts_.console_sessions) +
                " console sessions at once: log out elsewhere, or wait for one to expire");
    auto r = private_reply(net::json_reply(json::serialize(
        json::object{{"csrfToken", csrf_of(token)}, {"expiresAt", detail::timestamp(rec.expires_ms)}})));
    r.head.headers.set("Set-Cookie",
                       session_cookie(token, opts_.console_session_ms / 1000, opts_.console_secure_cookie));
    log_.info("gateway.console_login",
              {{"address", peer.address}, {"expiresAt", detail::timestamp(rec.expires_ms)}});
    co_return r;
}

}  // namespace tether::gateway
