// Where a connection may go among the addresses its host name resolved to.
#pragma once

#include "net/host_port.hpp"
#include "net/url.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <vector>

namespace tether::net {

/// Plain http is allowed only to loopback, but parse_url judged a name:
/// "localhost." is in no /etc/hosts, and a container's may lack
/// "localhost", so either can go to DNS, and its answer would carry the
/// session in clear to wherever it points. For http only loopback
/// addresses are kept (none left: errc::not_loopback); https keeps them all.
template <class Resolved>
std::vector<boost::asio::ip::tcp::endpoint> permitted_endpoints(const url& u, const Resolved& resolved)
{
    std::vector<boost::asio::ip::tcp::endpoint> out;
    // The URL policy's own rule (127/8, ::1, their v4-mapped forms), so the
    // name and the address are judged alike.
    for (const auto& entry : resolved)
        if (u.tls() || is_loopback_host(entry.endpoint().address().to_string()))
            out.push_back(entry.endpoint());
    return out;
}

}  // namespace tether::net
