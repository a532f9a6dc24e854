// The broker's request rewriting and response scrubbing on arbitrary input:
// line 1 is the request target, the rest "Name: value" header lines. Must
// never crash; an injected request has exactly one app_key; a scrubbed
// response holds no credential, whole or scrubbed piece by piece. The
// first three bytes are also a control datagram (streams_requested).
#include "auth/broker_rewrite.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view sentinel = "tether-sentinel-00ff";
constexpr std::string_view credential = "real/cred+=%";
constexpr std::string_view encoded = "real%2Fcred%2B%3D%25";

std::size_t app_keys(std::string_view target)
{
    const auto q = target.find('?');
    if (q == std::string_view::npos) return 0;
    std::size_t n = 0;
    std::string_view rest = target.substr(q + 1);
    for (;;) {
        const auto amp = rest.find('&');
        if (rest.substr(0, amp).starts_with("app_key=") || rest.substr(0, amp) == "app_key") ++n;
        if (amp == std::string_view::npos) return n;
        rest.remove_prefix(amp + 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    tether::net::http::request req;
    const auto nl = text.find('\n');
    req.target = std::string(text.substr(0, nl));
    std::string_view rest = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        const auto line = rest.substr(0, end);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos) req.headers.add(line.substr(0, colon), line.substr(colon + 1));
        if (end == std::string_view::npos) break;
        rest.remove_prefix(end + 1);
    }
    static const auto upstream = *tether::net::parse_url("https://api.example.com/v2");
    const auto out = tether::auth::rewrite_request(req, sentinel, credential, upstream);
    if (out && out->injected_query && app_keys(out->request.target) != 1) std::abort();

    tether::net::http::response res;
    res.body = std::string(text);
    for (const auto& f : req.headers) res.headers.add(f.name, f.value);
    const auto leaks = [](std::string_view s) {
        return s.find(credential) != std::string_view::npos || s.find(encoded) != std::string_view::npos;
    };
    if (tether::auth::scrub_response(res, sentinel, credential, upstream)) {
        if (leaks(res.body)) std::abort();
        for (const auto& f : res.headers)
            if (leaks(f.value)) std::abort();
    }

    // The same body in pieces (cut where the input has a '\x01'): whatever
    // is handed out, joined, never holds the credential; with nothing to
    // replace it is the input unchanged.
    tether::auth::body_scrubber sc(sentinel, credential);
    std::string joined, plain;
    bool refused = false;
    for (std::string_view rest2 = text; !refused;) {
        const auto cut = rest2.find('\x01');
        const auto piece = rest2.substr(0, cut);
        plain += piece;
        auto safe = sc.feed(piece);
        if (!safe)
            refused = true;
        else
            joined += *safe;
        if (cut == std::string_view::npos) break;
        rest2.remove_prefix(cut + 1);
    }
    if (!refused) joined += sc.finish();
    if (leaks(joined)) std::abort();
    if (!refused && !leaks(plain) && joined != plain) std::abort();

    // The input's first bytes as a control datagram: never more streams
    // than one answer may carry, and only from 0x01 alone or 0x02 N.
    const auto datagram = text.substr(0, 3);
    const auto streams = tether::auth::streams_requested(datagram, false, false);
    if (streams > tether::auth::max_control_batch) std::abort();
    if (streams > 0 && datagram != "\x01" && (datagram.size() != 2 || datagram[0] != '\x02')) std::abort();
    if (tether::auth::streams_requested(datagram, true, false) != 0) std::abort();
    return 0;
}
