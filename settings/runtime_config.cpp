#include "settings/runtime_config.hpp"

#include "net/http.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace tether::settings {

namespace json = boost::json;
namespace pj = net::protojson;
using pj::field_error;
using pj::result;

namespace {

/// Config values are a JSON object (google.protobuf.Struct on the wire), so
/// a peer may write 30 as 30.0: integral doubles count as integers.
result<std::int64_t> integer(const json::value& v, const std::string& path)
{
    if (v.is_int64()) return v.get_int64();
    if (v.is_uint64()) {
        if (v.get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return static_cast<std::int64_t>(v.get_uint64());
        return field_error(path, "out of range");
    }
    if (v.is_double()) {
        const double d = v.get_double();
        if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18)
            return static_cast<std::int64_t>(d);
        return field_error(path, "must be an integer");
    }
    return field_error(path, "must be an integer");
}

result<std::int64_t> positive(const json::object& o, std::string_view key, const std::string& parent)
{
    const std::string path = parent + "." + std::string(key);
    const auto* v = o.if_contains(key);
    if (!v || v->is_null()) return field_error(path, "required");
    auto n = integer(*v, path);
    if (!n) return n;
    if (*n <= 0) return field_error(path, "must be > 0");
    return n;
}

const json::array* array_at(const json::object& doc, std::string_view key, std::optional<field_error>& err)
{
    const auto* v = doc.if_contains(key);
    if (!v || v->is_null()) return nullptr;
    if (!v->is_array()) err = field_error(std::string(key), "must be an array");
    return v->if_array();
}

std::string indexed(std::string_view key, std::size_t i)
{
    return std::string(key) + "[" + std::to_string(i) + "]";
}

/// Boost.JSON reads 1e999 as infinity and writes it back as something it
/// will not read again, so a document holding one (even under an unknown
/// key) would be applied and then lost from the state file at the next
/// start: such documents are refused, with the path of the number.
std::optional<field_error> non_finite(const json::value& v, const std::string& path)
{
    if (v.is_double() && !std::isfinite(v.get_double())) return field_error(path, "number out of range");
    if (const auto* a = v.if_array()) {
        for (std::size_t i = 0; i < a->size(); ++i)
            if (auto e = non_finite((*a)[i], path + "[" + std::to_string(i) + "]")) return e;
    }
    if (const auto* o = v.if_object()) {
        for (const auto& kv : *o)
            if (auto e = non_finite(
                    kv.value(), path.empty() ? std::string(kv.key()) : path + "." + std::string(kv.key())))
                return e;
    }
    return std::nullopt;
}

/// Nesting levels of `v`: 0 for a scalar, 1 for a flat object or array.
std::size_t depth_of(const json::value& v)
{
    std::size_t deepest = 0;
    if (const auto* a = v.if_array()) {
        for (const auto& item : *a) deepest = std::max(deepest, depth_of(item));
        return deepest + 1;
    }
    if (const auto* o = v.if_object()) {
        for (const auto& kv : *o) deepest = std::max(deepest, depth_of(kv.value()));
        return deepest + 1;
    }
    return 0;
}

}  // namespace

result<ip_range> ip_range::parse(std::string_view text, std::string_view path)
{
    const std::string where(path);
    const auto slash = text.find('/');
    const std::string addr(text.substr(0, slash));
    ip_range r;
    r.v6 = addr.find(':') != std::string::npos;
    if (::inet_pton(r.v6 ? AF_INET6 : AF_INET, addr.c_str(), r.bytes.data()) != 1)
        return field_error(where, "not an IP address or CIDR range");
    const unsigned max_bits = r.v6 ? 128 : 32;
    r.prefix = max_bits;
    if (slash != std::string_view::npos) {
        const auto bits = text.substr(slash + 1);
        if (bits.empty() || bits.size() > 3 ||
            !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return field_error(where, "prefix length must be a number");
        unsigned n = 0;
        for (const char c : bits) n = n * 10 + static_cast<unsigned>(c - '0');
        if (n > max_bits) return field_error(where, "prefix length must be <= " + std::to_string(max_bits));
        r.prefix = n;
    }
    for (unsigned bit = r.prefix; bit < max_bits; ++bit) {
        if ((r.bytes[bit / 8] >> (7 - bit % 8)) & 1U)
            return field_error(where, "has host bits set after the prefix");
    }
    return r;
}

std::string ip_range::to_string() const
{
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
    std::string s(buf);
    if (prefix != (v6 ? 128U : 32U)) s += "/" + std::to_string(prefix);
    return s;
}

bool ip_range::contains(const ip_range& address) const noexcept
{
    if (address.v6 != v6 || address.prefix < prefix) return false;
    for (unsigned bit = 0; bit < prefix; ++bit) {
        const unsigned shift = 7 - bit % 8;
        if (((bytes[bit / 8] >> shift) & 1U) != ((address.bytes[bit / 8] >> shift) & 1U)) return false;
    }
    return true;
}

bool valid_host_pattern(std::string_view host) noexcept
{
    if (host.starts_with("*.")) host.remove_prefix(2);
    if (host.empty() || host.size() > 253) return false;
    std::size_t label = 0;
    char prev = '.';
    for (const char c : host) {
        const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.') {
            if (label == 0 || prev == '-') return false;
            label = 0;
        } else if (alnum || c == '-') {
            if (label == 0 && c == '-') return false;
            if (++label > 63) return false;
        } else {
            return false;
        }
        prev = c;
    }
    return label > 0 && prev != '-';
}

