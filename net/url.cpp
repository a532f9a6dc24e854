#include "net/url.hpp"

#include "net/host_port.hpp"
#include "net/http.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>

namespace tether::net {

namespace {

using url_result = boost::system::result<url, std::string>;

url_result refuse(std::string_view text, std::string_view rule)
{
    return {boost::system::in_place_error, "refusing URL '" + redact_url(text) + "': " + std::string(rule)};
}

std::string redact_query(std::string_view q)
{
    std::string out;
    std::size_t start = 0;
    while (start <= q.size()) {
        const auto amp = q.find('&', start);
        const auto part =
            q.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
        if (!out.empty()) out.push_back('&');
        const auto eq = part.find('=');
        out.append(part.substr(0, eq));
        if (eq != std::string_view::npos) out.append("=[redacted]");
        if (amp == std::string_view::npos) break;
        start = amp + 1;
    }
    return out;
}

// RFC 3986 scheme plus its ':' ("https:"), or 0.
std::size_t scheme_length(std::string_view s)
{
    const auto alpha = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    };
    if (s.empty() || !alpha(s.front())) return 0;
    std::size_t i = 1;
    while (i < s.size() &&
           (alpha(s[i]) || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        ++i;
    return i < s.size() && s[i] == ':' ? i + 1 : 0;
}

url_result from_view(std::string_view text, const boost::urls::url_view& u)
{
    if (!u.has_scheme()) return refuse(text, "no scheme (use https://HOST[:PORT])");
    const std::string scheme = http::to_lower(u.scheme());
    if (scheme != "http" && scheme != "https")
        return refuse(text, "only https (or http to loopback) is allowed");
    if (u.has_userinfo())
        return refuse(text, "credentials in the URL are not allowed (userinfo); pass them separately");
    if (!u.has_authority() || u.encoded_host().empty()) return refuse(text, "no host");
    // Boost.URL 1.81 reads "http://127.0.0.1.nip.io/" as host 127.0.0.1 with
    // path ".nip.io/": after an authority, RFC 3986 only allows an empty path
    // or one starting with '/', so that shape means the host was misread.
    if (!u.encoded_path().empty() && u.encoded_path().front() != '/') return refuse(text, "malformed host");
    url out;
    out.scheme = scheme;
    switch (u.host_type()) {
        case boost::urls::host_type::ipv4:
        case boost::urls::host_type::ipv6:
            out.host = u.host_address();
            break;
        case boost::urls::host_type::name:
            // Decoded, a name could hold '/', '@', ':' or control bytes
            // ("%2F", "%00"): origin(), the Host header and the resolver
            // would each read a different host.
            out.host = http::to_lower(u.host_name());
            if (!is_host_name(out.host))
                return refuse(text, "a host name may hold only letters, digits, '-', '.' and '_'");
            // Encoded letters are the same name, but "%341.0.0.127." decodes to
            // "41.0.0.127.", which origin() would write out for Boost.URL to
            // read back as an IPv4 address and a path (found by fuzz_url). The
            // decoded name must read back as itself.
            if (const auto again = boost::urls::parse_authority(out.host);
                !again || again->host_type() != boost::urls::host_type::name)
                return refuse(text, "malformed host");
            break;
        default:
            return refuse(text, "unsupported host form");
    }
    if (u.has_port()) {
        if (u.port().empty() || u.port_number() == 0) return refuse(text, "bad port");
        out.port = u.port_number();
    } else {
        out.port = scheme == "https" ? 443 : 80;
    }
    if (scheme == "http" && !is_loopback_host(out.host))
        return refuse(text,
                      "plain http is allowed only to loopback (127.0.0.0/8, ::1, localhost); use https");
    out.path = std::string(u.encoded_path());
    if (u.has_query()) out.query = std::string(u.encoded_query());
    return out;
}

}  // namespace

std::string url::origin() const
{
    const bool v6 = host.find(':') != std::string::npos;
    return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string url::target() const
{
    std::string t = path.empty() ? "/" : path;
    if (!query.empty()) t += "?" + query;
    return t;
}

std::string url::host_header() const
{
    const bool v6 = host.find(':') != std::string::npos;
    std::string h = v6 ? "[" + host + "]" : host;
    const bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
    if (!default_port) h += ":" + std::to_string(port);
    return h;
}

std::string url::redacted() const
{
    const bool v6 = host.find(':') != std::string::npos;
    std::string s = scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + path;
    if (!query.empty()) s += "?" + redact_query(query);
    return s;
}

url url::with_path(std::string_view suffix) const
{
    url out = *this;
    std::string base = path;
    while (!base.empty() && base.back() == '/') base.pop_back();
    out.path = base + std::string(suffix);
    out.query.clear();
    return out;
}

url_result parse_url(std::string_view text)
{
    const auto parsed = boost::urls::parse_uri(text);
    if (!parsed) return refuse(text, "not a valid absolute URL");
    return from_view(text, *parsed);
}

std::string redact_url(std::string_view text)
{
    // Userinfo is everything before the last '@' of the authority. Without a
    // "//" the whole text before the path is taken for it: "bob:pw@host" and
    // "https:bob:pw@host" are typos a refusal must not echo either.
    std::string out;
    std::size_t start = 0;
    if (const auto n = scheme_length(text); n != 0 && text.substr(n).starts_with("//"))
        start = n + 2;
    else if (text.starts_with("//"))
        start = 2;
    out.append(text.substr(0, start));
    std::string_view rest = text.substr(start);
    const auto at = rest.substr(0, rest.find_first_of("/?#")).rfind('@');
    if (at != std::string_view::npos) {
        out.append("[redacted]@");
        rest.remove_prefix(at + 1);
    }
    const auto hash = rest.find('#');
    if (hash != std::string_view::npos) rest = rest.substr(0, hash);
    const auto q = rest.find('?');
    if (q == std::string_view::npos) return out + std::string(rest);
    out.append(rest.substr(0, q + 1));
    out.append(redact_query(rest.substr(q + 1)));
    return out;
}

url_result resolve_location(const url& base, std::string_view location)
{
    const auto ref = boost::urls::parse_uri_reference(location);
    if (!ref) return refuse(location, "redirect Location is not a valid URL");
    boost::urls::url base_url;
    base_url.set_scheme(base.scheme);
    base_url.set_host_address(base.host);
    base_url.set_port_number(base.port);
    base_url.set_encoded_path(base.path.empty() ? "/" : base.path);
    boost::urls::url resolved;
    if (const auto rv = boost::urls::resolve(base_url, *ref, resolved); !rv)
        return refuse(location, "redirect Location cannot be resolved");
    return from_view(resolved.buffer(), resolved);
}

}  // namespace tether::net
