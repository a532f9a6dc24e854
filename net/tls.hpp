// TLS contexts with the project's fixed policy: TLS 1.2 minimum, peer
// verification always on for clients (no switch to turn it off).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace tether::net {

/// Trusts the system store, or only `ca_file` (PEM) when given. Hostname
/// verification and SNI are applied per connection by the client. Throws
/// std::runtime_error naming the file when it cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(
    const std::optional<std::filesystem::path>& ca_file);

/// Server side: certificate chain and private key (PEM). Throws naming the file.
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const std::filesystem::path& cert_chain,
                                                           const std::filesystem::path& private_key);

/// Per connection, before a client handshake to `host` (a name or an IP
/// literal): SNI for names only (RFC 6066 forbids IP literals) and
/// OpenSSL's own name or address check, which leaves the reason in the
/// verify result. The caller still turns peer verification on.
boost::system::error_code prepare_client_session(SSL* ssl, const std::string& host);

/// Why the server's certificate was refused, from OpenSSL's verify result
/// (errc::tls_*); empty when verification was not the problem.
boost::system::error_code verify_failure(long result);

}  // namespace tether::net
