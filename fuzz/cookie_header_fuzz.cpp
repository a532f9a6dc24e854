// Splits arbitrary bytes into Cookie header fields (at '\n') and reads one
// cookie: whatever comes back is bounded, one pair's value (no separator in
// it), and is what a second read of the same fields returns.
#include "net/cookie.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view in(reinterpret_cast<const char*>(data), size);
    tether::net::http::fields headers;
    while (!in.empty()) {
        const auto nl = in.find('\n');
        headers.add(nl % 2 ? "Cookie" : "cookie", in.substr(0, nl));
        if (nl == std::string_view::npos) break;
        in.remove_prefix(nl + 1);
    }
    const auto v = tether::net::http::cookie_value(headers, "tether_console", 128);
    if (v) {
        if (v->empty() || v->size() > 128 || v->find(';') != std::string::npos) std::abort();
        if (tether::net::http::cookie_value(headers, "tether_console", 128) != v) std::abort();
    }
    return 0;
}
