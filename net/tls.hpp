// TLS contexts with the project's fixed policy: TLS 1.2 minimum, peer
// verification always on for clients (no switch to turn it off).
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <filesystem>
#include <memory>
#include <optional>

namespace tether::net {

/// Trusts the system store, or only `ca_file` (PEM) when given. Hostname
/// verification and SNI are applied per connection by the client. Throws
/// std::runtime_error naming the file when it cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(
    const std::optional<std::filesystem::path>& ca_file);

/// Server side: certificate chain and private key (PEM). Throws naming the file.
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const std::filesystem::path& cert_chain,
                                                           const std::filesystem::path& private_key);

}  // namespace tether::net
