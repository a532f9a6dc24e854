// HOST:PORT flags of listeners.
#pragma once

#include "app/common/invocation.hpp"
#include "base/asio.hpp"
#include "net/host_port.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace tether::app {

struct listen_address {
    net::host_port text;  ///< as given (host may be "localhost")
    asio::ip::tcp::endpoint endpoint;
};

/// Parses the HOST:PORT of flag `flag`; "localhost" means 127.0.0.1. Throws
/// usage_error naming where the value came from.
listen_address parse_listen(const invocation& inv, std::string_view flag, const std::string& text);

}  // namespace tether::app
