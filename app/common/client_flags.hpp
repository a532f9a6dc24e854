// The flags every client command reads the same way: a server URL and the
// TLS trust (--ca-file) for it. One place, so the agent's enroll, run and
// exec and the gateway's admin commands refuse bad input alike.
#pragma once

#include "app/common/invocation.hpp"
#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "net/server_set.hpp"
#include "net/url.hpp"

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace tether::app {

/// Parses `text` under the URL policy. Throws usage_error naming `origin`.
net::url parse_url_flag(const std::string& text, const std::string& origin);

/// A --server value: one URL, or several comma-separated (replicas without
/// a load balancer), each under the URL policy, shuffled once with `rand`.
/// Throws usage_error naming `origin`.
net::server_set parse_server_list(const std::string& text, const std::string& origin, const uniform01& rand);

/// Some URL of the set is https.
bool any_tls(const net::server_set& servers);

/// The client TLS context for HTTPS URLs: system trust, or --ca-file when
/// given. Null when `needed` is false. Throws usage_error for a CA file that
/// cannot be read.
std::shared_ptr<asio::ssl::context> client_tls(const invocation& inv, bool needed);

}  // namespace tether::app
