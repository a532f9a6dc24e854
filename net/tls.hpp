// TLS contexts with the project's fixed policy: TLS 1.2 minimum, peer
// verification always on for clients (no switch to turn it off).
#pragma once

#include "base/secret.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tether::net {

/// Trusts the system store, or only `ca_file` (PEM, read as
/// make_client_tls_from reads it) when given. Hostname verification and SNI
/// are applied per connection by the client. Throws std::runtime_error
/// naming the file when it cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(
    const std::optional<std::filesystem::path>& ca_file);

/// Trusts only the certificates in `ca_pem`, a CA bundle's text (at most
/// 1 MiB, as read_pem_file reads it): made from what was read, so a file
/// replaced meanwhile cannot be loaded instead. CRLs in it are kept in the
/// store, as OpenSSL's file loader keeps them. Throws std::runtime_error
/// ("cannot load CA file `file`: why") when a block is garbled or no
/// certificate is in it: such a bundle would fail every handshake.
std::shared_ptr<boost::asio::ssl::context> make_client_tls_from(std::string_view ca_pem,
                                                                const std::filesystem::path& file);

/// Server side: certificate chain and private key (PEM). Throws naming the file.
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const std::filesystem::path& cert_chain,
                                                           const std::filesystem::path& private_key);

/// A PEM file read whole, at most 1 MiB (a chain is a few kilobytes; a path
/// that names something else, a device or a log, must not be read whole).
/// Throws std::runtime_error: "cannot load `what` FILE: why".
std::string read_pem_file(const std::filesystem::path& file, std::string_view what);

/// The same in two steps, for a server that follows its files: what was
/// read, then the context made from it.
struct server_tls_pem {
    std::string cert_chain;
    secret private_key;
};
/// At most 1 MiB of each file. Throws std::runtime_error naming the file.
server_tls_pem read_server_tls(const std::filesystem::path& cert_chain,
                               const std::filesystem::path& private_key);
/// Throws std::runtime_error naming the file (of the two given) that is refused.
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const server_tls_pem& pem,
                                                           const std::filesystem::path& cert_chain,
                                                           const std::filesystem::path& private_key);

/// A server certificate's subject and end of validity (ISO 8601, UTC), for
/// the log; empty when the context has none.
struct certificate_facts {
    std::string subject;
    std::string not_after;
    std::int64_t not_after_unix = 0;  ///< seconds since the epoch; 0: unknown
};
certificate_facts describe_certificate(boost::asio::ssl::context& ctx);

/// A server's TLS context that may be replaced while it serves (a renewed
/// certificate): each handshake starts with the one current then, and
/// connections already made keep theirs. Thread safety: any thread.
class replaceable_tls {
public:
    explicit replaceable_tls(std::shared_ptr<boost::asio::ssl::context> ctx) : ctx_(std::move(ctx)) {}
    [[nodiscard]] std::shared_ptr<boost::asio::ssl::context> current() const
    {
        const std::lock_guard lock(m_);
        return ctx_;
    }
    void replace(std::shared_ptr<boost::asio::ssl::context> ctx)
    {
        const std::lock_guard lock(m_);
        ctx_ = std::move(ctx);
    }

private:
    mutable std::mutex m_;
    std::shared_ptr<boost::asio::ssl::context> ctx_;
};

/// `ctx` where a replaceable_tls is taken, for a context nothing replaces;
/// null stays null.
inline std::shared_ptr<replaceable_tls> fixed_tls(std::shared_ptr<boost::asio::ssl::context> ctx)
{
    return ctx ? std::make_shared<replaceable_tls>(std::move(ctx)) : nullptr;
}

/// Per connection, before a client handshake to `host` (a name or an IP
/// literal): SNI for names only (RFC 6066 forbids IP literals) and
/// OpenSSL's own name or address check, which leaves the reason in the
/// verify result. The caller still turns peer verification on.
boost::system::error_code prepare_client_session(SSL* ssl, const std::string& host);

/// Why the server's certificate was refused, from OpenSSL's verify result
/// (errc::tls_*); empty when verification was not the problem.
boost::system::error_code verify_failure(long result);

}  // namespace tether::net
