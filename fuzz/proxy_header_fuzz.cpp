// The PROXY protocol header as a listener behind a balancer reads it (every
// byte hostile if the balancer is not what it should be). Invariants:
// nothing crashes; a complete header lies within the input and within the
// bound, parses the same from its own bytes alone (nothing after it was
// read), and names a client only as an address inet_pton takes back; more
// is never asked for past the bound.
#include "net/proxy_header.hpp"

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ph = tether::net::proxy_header;

namespace {

void check(bool ok)
{
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto p = ph::parse(in);
    if (p.what == ph::status::need_more) check(in.size() < ph::max_length);
    if (p.what == ph::status::invalid) check(!p.reason.empty());
    if (p.what != ph::status::complete) return 0;
    check(p.length > 0 && p.length <= in.size() && p.length <= ph::max_length);
    const auto alone = ph::parse(in.substr(0, p.length));
    check(alone.what == ph::status::complete && alone.length == p.length && alone.address == p.address &&
          alone.port == p.port);
    if (!p.address.empty()) {
        unsigned char raw[16];
        const int family = p.address.find(':') != std::string::npos ? AF_INET6 : AF_INET;
        check(::inet_pton(family, p.address.c_str(), raw) == 1);
    }
    return 0;
}
