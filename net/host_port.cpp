#include "net/host_port.hpp"

#include "net/http.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace tether::net {

namespace {
boost::system::result<host_port, std::string> fail(const char* why)
{
    return {boost::system::in_place_error, why};
}
}  // namespace

boost::system::result<host_port, std::string> parse_host_port(std::string_view text)
{
    host_port out;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return fail("missing ']' after an IPv6 address");
        out.host = std::string(text.substr(1, close - 1));
        if (close + 1 >= text.size() || text[close + 1] != ':') return fail("missing ':PORT'");
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return fail("missing ':PORT'");
        out.host = std::string(text.substr(0, colon));
        if (out.host.find(':') != std::string::npos)
            return fail("an IPv6 address needs brackets: [::1]:PORT");
        port_text = text.substr(colon + 1);
    }
    if (out.host.empty()) return fail("missing host");
    if (text.starts_with('[')) {
        in6_addr v6{};
        if (::inet_pton(AF_INET6, out.host.c_str(), &v6) != 1)
            return fail("brackets must hold an IPv6 address: [::1]:PORT");
    } else if (!is_host_name(out.host)) {
        return fail(
            "a host may hold only letters, digits, '-', '.' and '_' (an IPv6 address goes in brackets)");
    }
    unsigned long port = 0;
    const auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc{} || ptr != port_text.data() + port_text.size() || port > 65535)
        return fail("port must be a number from 0 to 65535");
    out.port = static_cast<std::uint16_t>(port);
    return out;
}

bool is_host_name(std::string_view host) noexcept
{
    return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '.' || c == '_';
    });
}

bool is_loopback_host(std::string_view host) noexcept
{
    std::string h = http::to_lower(host);
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    if (h == "localhost" || h == "localhost.") return true;
    in_addr v4{};
    if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
    }
    return false;
}

std::string address_group(std::string_view address)
{
    const std::string text(address);
    in6_addr v6{};
    if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return text;
    char buf[INET6_ADDRSTRLEN] = {};
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        ::inet_ntop(AF_INET, &v6.s6_addr[12], buf, sizeof buf);
        return buf;
    }
    std::fill(std::begin(v6.s6_addr) + 8, std::end(v6.s6_addr), std::uint8_t{0});
    ::inet_ntop(AF_INET6, &v6, buf, sizeof buf);
    return std::string(buf) + "/64";
}

}  // namespace tether::net
