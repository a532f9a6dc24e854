// What the gateway's RPC handlers return and are given. Errors carry a
// Connect code, never a string: the code picks the HTTP status, and a typo
// is a compile error rather than a 500.
#pragma once

#include "gateway/sessions.hpp"
#include "net/connect.hpp"
#include "net/http_server.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <string>

namespace tether::gateway {

struct rpc_error {
    net::connect::code code = net::connect::code::unknown;
    std::string message;
};
using rpc_result = boost::system::result<boost::json::object, rpc_error>;

inline rpc_error fail(net::connect::code c, std::string message)
{
    return {c, std::move(message)};
}

/// What must hold before a handler runs.
enum class rpc_guard {
    login,    ///< anyone; failures count against the caller's address
    session,  ///< a live node session (Bearer token); `rpc_call::session` is set
    admin,    ///< the admin token
};

struct rpc_call {
    const boost::json::object& in;
    const net::peer_info& peer;
    const session_info* session = nullptr;  ///< set for rpc_guard::session
};

}  // namespace tether::gateway
