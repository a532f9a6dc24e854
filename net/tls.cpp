#include "net/tls.hpp"

#include "base/whole_file.hpp"
#include "net/errc.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
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

/// Verifies the peer, trusting nothing yet.
std::shared_ptr<ssl::context> client_context()
{
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    common_policy(*ctx);
    ctx->set_verify_mode(ssl::verify_peer);
    return ctx;
}

/// OpenSSL's reason for the failure just seen; its queue is left empty.
std::string openssl_reason()
{
    const auto code = ::ERR_peek_last_error();
    ::ERR_clear_error();
    if (code == 0) return "unknown OpenSSL failure";
    return boost::system::error_code(static_cast<int>(code), boost::asio::error::get_ssl_category())
        .message();
}

constexpr std::size_t pem_limit = std::size_t{1} << 20;

}  // namespace

std::string read_pem_file(const std::filesystem::path& file, std::string_view what)
{
    const auto fail = [&](const std::string& why) {
        return std::runtime_error("cannot load " + std::string(what) + " " + file.string() + ": " + why);
    };
    const int fd = open_for_reading(file);
    if (fd < 0) throw fail(std::strerror(errno));
    // Room for it all at once: a buffer that grows leaves copies of a key
    // behind in freed memory.
    std::string out;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0)
        out.reserve(std::min(static_cast<std::size_t>(st.st_size), pem_limit) + 1);
    std::array<char, 16 * 1024> buf{};
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            ::explicit_bzero(out.data(), out.size());
            throw fail(std::strerror(e));
        }
        if (n == 0) break;
        if (out.size() + static_cast<std::size_t>(n) > pem_limit) {
            ::close(fd);
            ::explicit_bzero(out.data(), out.size());
            throw fail("larger than 1 MiB");
        }
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    ::explicit_bzero(buf.data(), buf.size());
    return out;
}

std::shared_ptr<ssl::context> make_client_tls(const std::optional<std::filesystem::path>& ca_file)
{
    if (ca_file) return make_client_tls_from(read_pem_file(*ca_file, "CA file"), *ca_file);
    auto ctx = client_context();
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("cannot load the system trust store: " + ec.message());
    return ctx;
}

std::shared_ptr<ssl::context> make_client_tls_from(std::string_view ca_pem, const std::filesystem::path& file)
{
    const auto fail = [&](const std::string& why) {
        return std::runtime_error("cannot load CA file " + file.string() + ": " + why);
    };
    if (ca_pem.size() > pem_limit) throw fail("larger than 1 MiB");
    // (An empty view may have no data at all, which a memory BIO refuses.)
    if (ca_pem.empty()) throw fail("no certificate in it");
    auto ctx = client_context();
    // What OpenSSL's file loader does (X509_load_cert_crl_file), on the
    // text already read; like it, with an empty passphrase, so that an
    // encrypted key put in the bundle by mistake never prompts a terminal.
    ::ERR_clear_error();
    const std::unique_ptr<BIO, decltype(&::BIO_free)> bio(
        ::BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())), &::BIO_free);
    if (!bio) throw fail(openssl_reason());
    const auto free_infos = [](STACK_OF(X509_INFO) * s) {
        sk_X509_INFO_pop_free(s, ::X509_INFO_free);
    };
    const std::unique_ptr<STACK_OF(X509_INFO), decltype(free_infos)> infos(
        ::PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, const_cast<char*>("")), free_infos);
    if (!infos) throw fail(openssl_reason());
    X509_STORE* store = ::SSL_CTX_get_cert_store(ctx->native_handle());
    int certificates = 0;
    for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
        const X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
        if (info->x509) {
            if (::X509_STORE_add_cert(store, info->x509) != 1) throw fail(openssl_reason());
            ++certificates;
        }
        if (info->crl && ::X509_STORE_add_crl(store, info->crl) != 1) throw fail(openssl_reason());
    }
    if (certificates == 0) throw fail("no certificate in it");
    return ctx;
}

std::shared_ptr<ssl::context> make_server_tls(const std::filesystem::path& cert_chain,
                                              const std::filesystem::path& private_key)
{
    return make_server_tls(read_server_tls(cert_chain, private_key), cert_chain, private_key);
}

server_tls_pem read_server_tls(const std::filesystem::path& cert_chain,
                               const std::filesystem::path& private_key)
{
    server_tls_pem out;
    out.cert_chain = read_pem_file(cert_chain, "TLS certificate");
    out.private_key = secret(read_pem_file(private_key, "TLS key"));
    return out;
}

std::shared_ptr<ssl::context> make_server_tls(const server_tls_pem& pem,
                                              const std::filesystem::path& cert_chain,
                                              const std::filesystem::path& private_key)
{
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    common_policy(*ctx);
    boost::system::error_code ec;
    ctx->use_certificate_chain(boost::asio::buffer(pem.cert_chain), ec);
    if (ec)
        throw std::runtime_error("cannot load TLS certificate " + cert_chain.string() + ": " + ec.message());
    const auto key = pem.private_key.reveal();
    // OpenSSL checks that the key is the certificate's.
    ctx->use_private_key(boost::asio::buffer(key.data(), key.size()), ssl::context::pem, ec);
    if (ec) throw std::runtime_error("cannot load TLS key " + private_key.string() + ": " + ec.message());
    return ctx;
}

certificate_facts describe_certificate(ssl::context& ctx)
{
    certificate_facts out;
    const X509* cert = SSL_CTX_get0_certificate(ctx.native_handle());
    if (!cert) return out;
    std::array<char, 256> name{};
    X509_NAME_oneline(X509_get_subject_name(cert), name.data(), static_cast<int>(name.size()));
    out.subject = name.data();
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
        std::array<char, 32> text{};
        const auto n = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
        out.not_after.assign(text.data(), n);
        out.not_after_unix = static_cast<std::int64_t>(::timegm(&tm));
    }
    return out;
}

boost::system::error_code prepare_client_session(SSL* ssl, const std::string& host)
{
    boost::system::error_code addr_ec;
    (void)boost::asio::ip::make_address(host, addr_ec);
    // (SSL_set_tlsext_host_name is a macro with an old-style cast; this is its body.)
    if (addr_ec && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                            const_cast<char*>(host.c_str())) != 1)
        return {static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()};
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int named = addr_ec ? X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size())
                              : X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    if (named != 1) return errc::url_refused;
    return {};
}

boost::system::error_code verify_failure(long result)
{
    switch (result) {
        case X509_V_OK:
            return {};
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return errc::tls_expired;
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            return errc::tls_wrong_host;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return errc::tls_unknown_ca;
        default:
            return errc::tls_untrusted;
    }
}

}  // namespace tether::net
