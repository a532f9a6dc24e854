// URLs: the agent's flags, and the Location header of any server it follows a
// redirect from (hostile). Invariants: nothing crashes; whatever passes the
// policy is http(s), has a port, and is plain http only to loopback; its
// origin and target parse back to the same URL; and no text made for a log or
// an error keeps a query value or userinfo.
#include "net/host_port.hpp"
#include "net/url.hpp"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace net = tether::net;

namespace {

void check(bool ok)
{
    if (!ok) std::abort();
}

// In text made by redact_url or url::redacted: the authority holds no '@'
// but the one after "[redacted]", and every query '=' is followed by
// "[redacted]".
void check_redacted(std::string_view s)
{
    // The authority follows "scheme://" or "//"; without either, the text
    // before the path is taken for it.
    std::string_view rest = s;
    std::size_t scheme = 0;
    while (scheme < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[scheme])) ||
                                    rest[scheme] == '+' || rest[scheme] == '-' || rest[scheme] == '.'))
        ++scheme;
    if (scheme != 0 && std::isalpha(static_cast<unsigned char>(rest[0])) &&
        rest.substr(scheme).starts_with("://"))
        rest.remove_prefix(scheme + 3);
    else if (rest.starts_with("//"))
        rest.remove_prefix(2);
    const auto authority_end = rest.find_first_of("/?#");
    const auto authority = rest.substr(0, authority_end);
    const auto at = authority.find('@');
    if (at != std::string_view::npos) {
        check(authority.substr(0, at + 1) == "[redacted]@");
        check(authority.find('@', at + 1) == std::string_view::npos);
    }
    if (const auto q = s.find('?'); q != std::string_view::npos) {
        const auto query = s.substr(q + 1);
        for (auto eq = query.find('='); eq != std::string_view::npos; eq = query.find('=', eq + 1))
            check(query.substr(eq + 1).starts_with("[redacted]"));
    }
}

void check_policy(const net::url& u)
{
    check(u.scheme == "http" || u.scheme == "https");
    check(u.port != 0);
    check(u.scheme == "https" || net::is_loopback_host(u.host));
    check(!u.host.empty());
    check(u.path.empty() || u.path.front() == '/');
    check_redacted(u.redacted());

    // What the client sends and compares (origin, target) must name this URL.
    const auto again = net::parse_url(u.origin() + u.target());
    check(again.has_value());
    check(again->scheme == u.scheme && again->host == u.host && again->port == u.port);
    check(again->path == (u.path.empty() ? "/" : u.path) && again->query == u.query);
    check(again->origin() == u.origin());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    check_redacted(net::redact_url(in));

    const auto u = net::parse_url(in);
    if (u) check_policy(*u);

    for (const char* base : {"https://gw.example.com:8443/v1/events?x=1", "http://[::1]:9000/a/b"}) {
        const auto b = net::parse_url(base);
        check(b.has_value());
        if (const auto next = net::resolve_location(*b, in)) check_policy(*next);
    }

    if (const auto hp = net::parse_host_port(in)) {
        const bool v6 = hp->host.find(':') != std::string::npos;
        const auto text = (v6 ? "[" + hp->host + "]" : hp->host) + ":" + std::to_string(hp->port);
        const auto again = net::parse_host_port(text);
        check(again && again->host == hp->host && again->port == hp->port);
    }
    return 0;
}
