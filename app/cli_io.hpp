// Small I/O helpers shared by the subcommands: a private event loop for
// commands that make a few calls and exit, and listen-address parsing.
#pragma once

#include "app/dispatch.hpp"
#include "net/asio.hpp"
#include "net/host_port.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace tether::app {

/// Runs `op` to completion on `ioc`; an exception it throws is rethrown here
/// rather than lost (one-shot commands: enroll, admin, status).
void run_to_completion(asio::io_context& ioc, awaitable<void> op);

struct listen_address {
    net::host_port text;  ///< as given (host may be "localhost")
    asio::ip::tcp::endpoint endpoint;
};

/// Parses the HOST:PORT of flag `flag`; "localhost" means 127.0.0.1. Throws
/// usage_error naming where the value came from.
listen_address parse_listen(const invocation& inv, std::string_view flag, const std::string& text);

}  // namespace tether::app
