#include "app/gateway/tls_watch.hpp"

#include "app/common/tls_follow.hpp"

#include <utility>

namespace tether::app {

std::string tls_digest(const net::server_tls_pem& pem)
{
    return digest_of({pem.cert_chain, pem.private_key.reveal()});
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
    std::function<tls_reading(const std::string&)> read = [files](const std::string& current) {
        tls_reading r;
        const auto pem = net::read_server_tls(files.cert_chain, files.private_key);
        r.digest = tls_digest(pem);
        if (r.digest != current) r.ctx = net::make_server_tls(pem, files.cert_chain, files.private_key);
        return r;
    };
    std::function<log::fields(boost::asio::ssl::context&)> describe =
        [replaced](boost::asio::ssl::context& ctx) {
            const auto facts = net::describe_certificate(ctx);
            if (replaced) replaced(facts);
            return certificate_fields(facts);
        };
    co_await follow_tls(std::move(read), std::move(in_use), tls, std::move(describe), blocking, log,
                        {"gateway.tls_replaced", "gateway.tls_unusable", "the certificate in use", every});
}

}  // namespace tether::app
