// HOST:PORT parsing and the loopback rule the whole wire contract leans on.
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace tether::net {

struct host_port {
    std::string host;  ///< without brackets: "::1", "127.0.0.1", "localhost"
    std::uint16_t port = 0;
};

/// "127.0.0.1:8443", "[::1]:9464", "localhost:80". Port 0 is allowed (the OS
/// picks one). Errors carry a message saying what was wrong.
boost::system::result<host_port, std::string> parse_host_port(std::string_view text);

/// Letters, digits, '-', '.' and '_' (ASCII), not empty: a DNS name or an
/// IPv4 address, and nothing a decoded URL host or a flag could smuggle in
/// ('/', '@', ':', control bytes).
bool is_host_name(std::string_view host) noexcept;

/// 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z), and the name "localhost"
/// (case-insensitive; a trailing dot allowed). Any other name is not
/// loopback, because DNS could point it anywhere.
bool is_loopback_host(std::string_view host) noexcept;

/// What the per-address limits count as one client: an IPv4 address (also
/// written ::ffff:a.b.c.d) as itself, an IPv6 address as its /64
/// ("2001:db8:1:2::/64"), which one subscriber holds whole: counted by
/// address, one host could take 2^64 budgets. Anything else unchanged.
std::string address_group(std::string_view address);

}  // namespace tether::net
