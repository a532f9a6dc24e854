// Reading a PROXY protocol header off a fresh connection (net/proxy_header
// is the format): only its bytes, so what follows (HTTP, a TLS handshake)
// reaches the server untouched.
#pragma once

#include "base/asio.hpp"
#include "net/proxy_header.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>

namespace tether::net {

/// `absent` when the connection begins with anything but a header, and
/// when nothing arrives within `limit` or before the connection ends (a
/// balancer's connect-only health check); `invalid` for a broken header and
/// for one begun but not complete within `limit`. Never blocks the thread:
/// it peeks, then takes exactly the header's bytes.
awaitable<proxy_header::parsed> read_proxy_header(asio::ip::tcp::socket& socket,
                                                  std::chrono::milliseconds limit);

}  // namespace tether::net
