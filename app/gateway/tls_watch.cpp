#include "app/gateway/tls_watch.hpp"

#include "base/blocking_call.hpp"

#include <openssl/evp.h>

#include <array>
#include <functional>
#include <memory>
#include <stdexcept>
#include <utility>

namespace tether::app {

namespace {

struct attempt {
    bool unchanged = false;
    std::string digest;
    std::shared_ptr<boost::asio::ssl::context> ctx;
    std::string error;  ///< why there is none; OpenSSL's reason and a path, never the key
};

}  // namespace

std::string tls_digest(const net::server_tls_pem& pem)
{
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    const auto key = pem.private_key.reveal();
    // Lengths first: no two different pairs of files hash the same text.
    const std::array<std::size_t, 2> sizes{pem.cert_chain.size(), key.size()};
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int n = 0;
    if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1 ||
        EVP_DigestUpdate(md.get(), sizes.data(), sizeof sizes) != 1 ||
        EVP_DigestUpdate(md.get(), pem.cert_chain.data(), pem.cert_chain.size()) != 1 ||
        EVP_DigestUpdate(md.get(), key.data(), key.size()) != 1 ||
        EVP_DigestFinal_ex(md.get(), out.data(), &n) != 1)
        throw std::runtime_error("SHA-256 failed");
    return {reinterpret_cast<const char*>(out.data()), n};
}

log::fields certificate_fields(const net::certificate_facts& facts)
{
    return {{"subject", facts.subject}, {"not_after", facts.not_after}};
}

awaitable<void> follow_tls_files(tls_files files, std::string in_use, net::replaceable_tls& tls,
                                 std::function<void(const net::certificate_facts&)> replaced,
                                 asio::any_io_executor blocking, const log::logger& log,
                                 std::chrono::milliseconds every)
{
    const auto ex = co_await asio::this_coro::executor;
    std::string last_error;
    for (;;) {
        timer t{ex, every};
        co_await t.async_wait(use_awaitable);
        std::function<attempt()> load = [files, in_use] {
            attempt a;
            try {
                const auto pem = net::read_server_tls(files.cert_chain, files.private_key);
                a.digest = tls_digest(pem);
                if (a.digest == in_use) {
                    a.unchanged = true;
                    return a;
                }
                a.ctx = net::make_server_tls(pem, files.cert_chain, files.private_key);
            } catch (const std::runtime_error& e) {
                a.error = e.what();
            }
            return a;
        };
        auto a = co_await blocking_call(blocking, std::move(load));
        if (a.unchanged) {
            last_error.clear();
            continue;
        }
        if (!a.ctx) {
            // A renewal half done (the certificate written, the key not yet)
            // or a mistake: serving the certificate in use beats refusing
            // every handshake. The next read tries again.
            if (a.error != last_error)
                log.warn("gateway.tls_unusable", {{"error", a.error}, {"keeps", "the certificate in use"}});
            last_error = std::move(a.error);
            continue;
        }
        last_error.clear();
        const auto facts = net::describe_certificate(*a.ctx);
        tls.replace(std::move(a.ctx));
        in_use = std::move(a.digest);
        log.info("gateway.tls_replaced", certificate_fields(facts));
        if (replaced) replaced(facts);
    }
}

}  // namespace tether::app
