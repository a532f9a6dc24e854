// Where a connection may go among the addresses its host name resolved to.
#pragma once

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
    for (const auto& entry : resolved) {
        const auto a = entry.endpoint().address();
        const bool loopback =
            a.is_loopback() ||
            (a.is_v6() && a.to_v6().is_v4_mapped() &&
             boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).is_loopback());
        if (u.tls() || loopback) out.push_back(entry.endpoint());
    }
    return out;
}

}  // namespace tether::net
