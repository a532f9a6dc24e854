// Connect-protocol unary calls (JSON codec) over net::http_client.
#pragma once

#include "base/asio.hpp"
#include "base/secret.hpp"
#include "net/connect.hpp"
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
    rpc_client(http_client& http, url base) : http_(http), base_(std::move(base)) {}

    /// POST base/<service>/<method> with `request` as JSON. `bearer` empty:
    /// no Authorization header. Transport failures come back as Connect codes
    /// too: timeout -> deadline_exceeded, cancellation -> canceled, anything
    /// else (refused, reset, TLS) -> unavailable, with the cause in the message.
    awaitable<rpc_result<boost::json::object>> call(std::string service, std::string method,
                                                    boost::json::object request, secret bearer,
                                                    std::chrono::milliseconds timeout);

    [[nodiscard]] const url& base() const noexcept { return base_; }

private:
    http_client& http_;
    url base_;
};

/// Service names of the wire contract.
inline constexpr std::string_view node_service = "tether.v1.NodeService";
inline constexpr std::string_view admin_service = "tether.v1.AdminService";

}  // namespace tether::net
