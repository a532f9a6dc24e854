#include "auth/broker_rewrite.hpp"

#include <string.h>

#include <algorithm>
#include <array>

namespace tether::auth {

namespace http = net::http;

namespace {

int hex(char c) noexcept
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void replace_all(std::string& s, std::string_view from, std::string_view to)
{
    if (from.empty()) return;
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
}

/// The credential, raw or percent-encoded, somewhere in `text`.
bool holds_credential(std::string_view text, std::string_view credential, std::string_view encoded)
{
    return text.find(credential) != std::string_view::npos || text.find(encoded) != std::string_view::npos;
}

std::string percent_encode(std::string_view s)
{
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size() * 3);
    for (const unsigned char c : s) {
        const bool unreserved = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

// Hop-by-hop fields (RFC 9110 7.6.1) and framing: the broker re-frames.
constexpr std::array<std::string_view, 9> hop_by_hop{"Connection",          "Keep-Alive", "Proxy-Connection",
                                                     "Proxy-Authorization", "TE",         "Trailer",
                                                     "Transfer-Encoding",   "Upgrade",    "Content-Length"};

bool hop_by_hop_field(const http::fields::field& f)
{
    return std::any_of(hop_by_hop.begin(), hop_by_hop.end(),
                       [&f](std::string_view h) { return http::iequals(f.name, h); });
}

/// The upstream URL's path without its trailing slashes: what a child's
/// path is joined to, and what a redirect back into it loses.
std::string_view base_path_of(const net::url& upstream)
{
    std::string_view p = upstream.path;
    while (!p.empty() && p.back() == '/') p.remove_suffix(1);
    return p;
}

}  // namespace

std::size_t streams_requested(std::string_view bytes, bool truncated, bool carried_descriptors) noexcept
{
    if (truncated || carried_descriptors) return 0;
    if (bytes.size() == 1 && bytes[0] == control_accept) return 1;
    if (bytes.size() != 2 || bytes[0] != control_batch) return 0;
    const auto n = static_cast<unsigned char>(bytes[1]);
    return n >= 1 && n <= max_control_batch ? n : 0;
}

std::string percent_decode(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const int h = hex(s[i + 1]);
            const int l = hex(s[i + 2]);
            if (h >= 0 && l >= 0) {
                out += static_cast<char>(h * 16 + l);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

boost::system::result<rewritten_request, rewrite_refusal> rewrite_request(const http::request& child,
                                                                          std::string_view sentinel,
                                                                          std::string_view credential,
                                                                          const net::url& upstream)
{
    using refusal = rewrite_refusal;

    // Framing first: Beast 1.81 accepts some Transfer-Encoding shapes that
    // other servers read differently (request smuggling).
    if (child.headers.count("Transfer-Encoding") > 1)
        return refusal(400, "more than one Transfer-Encoding field");
    if (const auto te = child.headers.get("Transfer-Encoding")) {
        if (!http::iequals(*te, "chunked"))
            return refusal(400, "only Transfer-Encoding: chunked is accepted");
        if (child.headers.count("Content-Length") > 0)
            return refusal(400, "Transfer-Encoding and Content-Length together");
    }
    if (child.headers.count("Content-Length") > 1) return refusal(400, "more than one Content-Length field");
    if (child.headers.count("Authorization") > 1) return refusal(400, "more than one Authorization field");

    // The target: origin-form, or absolute-form naming the broker itself.
    std::string_view target = child.target;
    if (!target.starts_with("/")) {
        const std::string prefix = std::string(broker_api_base);
        if (net::http::to_lower(target.substr(0, prefix.size())) != prefix ||
            (target.size() > prefix.size() && target[prefix.size()] != '/' && target[prefix.size()] != '?'))
            return refusal(400, "request target must be a path, or a URL under " + prefix);
        target.remove_prefix(prefix.size());
    }
    const auto qmark = target.find('?');
    std::string_view path = target.substr(0, qmark);
    if (path.empty()) path = "/";
    const std::string_view query =
        qmark == std::string_view::npos ? std::string_view() : target.substr(qmark + 1);

    rewritten_request out;
    const std::string_view base_path = base_path_of(upstream);
    // The target is written as it is checked: one string, grown once.
    std::string& joined = out.request.target;
    joined.clear();  // a request starts with "/"
    joined.reserve(base_path.size() + target.size() + (credential.size() * 3));
    joined.append(base_path).append(path);
    if (qmark != std::string_view::npos) joined += '?';
    int app_keys = 0;
    for (std::size_t start = 0; qmark != std::string_view::npos && start <= query.size();) {
        const auto amp = query.find('&', start);
        const auto param =
            query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
        if (start != 0) joined += '&';
        start = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
        const auto eq = param.find('=');
        const auto name = param.substr(0, eq);
        const auto value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
        const bool exact = name == "app_key";
        // Only a name of seven characters or more can decode to app_key.
        if (!exact && name.size() >= 7 &&
            (name.find('%') == std::string_view::npos ? http::iequals(name, "app_key")
                                                      : http::iequals(percent_decode(name), "app_key")))
            return refusal(400, "an encoded or differently cased app_key parameter is refused");
        if (exact) {
            if (++app_keys > 1) return refusal(400, "more than one app_key parameter");
            if (value == sentinel) {
                joined.append("app_key=").append(percent_encode(credential));
                out.injected_query = true;
                continue;
            }
            if (percent_decode(value) == sentinel)
                return refusal(400, "a percent-encoded sentinel is refused");
        }
        joined.append(param);
    }

    out.request.method = child.method;
    out.request.headers.reserve(child.headers.size() + 2);
    for (const auto& f : child.headers) {
        if (hop_by_hop_field(f) || http::iequals(f.name, "Host")) continue;
        // The broker has the whole body before it forwards: an upstream
        // told to answer 100 first would only add an interim response.
        if (http::iequals(f.name, "Expect")) continue;
        if (http::iequals(f.name, "Authorization")) {
            const std::string_view v = f.value;
            if (v.size() > 7 && http::iequals(v.substr(0, 7), "Bearer ") && v.substr(7) == sentinel) {
                std::string bearer;
                bearer.reserve(7 + credential.size());
                bearer.append("Bearer ").append(credential);
                out.request.headers.add("Authorization", bearer);
                explicit_bzero(bearer.data(), bearer.size());
                out.injected_header = true;
                continue;
            }
            if (v.size() > 7 && http::iequals(v.substr(0, 7), "Bearer ") &&
                percent_decode(v.substr(7)) == sentinel)
                return refusal(400, "a percent-encoded sentinel is refused");
        }
        out.request.headers.add(f.name, f.value);
    }
    out.request.headers.set("Host", upstream.host_header());
    out.request.body = child.body;
    return out;
}

bool scrub_response(http::response& res, std::string_view sentinel, std::string_view credential,
                    const net::url& upstream)
{
    return response_scrubber(sentinel, credential, upstream)(res);
}

response_scrubber::response_scrubber(std::string_view sentinel, std::string_view credential,
                                     const net::url& upstream)
    : sentinel_(sentinel),
      credential_(std::string(credential)),
      encoded_(percent_encode(credential)),
      origin_(upstream.origin()),
      short_origin_(upstream.scheme + "://" + upstream.host_header()),
      base_path_(base_path_of(upstream))
{
}

bool response_scrubber::operator()(http::response& res) const
{
    const std::string_view credential = credential_.reveal();
    const std::string_view encoded = encoded_.reveal();
    res.headers.erase_if(hop_by_hop_field);
    for (auto& f : res.headers) {
        std::string& v = f.value;
        const std::string& matched = v.starts_with(origin_) ? origin_ : short_origin_;
        if (http::iequals(f.name, "Location") && v.starts_with(matched)) {
            // Keep the child talking to the broker, never to the upstream.
            std::string_view rest = std::string_view(v).substr(matched.size());
            if (!base_path_.empty() && rest.starts_with(base_path_)) rest.remove_prefix(base_path_.size());
            v = std::string(broker_api_base) + std::string(rest);
        }
        replace_all(v, credential, sentinel_);
        replace_all(v, encoded, sentinel_);
        if (!credential.empty() && holds_credential(v, credential, encoded)) return false;
    }
    // A whole body is one piece with nothing after it: body_scrubber's rule
    // without its copies (this runs for every brokered answer).
    if (credential.empty()) return true;
    replace_all(res.body, credential, sentinel_);
    if (encoded != credential) replace_all(res.body, encoded, sentinel_);
    return !holds_credential(res.body, credential, encoded);
}

body_scrubber::body_scrubber(std::string_view sentinel, std::string_view credential)
    : sentinel_(sentinel), credential_(std::string(credential)), encoded_(percent_encode(credential))
{
    if (!credential.empty()) hold_ = encoded_.size() - 1;  // encoding never shortens
}

std::optional<std::string> body_scrubber::feed(std::string_view piece)
{
    const std::string_view cred = credential_.reveal();
    const std::string_view enc = encoded_.reveal();
    std::string text = std::move(held_);
    held_.clear();
    text.append(piece);
    if (cred.empty()) return text;
    replace_all(text, cred, sentinel_);
    if (enc != cred) replace_all(text, enc, sentinel_);
    // Within the text, and across the boundary with what was handed out.
    const std::string boundary = emitted_tail_ + text.substr(0, hold_);
    if (holds_credential(text, cred, enc) || holds_credential(boundary, cred, enc)) return std::nullopt;
    // Hold back only a tail that could still grow into the credential: an
    // event stream's line must not wait for the next one.
    std::size_t keep = std::min(hold_, text.size());
    for (; keep > 0; --keep) {
        const std::string_view tail = std::string_view(text).substr(text.size() - keep);
        if (cred.starts_with(tail) || enc.starts_with(tail)) break;
    }
    const std::size_t ready = text.size() - keep;
    held_ = text.substr(ready);
    text.resize(ready);
    emitted_tail_ += text.substr(text.size() - std::min(text.size(), hold_));
    if (emitted_tail_.size() > hold_) emitted_tail_.erase(0, emitted_tail_.size() - hold_);
    return text;
}

std::string body_scrubber::finish()
{
    std::string out = std::move(held_);
    held_.clear();
    return out;
}

}  // namespace tether::auth
