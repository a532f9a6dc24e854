// NodeService: enrollment, login, heartbeats, runtime config, stream tokens.
#include "auth/keys.hpp"
#include "base/random_bytes.hpp"
#include "base/utf8.hpp"
#include "gateway/service.hpp"
#include "settings/runtime_config.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace tether::gateway {

namespace pj = net::protojson;
namespace json = boost::json;
using net::connect::code;

namespace {

/// Names are shown to operators in terminals and tables: no control
/// characters (C0, DEL, C1), and valid UTF-8.
std::optional<std::string> node_name_problem(std::string_view name)
{
    if (utf8_replace_invalid(name) != name) return "must be valid UTF-8";
    if (has_control_characters(name)) return "must not contain control characters";
    return std::nullopt;
}

/// What a node reports of itself at enrollment and in heartbeats, bounded
/// alike: stored per node and paged to operators up to 1 000 nodes at once.
std::optional<rpc_error> capabilities_problem(const std::vector<std::string>& caps)
{
    if (caps.size() > 32) return fail(code::invalid_argument, "capabilities: at most 32");
    for (const auto& cap : caps)
        if (cap.empty() || cap.size() > 64 || node_name_problem(cap))
            return fail(code::invalid_argument, "capabilities: each must be 1 to 64 printable bytes");
    return std::nullopt;
}

rpc_error node_gone()
{
    return fail(code::not_found, "this node was deleted or revoked; re-enroll it");
}

}  // namespace

namespace detail {

/// The heartbeatIntervalSeconds a config sets, clamped as the node's
/// decoder clamps it, or `fallback`. Only that key is decoded: the document
/// was validated whole when it was published, and this runs on every
/// heartbeat.
std::int32_t heartbeat_interval_of(const std::optional<config_record>& cfg, std::int32_t fallback)
{
    if (!cfg) return fallback;
    boost::system::error_code ec;
    const auto v = json::parse(cfg->document, ec);
    if (ec || !v.is_object()) return fallback;
    const auto interval = settings::decode_heartbeat_interval(v.get_object());
    if (!interval || !*interval) return fallback;
    return static_cast<std::int32_t>((*interval)->count());
}

}  // namespace detail

awaitable<rpc_result> service::enroll(const rpc_call& c)
{
    const json::object& in = c.in;
    auto code = pj::get_string(in, "enrollmentCode");
    if (!code) co_return detail::invalid(code.error());
    auto name = pj::get_string(in, "nodeName");
    if (!name) co_return detail::invalid(name.error());
    auto key = pj::get_bytes(in, "publicKey");
    if (!key) co_return detail::invalid(key.error());
    auto caps = pj::get_strings(in, "capabilities");
    if (!caps) co_return detail::invalid(caps.error());
    if (key->size() != 32)
        co_return fail(code::invalid_argument, "publicKey: must be a raw 32-byte Ed25519 key");
    if (*key == std::string(32, '\0'))
        co_return fail(code::invalid_argument, "publicKey: the all-zero key is not a key");
    if (name->empty() || name->size() > 253)
        co_return fail(code::invalid_argument, "nodeName: must be 1 to 253 bytes");
    if (const auto why = node_name_problem(*name))
        co_return fail(code::invalid_argument, "nodeName: " + *why);
    if (auto refused = capabilities_problem(*caps)) co_return std::move(*refused);

    node_record n;
    n.node_id = "node-" + random_token(12);
    n.node_name = *name;
    n.capabilities = *caps;
    n.public_key = *key;
    const std::string api_key = random_token(32);
    n.api_key_hash = auth::sha256_hex(api_key);
    n.created_ms = sessions_.now_ms();
    const std::string code_hash = auth::sha256_hex(*code);
    const auto now = sessions_.now_ms();
    const auto result = co_await db_.enroll(code_hash, n, now);
    if (result.outcome == store::enroll_outcome::code_refused)
        co_return fail(code::permission_denied, "enrollment code unknown, expired, revoked or already used");
    if (result.outcome == store::enroll_outcome::key_taken)
        co_return fail(code::already_exists,
                       "publicKey: another node is enrolled with this key; generate a new one");
    const auto& org = result.org_id;
    log_.info("gateway.enrolled", {{"node", n.node_id}, {"org", org}});
    json::object out{{"nodeId", n.node_id}, {"orgId", org}, {"apiKey", api_key}};
    co_return out;
}

awaitable<rpc_result> service::begin_auth(const rpc_call& c)
{
    const json::object& in = c.in;
    auto node_id = pj::get_string(in, "nodeId");
    if (!node_id) co_return detail::invalid(node_id.error());
    auto api_key = pj::get_string(in, "apiKey");
    if (!api_key) co_return detail::invalid(api_key.error());
    const std::string id = *node_id;
    auto node = co_await db_.find_login(id);
    // One answer for unknown, revoked and mismatched: existence must not
    // leak, neither in the answer nor in its timing (the key is hashed and
    // compared whether or not there is a node).
    static const std::string no_node_hash(64, '0');
    const bool key_matches =
        constant_time_equal(auth::sha256_hex(*api_key), node ? node->api_key_hash : no_node_hash);
    if (!node || node->revoked || !key_matches)
        co_return fail(code::permission_denied, "node unknown, revoked, or api key mismatched");
    const auto issued = co_await sessions_.new_challenge(db_, id);
    json::object out{{"challenge", pj::base64_encode(issued.bytes)},
                     {"expiresAt", detail::timestamp(issued.expires_ms)}};
    co_return out;
}

