// AdminService: enrollment codes, config publishing, the node list, revocation.
#include "auth/keys.hpp"
#include "base/random_bytes.hpp"
#include "gateway/service.hpp"
#include "settings/runtime_config.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <map>

namespace tether::gateway {

namespace pj = net::protojson;
namespace json = boost::json;
using net::connect::code;

namespace {

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

/// A fleet's worth: a code shared by a DaemonSet enrolls each of its nodes.
constexpr std::int64_t max_enrollment_code_uses = 100'000;

}  // namespace

awaitable<rpc_result> service::create_enrollment_code(const rpc_call& c)
{
    const json::object& in = c.in;
    auto org = get_org_id(in);
    if (!org) co_return detail::invalid(org.error());
    auto ttl = pj::get_int32(in, "ttlSeconds");
    if (!ttl) co_return detail::invalid(ttl.error());
    const std::int64_t seconds = *ttl == 0 ? 3600 : *ttl;
    if (seconds < 1 || seconds > 30LL * 24 * 3600)
        co_return fail(code::invalid_argument, "ttlSeconds: must be from 1 to 2592000 (30 days)");
    auto max_uses = pj::get_int32(in, "maxUses");
    if (!max_uses) co_return detail::invalid(max_uses.error());
    const std::int64_t uses = *max_uses == 0 ? 1 : *max_uses;
    if (uses < 1 || uses > max_enrollment_code_uses)
        co_return fail(code::invalid_argument,
                       "maxUses: must be from 1 to " + std::to_string(max_enrollment_code_uses));
    const std::string code = random_token(24);
    const std::int64_t expires = sessions_.now_ms() + seconds * 1000;
    const std::string hash = auth::sha256_hex(code), o = *org;
    co_await db_.add_enrollment_code(hash, o, expires, uses);
    json::object out{{"code", code}, {"expiresAt", detail::timestamp(expires)}, {"maxUses", uses}};
    co_return out;
}

awaitable<rpc_result> service::revoke_enrollment_code(const rpc_call& c)
{
    // A code that leaked (a DaemonSet's Secret may hold one good for
    // 100 000 nodes and 30 days) must be stoppable before it expires: by
    // the code itself, or every code of its org when which one is unknown.
    const json::object& in = c.in;
    auto given = pj::get_string(in, "code");
    if (!given) co_return detail::invalid(given.error());
    const bool by_code = !given->empty();
    const bool by_org = in.if_contains("orgId") && !in.at("orgId").is_null();
    if (by_code == by_org)
        co_return fail(code::invalid_argument, "give code or orgId (every code of the org), one of them");
    std::string hash, org;
    if (by_code) {
        if (given->size() > 4096) co_return fail(code::invalid_argument, "code: at most 4096 bytes");
        hash = auth::sha256_hex(*given);
    } else {
        auto o = get_org_id(in);
        if (!o) co_return detail::invalid(o.error());
        org = *o;
    }
    const auto removed = co_await db_.remove_enrollment_codes(hash, org);
    if (by_code && removed == 0)
        co_return fail(code::not_found,
                       "no such enrollment code (an expired one is deleted within a minute)");
    log_.info("gateway.enrollment_codes_revoked",
              {{"by", by_code ? "code" : "org"}, {"org", org}, {"revoked", removed}});
    json::object out{{"revoked", removed}};
    co_return out;
}

awaitable<rpc_result> service::publish_config(const rpc_call& c)
{
    const json::object& in = c.in;
    auto org = get_org_id(in);
    if (!org) co_return detail::invalid(org.error());
    const auto* cfg = in.if_contains("config");
    if (!cfg || !cfg->is_object()) co_return fail(code::invalid_argument, "config: must be a JSON object");
    // Nodes reject an invalid document whole; telling the operator now beats
    // a fleet that silently keeps its old config.
    if (auto checked = settings::decode_config(*cfg, 1); !checked)
        co_return fail(code::invalid_argument, "config." + checked.error().message());
    // Present (0 included: "the org has none yet"), it makes the publish a
    // compare-and-set on the version the operator edited.
    std::optional<std::int64_t> if_latest;
    if (const auto* v = in.if_contains("ifConfigUpdatedAt"); v && !v->is_null()) {
        const auto n = pj::get_int64(in, "ifConfigUpdatedAt");
        if (!n) co_return detail::invalid(n.error());
        if (*n < 0) co_return fail(code::invalid_argument, "ifConfigUpdatedAt: must not be negative");
        if_latest = *n;
    }
    const std::string doc = json::serialize(*cfg), o = *org;
    const auto now = sessions_.now_ms();
    const auto done = co_await db_.publish_config(o, doc, now, if_latest, opts_.history);
    if (!done.stored) {
        log_.info("gateway.config_publish_conflict",
                  {{"org", o}, {"ifConfigUpdatedAt", *if_latest}, {"configUpdatedAt", done.updated_at}});
        co_return fail(code::aborted, "the org's latest config is " + std::to_string(done.updated_at) +
                                          ", not " + std::to_string(*if_latest) +
                                          ": it was published meanwhile; read it again and redo the change");
    }
    log_.info("gateway.config_published",
              {{"org", o}, {"configUpdatedAt", done.updated_at}, {"bytes", doc.size()}});
    json::object out{{"configUpdatedAt", std::to_string(done.updated_at)}};
    co_return out;
}

awaitable<rpc_result> service::list_nodes(const rpc_call& c)
{
    const json::object& in = c.in;
    auto org = pj::get_string(in, "orgId");
    if (!org) co_return detail::invalid(org.error());
    if (!org->empty()) {  // empty: every org
        auto checked = get_org_id(in);
        if (!checked) co_return detail::invalid(checked.error());
    }
    auto size = pj::get_int32(in, "pageSize");
    if (!size) co_return detail::invalid(size.error());
    if (*size < 0) co_return fail(code::invalid_argument, "pageSize: must not be negative");
    const std::size_t limit = *size == 0 ? 100 : std::min<std::size_t>(static_cast<std::size_t>(*size), 1000);
    auto token = pj::get_string(in, "pageToken");
    if (!token) co_return detail::invalid(token.error());
    std::string after;
    if (!token->empty()) {
        auto decoded = pj::base64_decode(*token, "pageToken");
        if (!decoded || !decoded->starts_with("n:"))
            co_return fail(code::invalid_argument, "pageToken: not a token this gateway issued");
        after = decoded->substr(2);
    }
    const std::string o = *org;
    const auto nodes = co_await db_.list_nodes(o, after, limit + 1);
    std::map<std::string, online_span> online;  // by org, for this page
    const auto now = sessions_.now_ms();
    json::array list;
    for (std::size_t i = 0; i < std::min(limit, nodes.size()); ++i) {
        const auto& n = nodes[i];
        auto span = online.find(n.org_id);
        if (span == online.end()) {
            const auto cfg = co_await db_.latest_config(n.org_id);
            span = online.emplace(n.org_id, online_at(now, cfg)).first;
        }
        list.push_back(node_json(n, span->second));
    }
    json::object out{{"nodes", list}};
    if (nodes.size() > limit) out["nextPageToken"] = pj::base64_encode("n:" + nodes[limit - 1].node_id);
    co_return out;
}

online_span service::online_at(std::int64_t now_ms, const std::optional<config_record>& cfg) const
{
    // Two of the heartbeat intervals the org's config sets (the gateway's
    // default, or the agents' 30 s), plus the write debounce that may hold
    // last_seen back. As far ahead, for a replica whose clock runs ahead;
    // further ahead, last_seen was written before this clock went back and
    // says nothing of whether the node still runs (a live one rewrites it
    // at its next beat).
    const auto fallback = opts_.heartbeat_interval_seconds > 0 ? opts_.heartbeat_interval_seconds : 30;
    const std::int64_t interval_ms = std::int64_t{1000} * detail::heartbeat_interval_of(cfg, fallback);
    const auto window = 2 * interval_ms + sessions_.limits().heartbeat_write_every_ms;
    return {now_ms - window, now_ms + window};
}

json::object service::node_json(const node_record& n, online_span online)
{
    json::array caps;
    for (const auto& cap : n.capabilities) caps.emplace_back(cap);
    json::object item{
        {"nodeId", n.node_id}, {"orgId", n.org_id}, {"nodeName", n.node_name}, {"capabilities", caps}};
    if (n.last_seen_ms > 0) item["lastSeenAt"] = detail::timestamp(n.last_seen_ms);
    if (n.revoked) item["revoked"] = true;
    item["online"] = !n.revoked && n.last_seen_ms > 0 && online.holds(n.last_seen_ms);
    if (n.applied_config_at > 0) item["appliedConfigUpdatedAt"] = std::to_string(n.applied_config_at);
    if (!n.agent_version.empty()) item["agentVersion"] = n.agent_version;
    if (n.applied_changed_ms > 0) item["appliedChangedAt"] = detail::timestamp(n.applied_changed_ms);
    return item;
}

awaitable<rpc_result> service::get_rollout(const rpc_call& c)
{
    const json::object& in = c.in;
    auto org = get_org_id(in);
    if (!org) co_return detail::invalid(org.error());
    auto size = pj::get_int32(in, "pageSize");
    if (!size) co_return detail::invalid(size.error());
    if (*size < 0) co_return fail(code::invalid_argument, "pageSize: must not be negative");
    const std::size_t limit = *size == 0 ? 100 : std::min<std::size_t>(static_cast<std::size_t>(*size), 1000);
    auto token = pj::get_string(in, "pageToken");
    if (!token) co_return detail::invalid(token.error());
    std::string after;
    if (!token->empty()) {
        auto decoded = pj::base64_decode(*token, "pageToken");
        if (!decoded || !decoded->starts_with("b:"))
            co_return fail(code::invalid_argument, "pageToken: not a token this gateway issued");
        after = decoded->substr(2);
    }
    const std::string o = *org;
    const auto cfg = co_await db_.latest_config(o);
    const auto online = online_at(sessions_.now_ms(), cfg);
    const std::int64_t latest = cfg ? cfg->updated_at : 0;
    const auto r = co_await db_.rollout(o, latest, online, after, limit + 1);
    json::array behind;
    for (std::size_t i = 0; i < std::min(limit, r.behind_page.size()); ++i)
        behind.push_back(node_json(r.behind_page[i], online));
    json::object out{{"configUpdatedAt", std::to_string(latest)},
                     {"online", r.applied + r.behind},
                     {"applied", r.applied},
                     {"behind", r.behind},
                     {"offline", r.offline},
                     {"revoked", r.revoked},
                     {"behindNodes", behind}};
    if (r.last_caught_up_ms > 0) out["lastCaughtUpAt"] = detail::timestamp(r.last_caught_up_ms);
    if (r.behind_page.size() > limit)
        out["nextPageToken"] = pj::base64_encode("b:" + r.behind_page[limit - 1].node_id);
    co_return out;
}

awaitable<rpc_result> service::get_config(const rpc_call& c)
{
    const json::object& in = c.in;
    auto org = get_org_id(in);
    if (!org) co_return detail::invalid(org.error());
    const std::string o = *org;
    const auto cfg = co_await db_.latest_config(o);
    json::object out{{"configUpdatedAt", std::to_string(cfg ? cfg->updated_at : 0)}};
    json::value doc = json::object{};
    if (cfg) {
        boost::system::error_code ec;
        auto v = json::parse(cfg->document, ec);
        if (!ec && v.is_object()) doc = std::move(v);
    }
    out["config"] = std::move(doc);
    co_return out;
}

awaitable<rpc_result> service::get_online_history(const rpc_call& c)
{
    const json::object& in = c.in;
    auto org = get_org_id(in);
    if (!org) co_return detail::invalid(org.error());
    json::array samples;
    for (const auto& s : fleet_.samples(*org))
        samples.push_back(json::object{{"at", detail::timestamp(s.at_ms)}, {"online", s.online}});
    json::object out{{"samples", samples}};
    co_return out;
}

awaitable<rpc_result> service::forget_nodes(const rpc_call& c)
{
    // A fleet that autoscales enrolls new nodes every day; the ones gone
    // for good stayed for ever, counted offline in every rollout and page.
    const json::object& in = c.in;
    auto org = get_org_id(in);
    if (!org) co_return detail::invalid(org.error());
    auto offline_for = pj::get_int64(in, "offlineForSeconds");
    if (!offline_for) co_return detail::invalid(offline_for.error());
    // A node away for less than an hour may be restarting: never forgotten.
    constexpr std::int64_t floor_s = 3600, cap_s = 10LL * 366 * 24 * 3600;
    if (*offline_for < floor_s || *offline_for > cap_s)
        co_return fail(code::invalid_argument, "offlineForSeconds: must be from 3600 (an hour) to " +
                                                   std::to_string(cap_s) + " (ten years)");
    const std::string o = *org;
    const auto before = sessions_.now_ms() - *offline_for * 1000;
    const auto gone = co_await db_.forget_nodes(o, before);
    log_.info("gateway.nodes_forgotten",
              {{"org", o}, {"offlineForSeconds", *offline_for}, {"forgotten", gone}});
    json::object out{{"forgotten", gone}};
    co_return out;
}

awaitable<rpc_result> service::revoke_node(const rpc_call& c)
{
    const json::object& in = c.in;
    auto node_id = pj::get_string(in, "nodeId");
    if (!node_id) co_return detail::invalid(node_id.error());
    const std::string id = *node_id;
    // The store's feed ends the node's streams on every replica, after
    // they have sent this event.
    const auto revoked = co_await db_.revoke_node(id, opts_.history);
    if (!revoked) co_return fail(code::not_found, "no node " + id);
    const std::string o = revoked->org_id;
    log_.info("gateway.node_revoked", {{"node", id}, {"org", o}});
    json::object out;
    co_return out;
}

}  // namespace tether::gateway