bool runtime_config::egress_host_allowed(std::string_view host) const
{
    const auto h = net::http::to_lower(host);
    return std::any_of(allowed_egress_hosts.begin(), allowed_egress_hosts.end(), [&h](const std::string& p) {
        if (p.starts_with("*.")) return h.size() > p.size() - 1 && h.ends_with(std::string_view(p).substr(1));
        return h == p;
    });
}

bool runtime_config::flag(std::string_view name, bool fallback) const
{
    const auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
}

std::vector<std::string> runtime_config::keys() const
{
    std::vector<std::string> out;
    for (const auto& kv : document) out.emplace_back(kv.key());
    return out;
}

result<std::optional<std::chrono::seconds>> decode_heartbeat_interval(const json::object& doc)
{
    const auto* v = doc.if_contains("heartbeatIntervalSeconds");
    if (!v || v->is_null()) return std::optional<std::chrono::seconds>();
    auto n = integer(*v, "heartbeatIntervalSeconds");
    if (!n) return n.error();
    return std::optional<std::chrono::seconds>(heartbeat_interval_bounds.clamp_seconds(*n));
}

result<runtime_config> decode_config(const json::value& document, std::int64_t updated_at)
{
    if (!document.is_object()) return field_error("config", "must be a JSON object");
    const auto& doc = document.get_object();
    if (depth_of(document) > max_document_depth)
        return field_error("config", "nests deeper than " + std::to_string(max_document_depth) + " levels");
    if (auto e = non_finite(document, "")) return *e;
    runtime_config cfg;
    cfg.updated_at = updated_at;
    cfg.document = doc;

    auto interval = decode_heartbeat_interval(doc);
    if (!interval) return interval.error();
    cfg.heartbeat_interval = *interval;

    std::optional<field_error> err;
    if (const auto* a = array_at(doc, "blockedIps", err)) {
        for (std::size_t i = 0; i < a->size(); ++i) {
            const auto path = indexed("blockedIps", i);
            if (!(*a)[i].is_string()) return field_error(path, "must be a string");
            auto r = ip_range::parse((*a)[i].get_string(), path);
            if (!r) return r.error();
            cfg.blocked_ips.push_back(*r);
        }
    }
    if (err) return *err;

    if (const auto* a = array_at(doc, "allowedEgressHosts", err)) {
        for (std::size_t i = 0; i < a->size(); ++i) {
            const auto path = indexed("allowedEgressHosts", i);
            if (!(*a)[i].is_string()) return field_error(path, "must be a string");
            const std::string_view h = (*a)[i].get_string();
            if (!valid_host_pattern(h))
                return field_error(path,
                                   "must be a host name (no scheme, port or path; '*.' allowed in front)");
            cfg.allowed_egress_hosts.push_back(net::http::to_lower(h));
        }
    }
    if (err) return *err;

    if (const auto* a = array_at(doc, "rateLimits", err)) {
        for (std::size_t i = 0; i < a->size(); ++i) {
            const auto path = indexed("rateLimits", i);
            const auto* o = (*a)[i].if_object();
            if (!o) return field_error(path, "must be an object");
            rate_limit rl;
            const auto* route = o->if_contains("route");
            if (!route || route->is_null()) return field_error(path + ".route", "required");
            if (!route->is_string() || route->get_string().empty())
                return field_error(path + ".route", "must be a non-empty string");
            rl.route = route->get_string();
            auto max = positive(*o, "maxRequests", path);
            if (!max) return max.error();
            auto window = positive(*o, "windowSeconds", path);
            if (!window) return window.error();
            rl.max_requests = *max;
            rl.window_seconds = *window;
            cfg.rate_limits.push_back(std::move(rl));
        }
    }
    if (err) return *err;

    if (const auto* v = doc.if_contains("flags"); v && !v->is_null()) {
        if (!v->is_object()) return field_error("flags", "must be an object of booleans");
        for (const auto& kv : v->get_object()) {
            if (!kv.value().is_bool())
                return field_error("flags." + std::string(kv.key()), "must be true or false");
            cfg.flags.emplace(std::string(kv.key()), kv.value().get_bool());
        }
    }
    return cfg;
}

std::string encode_config_file(const runtime_config& cfg)
{
    const json::object o{{"configUpdatedAt", std::to_string(cfg.updated_at)}, {"config", cfg.document}};
    return json::serialize(o) + "\n";
}

result<runtime_config> decode_config_file(std::string_view text)
{
    boost::system::error_code ec;
    json::parse_options opts;
    opts.max_depth = net::protojson::max_body_depth;  // the document plus this file's wrapper
    const auto v = json::parse(text, ec, {}, opts);
    if (ec || !v.is_object()) return field_error("(file)", "not a JSON object");
    const auto at = pj::get_int64(v.get_object(), "configUpdatedAt");
    if (!at) return at.error();
    const auto* doc = v.get_object().if_contains("config");
    if (!doc) return field_error("config", "required");
    return decode_config(*doc, *at);
}

}  // namespace tether::settings
