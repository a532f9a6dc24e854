// Connect error replies for servers that speak the RPC protocol (the
// gateway, test gateways). The HTTP server itself does not know it.
#pragma once

#include "net/connect.hpp"
#include "net/http_server.hpp"

#include <string_view>

namespace tether::net::connect {

/// {"code","message"} with the status the contract assigns to `c`.
reply error_reply(code c, std::string_view message);

/// The same body with another status (405 for a wrong method, 415 for a
/// wrong content type: HTTP-level answers that still carry a Connect code).
reply error_reply(unsigned status, code c, std::string_view message);

/// What the gateway's HTTP server answers for a request it refuses before
/// any handler (server_options::refusal): the same statuses, Connect bodies.
reply refusal_reply(unsigned status, std::string_view reason);

}  // namespace tether::net::connect
