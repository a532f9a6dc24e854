#include "gateway/service.hpp"

#include "auth/keys.hpp"
#include "net/blocking_call.hpp"
#include "net/connect.hpp"
#include "net/protojson.hpp"
#include "net/random_bytes.hpp"
#include "net/utf8.hpp"
#include "settings/runtime_config.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>

namespace tether::gateway {

namespace pj = net::protojson;
namespace json = boost::json;

namespace {

rpc_error fail(std::string code, std::string message)
{
    return {std::move(code), std::move(message)};
}

rpc_error invalid(const pj::field_error& e)
{
    return fail("invalid_argument", e.message());
}

std::string ts(std::int64_t ms)
{
    return pj::format_timestamp(pj::sys_time{std::chrono::milliseconds{ms}});
}

std::optional<std::string> bearer(const net::http::request& req)
{
    const auto h = req.headers.get("Authorization");
    if (!h || h->size() < 7 || !net::http::iequals(h->substr(0, 7), "Bearer ")) return std::nullopt;
    return std::string(h->substr(7));
}

/// `token` from the query string, for clients that cannot set headers.
std::optional<std::string> query_token(std::string_view target)
{
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto part = rest.substr(0, amp);
        if (part.starts_with("token=")) return std::string(part.substr(6));
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

/// The orgId an admin request names: required, 1 to 128 of [A-Za-z0-9._-].
pj::result<std::string> get_org_id(const json::object& in)
{
    auto org = pj::get_string(in, "orgId");
    if (!org) return org;
    const bool ok = !org->empty() && org->size() <= 128 && std::all_of(org->begin(), org->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
    if (!ok) return pj::field_error("orgId", "1 to 128 of A-Z a-z 0-9 . _ -");
    return org;
}

std::int32_t interval_of(const std::optional<config_record>& cfg, std::int32_t fallback)
{
    if (!cfg) return fallback;
    boost::system::error_code ec;
    const auto v = json::parse(cfg->document, ec);
    if (ec || !v.is_object()) return fallback;
    const auto* i = v.get_object().if_contains("heartbeatIntervalSeconds");
    if (!i || !i->is_number()) return fallback;
    const auto n = i->to_number<double>();
    return static_cast<std::int32_t>(std::clamp(n, 5.0, 3600.0));
}

}  // namespace

service::service(storage& db, asio::any_io_executor db_executor, secret admin_token, gateway_options opts,
                 const log::logger& log, session_registry::clock_fn now)
    : db_(db),
      db_exec_(std::move(db_executor)),
      admin_token_(std::move(admin_token)),
      opts_(opts),
      log_(log),
      sessions_(std::move(now), opts.sessions),
      hub_(opts.hub)
{
}

// Callers name the query (`std::function<R(storage&)> q = ...; co_await db(std::move(q));`):
// a lambda converted to std::function inside the co_await expression is a
// temporary GCC 12 destroys twice.
template <class R>
awaitable<R> service::db(std::function<R(storage&)> fn)
{
    std::function<R()> bound = [this, fn = std::move(fn)] {
        return fn(db_);
    };
    R out = co_await net::blocking_call(db_exec_, std::move(bound));
    co_return out;
}

event_record service::append_and_publish(storage& st, const std::string& org, const std::string& type,
                                         const std::string& data)
{
    event_record e{st.append_event(org, type, data, opts_.history), org, type, data};
    hub_.publish(e);
    return e;
}

awaitable<net::reply> service::handle(net::http::request req, net::peer_info peer)
{
    const std::string_view target = req.target;
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/v1/events" || path == "/v1/admin/events") {
        if (req.method != "GET")
            co_return net::error_reply(405, "unimplemented", "use GET for event streams");
        auto r = co_await stream(req, peer, path == "/v1/admin/events");
        co_return r;
    }
    for (const std::string_view svc :
         {std::string_view("tether.v1.NodeService"), std::string_view("tether.v1.AdminService")}) {
        const std::string prefix = "/" + std::string(svc) + "/";
        if (path.starts_with(prefix)) {
            auto r = co_await unary(req, peer, svc, path.substr(prefix.size()));
            co_return r;
        }
    }
    if (path == "/metrics" && req.method == "GET") co_return metrics(req);
    co_return net::error_reply(404, "unimplemented", "no such endpoint: " + std::string(path));
}

void service::count_refusal(unsigned status) noexcept
{
    switch (status) {
        case 0:
            ++counters_.connections_refused;
            break;
        case 429:
            ++counters_.refused_429;
            break;
        case 431:
            ++counters_.refused_431;
            break;
        default:
            ++counters_.refused_400;
            break;
    }
}

net::reply service::metrics(const net::http::request& req) const
{
    // The operator's scraper brings the admin token: the counters say where
    // an attack comes from and how it goes.
    const auto token = bearer(req);
    if (!token || !constant_time_equal(*token, admin_token_.reveal()))
        return net::error_reply(401, "unauthenticated", "missing or wrong admin token");
    std::string out;
    const auto family = [&out](std::string_view name, std::string_view type, std::string_view help) {
        out.append("# HELP ").append(name).append(" ").append(help).append("\n");
        out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    };
    const auto sample = [&out](std::string_view name, std::uint64_t v, std::string_view labels = {}) {
        out.append(name).append(labels).append(" ").append(std::to_string(v)).append("\n");
    };
    family("tether_gateway_enroll_failures_total", "counter", "Enroll calls refused");
    sample("tether_gateway_enroll_failures_total", counters_.enroll_failures.load());
    family("tether_gateway_login_failures_total", "counter", "BeginAuth and CompleteAuth calls refused");
    sample("tether_gateway_login_failures_total", counters_.login_failures.load());
    family("tether_gateway_auth_throttled_total", "counter",
           "login or enrollment calls refused unheard after repeated failures from the address");
    sample("tether_gateway_auth_throttled_total", counters_.auth_throttled.load());
    family("tether_gateway_requests_refused_total", "counter",
           "requests refused before any handler, by status");
    sample("tether_gateway_requests_refused_total", counters_.refused_400.load(), "{status=\"400\"}");
    sample("tether_gateway_requests_refused_total", counters_.refused_429.load(), "{status=\"429\"}");
    sample("tether_gateway_requests_refused_total", counters_.refused_431.load(), "{status=\"431\"}");
    family("tether_gateway_connections_refused_total", "counter",
           "connections closed over the per-address limit");
    sample("tether_gateway_connections_refused_total", counters_.connections_refused.load());
    family("tether_gateway_streams", "gauge", "open event streams");
    sample("tether_gateway_streams", hub_.connections());
    family("tether_gateway_stream_evictions_total", "counter", "streams evicted for not keeping up");
    sample("tether_gateway_stream_evictions_total", hub_.evictions());
    net::reply r;
    r.head.headers.set("Content-Type", "text/plain; version=0.0.4");
    r.head.body = std::move(out);
    return r;
}

bool service::auth_throttled(const std::string& ip)
{
    const auto now = sessions_.now_ms();
    const std::lock_guard lock(failures_m_);
    const auto it = failures_.find(ip);
    if (it == failures_.end()) return false;
    if (now - it->second.window_start >= opts_.auth_failure_window_ms) {
        failures_.erase(it);
        return false;
    }
    return it->second.count >= opts_.auth_failures_per_window;
}

void service::auth_failed(const std::string& ip, std::string_view method, const rpc_error& e)
{
    if (method == "Enroll")
        ++counters_.enroll_failures;
    else
        ++counters_.login_failures;
    const auto now = sessions_.now_ms();
    {
        const std::lock_guard lock(failures_m_);
        // Bounded: when full, windows that ended go first, then everything.
        if (failures_.size() >= 100'000) {
            std::erase_if(failures_, [&](const auto& kv) {
                return now - kv.second.window_start >= opts_.auth_failure_window_ms;
            });
            if (failures_.size() >= 100'000) failures_.clear();
        }
        auto& f = failures_[ip];
        if (f.count == 0 || now - f.window_start >= opts_.auth_failure_window_ms) f = {now, 0};
        ++f.count;
    }
    if (std::uint64_t left_out = 0; auth_log_.allow(left_out))
        log_.warn("gateway.auth_failed",
                  {{"peer", ip}, {"method", method}, {"code", e.code}, {"suppressed", left_out}});
}

awaitable<net::reply> service::unary(const net::http::request& req, const net::peer_info& peer,
                                     std::string_view service_name, std::string_view method)
{
    if (req.method != "POST") {
        auto r = net::error_reply(405, "unimplemented", "Connect unary calls use POST");
        r.head.headers.set("Allow", "POST");
        co_return r;
    }
    // The Connect protocol's request headers, answered as it says.
    if (const auto enc = req.headers.get("Content-Encoding"); enc && !net::http::iequals(*enc, "identity")) {
        auto r = net::error_reply(
            net::connect::http_status(net::connect::code::unimplemented), "unimplemented",
            "Content-Encoding " + std::string(*enc).substr(0, 64) + " is not supported: send identity");
        r.head.headers.set("Accept-Encoding", "identity");
        co_return r;
    }
    if (const auto v = req.headers.get(net::connect::protocol_version_header); v && *v != "1")
        co_return net::error_reply(
            400, "invalid_argument",
            "Connect-Protocol-Version must be 1, not " + std::string(*v).substr(0, 64));
    if (const auto t = req.headers.get(net::connect::timeout_header);
        t && (t->empty() || t->size() > 10 ||
              !std::all_of(t->begin(), t->end(), [](char c) { return c >= '0' && c <= '9'; })))
        co_return net::error_reply(400, "invalid_argument", "Connect-Timeout-Ms must be 1 to 10 digits");
    const auto ct = req.headers.get("Content-Type").value_or("");
    if (!net::http::iequals(ct.substr(0, ct.find(';')), "application/json"))
        co_return net::error_reply(415, "invalid_argument", "Content-Type must be application/json");
    auto body = pj::parse_object(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
    if (!body) co_return net::error_reply(400, "invalid_argument", body.error().message());
    const json::object& in = *body;
    const bool admin = service_name == "tether.v1.AdminService";

    rpc_result out = fail("unimplemented", "");
    bool known = true;
    if (admin) {
        const auto token = bearer(req);
        if (!token || !constant_time_equal(*token, admin_token_.reveal())) {
            co_return net::error_reply(401, "unauthenticated", "missing or wrong admin token");
        }
        if (method == "CreateEnrollmentCode")
            out = co_await create_enrollment_code(in);
        else if (method == "PublishConfig")
            out = co_await publish_config(in);
        else if (method == "ListNodes")
            out = co_await list_nodes(in);
        else if (method == "RevokeNode")
            out = co_await revoke_node(in);
        else
            known = false;
    } else if (method == "Enroll" || method == "BeginAuth" || method == "CompleteAuth") {
        if (auth_throttled(peer.address)) {
            ++counters_.auth_throttled;
            co_return net::error_reply(429, "resource_exhausted",
                                       "too many failed attempts from this address; retry later");
        }
        if (method == "Enroll")
            out = co_await enroll(in);
        else if (method == "BeginAuth")
            out = co_await begin_auth(in);
        else
            out = co_await complete_auth(in);
        if (!out) auth_failed(peer.address, method, out.error());
    } else if (method == "Heartbeat" || method == "GetRuntimeConfig" || method == "CreateStreamToken") {
        const auto token = bearer(req);
        const auto s = token ? sessions_.find_session(secret(*token)) : std::nullopt;
        if (!s)
            co_return net::error_reply(401, "unauthenticated", "missing, expired or unknown session token");
        if (method == "Heartbeat")
            out = co_await heartbeat(in, *s);
        else if (method == "GetRuntimeConfig")
            out = co_await get_runtime_config(*s);
        else
            out = co_await create_stream_token(*s);
    } else {
        known = false;
    }
    if (!known)
        co_return net::error_reply(404, "unimplemented",
                                   "unknown method " + std::string(service_name) + "/" + std::string(method));
    if (!out) {
        const auto code = net::connect::parse_code(out.error().code).value_or(net::connect::code::unknown);
        co_return net::error_reply(net::connect::http_status(code), out.error().code, out.error().message);
    }
    co_return net::json_reply(json::serialize(*out));
}

// ---- NodeService ----------------------------------------------------------

namespace {

/// Names are shown to operators in terminals and tables: no control
/// characters (C0, DEL, C1), and valid UTF-8.
std::optional<std::string> node_name_problem(std::string_view name)
{
    if (net::utf8_replace_invalid(name) != name) return "must be valid UTF-8";
    if (net::has_control_characters(name)) return "must not contain control characters";
    return std::nullopt;
}

}  // namespace

awaitable<rpc_result> service::enroll(const json::object& in)
{
    auto code = pj::get_string(in, "enrollmentCode");
    if (!code) co_return invalid(code.error());
    auto name = pj::get_string(in, "nodeName");
    if (!name) co_return invalid(name.error());
    auto key = pj::get_bytes(in, "publicKey");
    if (!key) co_return invalid(key.error());
    auto caps = pj::get_strings(in, "capabilities");
    if (!caps) co_return invalid(caps.error());
    if (key->size() != 32) co_return fail("invalid_argument", "publicKey: must be a raw 32-byte Ed25519 key");
    if (*key == std::string(32, '\0'))
        co_return fail("invalid_argument", "publicKey: the all-zero key is not a key");
    if (name->empty() || name->size() > 253)
        co_return fail("invalid_argument", "nodeName: must be 1 to 253 bytes");
    if (const auto why = node_name_problem(*name)) co_return fail("invalid_argument", "nodeName: " + *why);

    node_record n;
    n.node_id = "node-" + net::random_token(12);
    n.node_name = *name;
    n.capabilities = *caps;
    n.public_key = *key;
    const std::string api_key = net::random_token(32);
    n.api_key_hash = auth::sha256_hex(api_key);
    n.created_ms = sessions_.now_ms();
    const std::string code_hash = auth::sha256_hex(*code);
    const auto now = sessions_.now_ms();
    struct enrolled {
        std::optional<std::string> org;
        bool key_taken = false;
    };
    std::function<enrolled(storage&)> query1 = [&](storage& st) -> enrolled {
        enrolled out;
        out.org = st.consume_enrollment_code(code_hash, now);
        if (!out.org) return out;
        if (st.public_key_taken(n.public_key)) {
            // The code stays usable: the node only needs a key of its own.
            st.release_enrollment_code(code_hash);
            out.key_taken = true;
            return out;
        }
        n.org_id = *out.org;
        st.insert_node(n);
        return out;
    };
    const auto result = co_await db(std::move(query1));
    const auto& org = result.org;
    if (!org) co_return fail("permission_denied", "enrollment code unknown, expired or already used");
    if (result.key_taken)
        co_return fail("already_exists",
                       "publicKey: another node is enrolled with this key; generate a new one");
    log_.info("gateway.enrolled", {{"node", n.node_id}, {"org", *org}});
    json::object out{{"nodeId", n.node_id}, {"orgId", *org}, {"apiKey", api_key}};
    co_return out;
}

awaitable<rpc_result> service::begin_auth(const json::object& in)
{
    auto node_id = pj::get_string(in, "nodeId");
    if (!node_id) co_return invalid(node_id.error());
    auto api_key = pj::get_string(in, "apiKey");
    if (!api_key) co_return invalid(api_key.error());
    const std::string id = *node_id;
    std::function<std::optional<storage::login_record>(storage&)> query2 = [id](storage& st) {
        return st.find_login(id);
    };
    auto node = co_await db(std::move(query2));
    // One answer for unknown, revoked and mismatched: existence must not
    // leak, neither in the answer nor in its timing (the key is hashed and
    // compared whether or not there is a node).
    static const std::string no_node_hash(64, '0');
    const bool key_matches =
        constant_time_equal(auth::sha256_hex(*api_key), node ? node->api_key_hash : no_node_hash);
    if (!node || node->revoked || !key_matches)
        co_return fail("permission_denied", "node unknown, revoked, or api key mismatched");
    std::int64_t expires = 0;
    const auto challenge = sessions_.new_challenge(id, &expires);
    json::object out{{"challenge", pj::base64_encode(challenge)}, {"expiresAt", ts(expires)}};
    co_return out;
}

awaitable<rpc_result> service::complete_auth(const json::object& in)
{
    auto node_id = pj::get_string(in, "nodeId");
    if (!node_id) co_return invalid(node_id.error());
    auto challenge = pj::get_bytes(in, "challenge");
    if (!challenge) co_return invalid(challenge.error());
    auto signature = pj::get_bytes(in, "signature");
    if (!signature) co_return invalid(signature.error());
    if (!sessions_.take_challenge(*node_id, *challenge))
        co_return fail("unauthenticated", "challenge expired, already used, or not issued to this node");
    const std::string id = *node_id;
    std::function<std::optional<node_record>(storage&)> query3 = [id](storage& st) {
        return st.find_node(id);
    };
    auto node = co_await db(std::move(query3));
    if (!node || node->revoked)
        co_return fail("permission_denied", "node unknown, revoked, or api key mismatched");
    if (!auth::verify(node->public_key, auth::login_message(id, *challenge), *signature))
        co_return fail("unauthenticated", "signature does not verify with the enrolled key");
    const std::string org = node->org_id;
    std::function<std::optional<config_record>(storage&)> query4 = [org](storage& st) {
        return st.latest_config(org);
    };
    auto cfg = co_await db(std::move(query4));
    const auto session = sessions_.new_session(id, org);
    json::object out{{"sessionToken", std::string(session.token.reveal())},
                     {"expiresAt", ts(session.expires_ms)},
                     {"serverTime", ts(sessions_.now_ms())},
                     {"heartbeatIntervalSeconds", interval_of(cfg, opts_.heartbeat_interval_seconds)}};
    co_return out;
}

awaitable<rpc_result> service::heartbeat(const json::object& in, const session_info& s)
{
    for (const char* k : {"uptimeSeconds", "configUpdatedAt"})
        if (auto v = pj::get_int64(in, k); !v) co_return invalid(v.error());
    if (auto v = pj::get_string(in, "agentVersion"); !v) co_return invalid(v.error());
    if (!sessions_.allow_heartbeat(s.node_id))
        co_return fail("resource_exhausted", "more than 10 heartbeats per second from this node");
    const bool write = sessions_.should_write(s.node_id);
    const auto now = sessions_.now_ms();
    struct found {
        bool alive = false;
        std::optional<config_record> cfg;
    };
    const std::string id = s.node_id, org = s.org_id;
    std::function<found(storage&)> query5 = [=](storage& st) {
        found r;
        const auto n = st.find_node(id);
        r.alive = n && !n->revoked;
        if (!r.alive) return r;
        if (write) st.touch_node(id, now);  // at most once per 5 s per node
        r.cfg = st.latest_config(org);
        return r;
    };
    auto f = co_await db(std::move(query5));
    if (!f.alive) co_return fail("not_found", "this node was deleted or revoked; re-enroll it");
    json::object out{{"configUpdatedAt", std::to_string(f.cfg ? f.cfg->updated_at : 0)},
                     {"heartbeatIntervalSeconds", interval_of(f.cfg, 0)}};
    co_return out;
}

awaitable<bool> service::node_alive(const std::string& node_id)
{
    std::function<bool(storage&)> q = [node_id](storage& st) {
        const auto n = st.find_node(node_id);
        return n && !n->revoked;
    };
    const bool alive = co_await db(std::move(q));
    co_return alive;
}

awaitable<rpc_result> service::get_runtime_config(const session_info& s)
{
    if (!co_await node_alive(s.node_id))
        co_return fail("not_found", "this node was deleted or revoked; re-enroll it");
    const std::string org = s.org_id;
    std::function<std::optional<config_record>(storage&)> query6 = [org](storage& st) {
        return st.latest_config(org);
    };
    auto cfg = co_await db(std::move(query6));
    json::object out;
    out["configUpdatedAt"] = std::to_string(cfg ? cfg->updated_at : 0);
    if (cfg) {
        boost::system::error_code ec;
        auto v = json::parse(cfg->document, ec);
        out["config"] = (!ec && v.is_object()) ? std::move(v) : json::value(json::object{});
    } else {
        out["config"] = json::object{};
    }
    co_return out;
}

awaitable<rpc_result> service::create_stream_token(const session_info& s)
{
    if (!co_await node_alive(s.node_id))
        co_return fail("not_found", "this node was deleted or revoked; re-enroll it");
    auto t = sessions_.new_stream_token(s);
    if (!t) co_return fail("resource_exhausted", "at most 10 unexpired stream tokens per node");
    json::object out{{"token", std::string(t->token.reveal())}, {"expiresAt", ts(t->expires_ms)}};
    co_return out;
}

// ---- AdminService ---------------------------------------------------------

awaitable<rpc_result> service::create_enrollment_code(const json::object& in)
{
    auto org = get_org_id(in);
    if (!org) co_return invalid(org.error());
    auto ttl = pj::get_int32(in, "ttlSeconds");
    if (!ttl) co_return invalid(ttl.error());
    const std::int64_t seconds = *ttl == 0 ? 3600 : *ttl;
    if (seconds < 1 || seconds > 30LL * 24 * 3600)
        co_return fail("invalid_argument", "ttlSeconds: must be from 1 to 2592000 (30 days)");
    const std::string code = net::random_token(24);
    const std::int64_t expires = sessions_.now_ms() + seconds * 1000;
    const std::string hash = auth::sha256_hex(code), o = *org;
    std::function<int(storage&)> query7 = [=](storage& st) {
        st.add_enrollment_code(hash, o, expires);
        return 0;
    };
    co_await db(std::move(query7));
    json::object out{{"code", code}, {"expiresAt", ts(expires)}};
    co_return out;
}

awaitable<rpc_result> service::publish_config(const json::object& in)
{
    auto org = get_org_id(in);
    if (!org) co_return invalid(org.error());
    const auto* cfg = in.if_contains("config");
    if (!cfg || !cfg->is_object()) co_return fail("invalid_argument", "config: must be a JSON object");
    // Nodes reject an invalid document whole; telling the operator now beats
    // a fleet that silently keeps its old config.
    if (auto checked = settings::decode_config(*cfg, 1); !checked)
        co_return fail("invalid_argument", "config." + checked.error().message());
    const std::string doc = json::serialize(*cfg), o = *org;
    const auto now = sessions_.now_ms();
    std::function<std::int64_t(storage&)> query8 = [=, this](storage& st) {
        const auto v = st.publish_config(o, doc, now);
        json::object data{{"configUpdatedAt", v}};
        append_and_publish(st, o, "config-updated", json::serialize(data));
        return v;
    };
    auto at = co_await db(std::move(query8));
    log_.info("gateway.config_published", {{"org", o}, {"configUpdatedAt", at}, {"bytes", doc.size()}});
    json::object out{{"configUpdatedAt", std::to_string(at)}};
    co_return out;
}

awaitable<rpc_result> service::list_nodes(const json::object& in)
{
    auto org = pj::get_string(in, "orgId");
    if (!org) co_return invalid(org.error());
    if (!org->empty()) {  // empty: every org
        auto checked = get_org_id(in);
        if (!checked) co_return invalid(checked.error());
    }
    auto size = pj::get_int32(in, "pageSize");
    if (!size) co_return invalid(size.error());
    if (*size < 0) co_return fail("invalid_argument", "pageSize: must not be negative");
    const std::size_t limit = *size == 0 ? 100 : std::min<std::size_t>(static_cast<std::size_t>(*size), 1000);
    auto token = pj::get_string(in, "pageToken");
    if (!token) co_return invalid(token.error());
    std::string after;
    if (!token->empty()) {
        auto decoded = pj::base64_decode(*token, "pageToken");
        if (!decoded || !decoded->starts_with("n:"))
            co_return fail("invalid_argument", "pageToken: not a token this gateway issued");
        after = decoded->substr(2);
    }
    const std::string o = *org;
    std::function<std::vector<node_record>(storage&)> query9 = [=](storage& st) {
        return st.list_nodes(o, after, limit + 1);
    };
    auto nodes = co_await db(std::move(query9));
    json::array list;
    for (std::size_t i = 0; i < std::min(limit, nodes.size()); ++i) {
        const auto& n = nodes[i];
        json::array caps;
        for (const auto& c : n.capabilities) caps.emplace_back(c);
        json::object item{
            {"nodeId", n.node_id}, {"orgId", n.org_id}, {"nodeName", n.node_name}, {"capabilities", caps}};
        if (n.last_seen_ms > 0) item["lastSeenAt"] = ts(n.last_seen_ms);
        if (n.revoked) item["revoked"] = true;
        list.push_back(std::move(item));
    }
    json::object out{{"nodes", list}};
    if (nodes.size() > limit) out["nextPageToken"] = pj::base64_encode("n:" + nodes[limit - 1].node_id);
    co_return out;
}

awaitable<rpc_result> service::revoke_node(const json::object& in)
{
    auto node_id = pj::get_string(in, "nodeId");
    if (!node_id) co_return invalid(node_id.error());
    const std::string id = *node_id;
    std::function<std::optional<std::string>(storage&)> query10 =
        [id](storage& st) -> std::optional<std::string> {
        const auto n = st.find_node(id);
        if (!n || !st.revoke_node(id)) return std::nullopt;
        return n->org_id;
    };
    auto org = co_await db(std::move(query10));
    if (!org) co_return fail("not_found", "no node " + id);
    sessions_.drop_node(id);
    const std::string o = *org;
    std::function<event_record(storage&)> query11 = [=, this](storage& st) {
        json::object data{{"nodeId", id}};
        return append_and_publish(st, o, "node-revoked", json::serialize(data));
    };
    auto e = co_await db(std::move(query11));
    hub_.close_node(id, e.id);
    log_.info("gateway.node_revoked", {{"node", id}, {"org", o}});
    json::object out;
    co_return out;
}

// ---- Event streams ----------------------------------------------------------

awaitable<net::reply> service::stream(const net::http::request& req, const net::peer_info& peer, bool admin)
{
    auto token = bearer(req);
    if (!token) token = query_token(req.target);
    session_info grant;
    if (admin) {
        if (!token || !constant_time_equal(*token, admin_token_.reveal()))
            co_return net::error_reply(401, "unauthenticated", "missing or wrong admin token");
        grant.expires_ms = INT64_MAX;
    } else {
        const auto g = token ? sessions_.take_stream_token(secret(*token)) : std::nullopt;
        if (!g)
            co_return net::error_reply(401, "unauthenticated",
                                       "stream token missing, expired or already used");
        grant = *g;
    }
    std::optional<std::int64_t> last_id;
    bool last_id_valid = true;
    if (const auto h = req.headers.get("Last-Event-ID"); h && !h->empty()) {
        std::int64_t v = 0;
        const auto [p, ec] = std::from_chars(h->data(), h->data() + h->size(), v);
        last_id_valid = ec == std::errc{} && p == h->data() + h->size() && v >= 0;
        last_id = v;
    }

    const auto ex = co_await asio::this_coro::executor;
    event_hub::refusal why = event_hub::refusal::none;
    auto sub = hub_.subscribe(grant.org_id, grant.node_id, peer.address, ex, &why);
    if (!sub) {
        if (why == event_hub::refusal::per_ip)
            co_return net::error_reply(429, "resource_exhausted", "too many event streams from this address");
        co_return net::error_reply(503, "unavailable", "the gateway is at its event stream limit");
    }

    net::reply r;
    r.head.headers.set("Content-Type", "text/event-stream");
    r.head.headers.set("Cache-Control", "no-store");
    r.head.headers.set("X-Accel-Buffering", "no");
    r.stream = [this, sub, last_id, last_id_valid,
                expires = grant.expires_ms](net::body_writer& w) -> awaitable<error_code> {
        std::int64_t sent = 0;
        // Subscribed before reading the history: an event published in
        // between arrives both ways and the id check below drops the copy.
        if (last_id) {
            const std::string org = sub->org_id();
            const std::int64_t want = *last_id;
            struct history {
                std::int64_t pruned = 0, newest = 0;
                std::vector<event_record> events;
            };
            std::function<history(storage&)> query12 = [=](storage& st) {
                history out{st.pruned_upto(org), st.last_event_id(), {}};
                const bool gap = !last_id_valid || want < out.pruned || want > out.newest;
                out.events = st.events_after(org, gap ? 0 : want);
                if (gap) out.newest = -1;  // marks "send reset first"
                return out;
            };
            auto h = co_await db(std::move(query12));
            std::string chunk;
            if (h.newest < 0) chunk += format_event(event_record{0, org, "reset", "{}"});
            for (const auto& e : h.events) {
                chunk += format_event(e);
                sent = std::max(sent, e.id);
            }
            if (!chunk.empty())
                if (auto wec = co_await w.write(chunk)) co_return wec;
        }
        for (;;) {
            const auto now = sessions_.now_ms();
            if (now >= expires) co_return error_code{};  // the session behind the token ended
            const auto until_expiry = std::chrono::milliseconds(expires - now);
            auto b = co_await sub->next(std::min(opts_.idle_comment, until_expiry));
            if (b.st == subscription::state::evicted) {
                log_.warn("gateway.stream_evicted", {{"node", sub->node_id()}, {"reason", "queue full"}});
                co_return error_code{};
            }
            if (b.st == subscription::state::closed) co_return error_code{};
            std::string chunk;
            for (const auto& e : b.events) {
                if (e.id <= sent) continue;
                chunk += format_event(e);
                sent = e.id;
            }
            if (b.idle) chunk = ": keep-alive\n\n";
            if (!chunk.empty()) {
                // A peer that stopped reading blocks this write; its queue
                // overflowing meanwhile ends the stream now.
                using namespace asio::experimental::awaitable_operators;
                auto done = co_await (w.write(chunk) || sub->evicted());
                if (done.index() == 1) {
                    log_.warn("gateway.stream_evicted",
                              {{"node", sub->node_id()}, {"reason", "queue full while a write was blocked"}});
                    co_return error_code(asio::error::operation_aborted);
                }
                if (const auto wec = std::get<0>(done)) {
                    // Write timeout: a consumer that stopped reading.
                    log_.warn("gateway.stream_write_failed",
                              {{"node", sub->node_id()}, {"error", wec.message()}});
                    co_return wec;
                }
            }
            if (const auto ca = sub->close_after(); ca > 0 && sent >= ca) co_return error_code{};
        }
    };
    co_return r;
}

}  // namespace tether::gateway
