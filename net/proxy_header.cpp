#include "net/proxy_header.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>

namespace tether::net::proxy_header {

namespace {

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t v1_max = 107;

/// `bytes` so far agree with `signature` (or are shorter than it and agree).
bool agrees(std::string_view bytes, std::string_view signature)
{
    const auto n = std::min(bytes.size(), signature.size());
    return bytes.substr(0, n) == signature.substr(0, n);
}

parsed invalid(std::string_view why)
{
    parsed p;
    p.what = status::invalid;
    p.reason = why;
    return p;
}

parsed complete(std::size_t length)
{
    parsed p;
    p.what = status::complete;
    p.length = length;
    return p;
}

/// Decimal 0-65535 without a sign or leading zeros (the format's rule).
bool parse_port(std::string_view s, std::uint16_t& out)
{
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    std::uint32_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

/// An address of `family` as inet_ntop writes it, from text or raw bytes.
std::string address_text(int family, const void* raw)
{
    char buf[INET6_ADDRSTRLEN] = {};
    if (::inet_ntop(family, raw, buf, sizeof buf) == nullptr) return {};
    return buf;
}

parsed parse_v1(std::string_view bytes)
{
    const auto end = bytes.find("\r\n");
    if (end == std::string_view::npos) {
        if (bytes.size() >= v1_max) return invalid("a version 1 header longer than 107 bytes");
        // A bare LF or NUL never belongs in the line: no need to wait for more.
        if (bytes.find_first_of(std::string_view("\n\0", 2)) != std::string_view::npos)
            return invalid("a version 1 header with a stray line feed or NUL");
        return {};  // need_more
    }
    const std::size_t length = end + 2;
    if (length > v1_max) return invalid("a version 1 header longer than 107 bytes");
    std::string_view line = bytes.substr(v1_signature.size(), end - v1_signature.size());
    std::array<std::string_view, 6> field{};
    std::size_t n = 0;
    while (!line.empty()) {
        if (n == field.size()) return invalid("a version 1 header with too many fields");
        const auto space = line.find(' ');
        field[n++] = line.substr(0, space);
        if (field[n - 1].empty()) return invalid("a version 1 header with an empty field");
        if (space == std::string_view::npos) break;
        line.remove_prefix(space + 1);
        if (line.empty()) return invalid("a version 1 header with an empty field");
    }
    if (n >= 1 && field[0] == "UNKNOWN") return complete(length);  // the rest is to be ignored
    if (n != 5 || (field[0] != "TCP4" && field[0] != "TCP6"))
        return invalid("a version 1 header that is not TCP4, TCP6 or UNKNOWN with its four fields");
    const int family = field[0] == "TCP4" ? AF_INET : AF_INET6;
    std::array<unsigned char, 16> source{}, destination{};
    const auto address = [family](std::string_view text, std::array<unsigned char, 16>& raw) {
        return text.size() < INET6_ADDRSTRLEN &&
               ::inet_pton(family, std::string(text).c_str(), raw.data()) == 1;
    };
    if (!address(field[1], source) || !address(field[2], destination))
        return invalid("a version 1 header with a bad address");
    std::uint16_t source_port = 0, destination_port = 0;
    if (!parse_port(field[3], source_port) || !parse_port(field[4], destination_port))
        return invalid("a version 1 header with a bad port");
    parsed p = complete(length);
    p.address = address_text(family, source.data());
    p.port = source_port;
    return p;
}

parsed parse_v2(std::string_view bytes)
{
    if (bytes.size() < 16) {
        return {};  // need_more
    }
    const auto byte = [&](std::size_t i) {
        return static_cast<unsigned char>(bytes[i]);
    };
    if ((byte(12) >> 4) != 2) return invalid("a version 2 signature with another version");
    const unsigned command = byte(12) & 0x0F;
    if (command > 1) return invalid("a version 2 header with an unknown command");
    const std::size_t block = (std::size_t{byte(14)} << 8) | byte(15);
    const std::size_t length = 16 + block;
    if (length > max_length) return invalid("a version 2 header longer than 1024 bytes");
    if (bytes.size() < length) {
        return {};  // need_more
    }
    parsed p = complete(length);
    if (command == 0) return p;  // LOCAL: the balancer's own connection
    const unsigned family = byte(13) >> 4, transport = byte(13) & 0x0F;
    if (family > 3 || transport > 2) return invalid("a version 2 header with an unknown address family");
    // UNSPEC, UNIX and datagrams name no TCP client: taken as the
    // balancer's own connection, as the format allows.
    if (transport != 1 || (family != 1 && family != 2)) return p;
    const std::size_t address_bytes = family == 1 ? 4 : 16;
    if (block < 2 * address_bytes + 4) return invalid("a version 2 header shorter than its addresses");
    const char* at = bytes.data() + 16;
    p.address = address_text(family == 1 ? AF_INET : AF_INET6, at);
    p.port =
        static_cast<std::uint16_t>((byte(16 + 2 * address_bytes) << 8) | byte(16 + 2 * address_bytes + 1));
    return p;
}

}  // namespace

parsed parse(std::string_view bytes)
{
    if (bytes.empty()) return {};
    if (agrees(bytes, v1_signature)) {
        if (bytes.size() < v1_signature.size()) return {};
        return parse_v1(bytes);
    }
    if (agrees(bytes, v2_signature)) {
        if (bytes.size() < v2_signature.size()) return {};
        return parse_v2(bytes);
    }
    parsed p;
    p.what = status::absent;
    return p;
}

}  // namespace tether::net::proxy_header
