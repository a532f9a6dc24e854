// Connect-protocol unary calls (JSON codec) over net::http_client.
#pragma once

#include "base/asio.hpp"
#include "base/secret.hpp"
#include "net/connect.hpp"
#include "net/server_set.hpp"
#include "net/url.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <string_view>

namespace tether::net {

class http_client;

template <class T>
using rpc_result = boost::system::result<T, connect::error>;

/// Not thread-safe (uses its http_client's strand).
class rpc_client {
public:
    /// Calls go to `servers.current()`; a failure another replica could
    /// answer (transport, unavailable, deadline_exceeded) moves the set on,
    /// so the caller's next attempt goes to the next replica.
    rpc_client(http_client& http, server_set servers) : http_(http), servers_(std::move(servers)) {}

    /// POST base/<service>/<method> with `request` as JSON. `bearer` empty:
    /// no Authorization header. Transport failures come back as Connect codes
    /// too: timeout -> deadline_exceeded, cancellation -> canceled, anything
    /// else (refused, reset, TLS) -> unavailable, with the cause in the message.
    awaitable<rpc_result<boost::json::object>> call(std::string service, std::string method,
                                                    boost::json::object request, secret bearer,
                                                    std::chrono::milliseconds timeout);

    [[nodiscard]] url base() const { return servers_.current(); }

private:
    http_client& http_;
    server_set servers_;
};

/// Service names of the wire contract.
inline constexpr std::string_view node_service = "tether.v1.NodeService";
inline constexpr std::string_view admin_service = "tether.v1.AdminService";

}  // namespace tether::net
