#include "net/tls.hpp"

#include <openssl/ssl.h>

#include <stdexcept>

namespace tether::net {

namespace ssl = boost::asio::ssl;

namespace {

void common_policy(ssl::context& ctx)
{
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
    if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1)
        throw std::runtime_error("cannot set TLS 1.2 as the minimum version");
}

}  // namespace

std::shared_ptr<ssl::context> make_client_tls(const std::optional<std::filesystem::path>& ca_file)
{
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    common_policy(*ctx);
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (ca_file) {
        ctx->load_verify_file(ca_file->string(), ec);
        if (ec) throw std::runtime_error("cannot load CA file " + ca_file->string() + ": " + ec.message());
    } else {
        ctx->set_default_verify_paths(ec);
        if (ec) throw std::runtime_error("cannot load the system trust store: " + ec.message());
    }
    return ctx;
}

std::shared_ptr<ssl::context> make_server_tls(const std::filesystem::path& cert_chain,
                                              const std::filesystem::path& private_key)
{
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    common_policy(*ctx);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(cert_chain.string(), ec);
    if (ec)
        throw std::runtime_error("cannot load TLS certificate " + cert_chain.string() + ": " + ec.message());
    ctx->use_private_key_file(private_key.string(), ssl::context::pem, ec);
    if (ec) throw std::runtime_error("cannot load TLS key " + private_key.string() + ": " + ec.message());
    return ctx;
}

}  // namespace tether::net