awaitable<rpc_result> service::complete_auth(const rpc_call& c)
{
    const json::object& in = c.in;
    auto node_id = pj::get_string(in, "nodeId");
    if (!node_id) co_return detail::invalid(node_id.error());
    auto challenge = pj::get_bytes(in, "challenge");
    if (!challenge) co_return detail::invalid(challenge.error());
    auto signature = pj::get_bytes(in, "signature");
    if (!signature) co_return detail::invalid(signature.error());
    const std::string id = *node_id, presented = *challenge;
    const bool challenge_ok = co_await sessions_.take_challenge(db_, id, presented);
    if (!challenge_ok)
        co_return fail(code::unauthenticated, "challenge expired, already used, or not issued to this node");
    const auto node = co_await db_.find_node(id);
    if (!node || node->revoked)
        co_return fail(code::permission_denied, "node unknown, revoked, or api key mismatched");
    if (!auth::verify(node->public_key, auth::login_message(id, *challenge), *signature))
        co_return fail(code::unauthenticated, "signature does not verify with the enrolled key");
    const std::string org = node->org_id;
    const auto live = co_await db_.config_if_live(id, org);
    const auto& cfg = live.cfg;
    const auto session = co_await sessions_.new_session(db_, id, org);
    json::object out{
        {"sessionToken", std::string(session.token.reveal())},
        {"expiresAt", detail::timestamp(session.expires_ms)},
        {"serverTime", detail::timestamp(sessions_.now_ms())},
        {"heartbeatIntervalSeconds", detail::heartbeat_interval_of(cfg, opts_.heartbeat_interval_seconds)}};
    co_return out;
}

awaitable<rpc_result> service::heartbeat(const rpc_call& c)
{
    const json::object& in = c.in;
    const session_info& s = *c.session;
    if (auto v = pj::get_int64(in, "uptimeSeconds"); !v) co_return detail::invalid(v.error());
    auto applied = pj::get_int64(in, "configUpdatedAt");
    if (!applied) co_return detail::invalid(applied.error());
    auto version = pj::get_string(in, "agentVersion");
    if (!version) co_return detail::invalid(version.error());
    auto caps = pj::get_strings(in, "capabilities");
    if (!caps) co_return detail::invalid(caps.error());
    // Stored and shown to operators: short, printable, bounded.
    if (version->size() > 64 || node_name_problem(*version))
        co_return fail(code::invalid_argument, "agentVersion: must be at most 64 printable bytes");
    if (auto refused = capabilities_problem(*caps)) co_return std::move(*refused);
    // Absent (an older agent, or a writer that omits empty lists): the
    // capabilities it enrolled with stay.
    const bool caps_sent = in.contains("capabilities");
    heartbeat_report report{*applied, *version, caps_sent ? std::optional(*caps) : std::nullopt};
    if (!sessions_.allow_heartbeat(s.node_id))
        co_return fail(code::resource_exhausted,
                       "more than " + std::to_string(sessions_.limits().heartbeats_per_second) +
                           " heartbeats per second from this node");
    const auto now = sessions_.now_ms();
    const json::object status{{"nodeId", s.node_id},
                              {"appliedConfigUpdatedAt", report.applied_config_at},
                              {"agentVersion", report.agent_version}};
    const auto f = co_await db_.record_heartbeat(
        s.node_id, s.org_id, now, sessions_.limits().heartbeat_write_every_ms, std::move(report));
    if (!f.alive) co_return node_gone();
    if (f.report_written) {
        // For operators following a rollout. The report is stored either
        // way: a lost event costs them a poll, not the node a retry.
        const std::string org = s.org_id, data = json::serialize(status);
        try {
            co_await db_.append_event(org, "node-status", data, opts_.history);
        } catch (const boost::system::system_error& e) {
            if (e.code() == asio::error::operation_aborted) throw;
            storage_failed(e);
        } catch (const std::exception& e) {
            storage_failed(e);
        }
    }
    json::object out{{"configUpdatedAt", std::to_string(f.cfg ? f.cfg->updated_at : 0)},
                     {"heartbeatIntervalSeconds", detail::heartbeat_interval_of(f.cfg, 0)}};
    co_return out;
}

awaitable<rpc_result> service::get_runtime_config(const rpc_call& c)
{
    const session_info& s = *c.session;
    const auto f = co_await db_.config_if_live(s.node_id, s.org_id);
    if (!f.alive) co_return node_gone();
    const auto& cfg = f.cfg;
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

awaitable<rpc_result> service::create_stream_token(const rpc_call& c)
{
    const session_info& s = *c.session;
    const bool alive = co_await db_.node_is_live(s.node_id);
    if (!alive) co_return node_gone();
    const auto t = co_await sessions_.new_stream_token(db_, s);
    if (!t)
        co_return fail(code::resource_exhausted,
                       "at most " + std::to_string(sessions_.limits().stream_tokens_per_node) +
                           " unexpired stream tokens per node");
    json::object out{{"token", std::string(t->token.reveal())},
                     {"expiresAt", detail::timestamp(t->expires_ms)}};
    co_return out;
}

}  // namespace tether::gateway
