// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2)
// that a load balancer sends before the client's bytes: sans-IO, so the
// fuzzer reads what a listener would. Behind a balancer every connection
// comes from the balancer's address; this header carries the client's, so
// per-address limits and logs name the client again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tether::net::proxy_header {

/// Version 1 is at most 107 bytes; version 2 is 16 bytes and its address
/// block. Balancers add a few TLVs (ALPN, SNI, a unique ID) to the block;
/// a header longer than this is refused rather than read on.
inline constexpr std::size_t max_length = 1024;

enum class status {
    need_more,  ///< the bytes so far begin a header (or could): read more
    absent,     ///< the bytes begin something else (HTTP, a TLS handshake)
    complete,   ///< a header of `length` bytes
    invalid,    ///< a header that breaks the format: close the connection
};

struct parsed {
    status what = status::need_more;
    std::size_t length = 0;
    /// The client's address ("203.0.113.7", "2001:db8::1", as inet_ntop
    /// writes it) and port. Empty for a header that names no client (v1
    /// UNKNOWN, v2 LOCAL such as a balancer's own health check, v2 UNIX or
    /// UNSPEC): the connection is the balancer's own.
    std::string address;
    std::uint16_t port = 0;
    std::string_view reason;  ///< for `invalid`
};

/// Reads the start of a connection. Never reads past the header, so the
/// caller consumes exactly `length` bytes and hands the rest on.
parsed parse(std::string_view bytes);

}  // namespace tether::net::proxy_header
