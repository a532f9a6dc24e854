#include "app/agent/tasks/ca_file_task.hpp"

#include "app/common/client_flags.hpp"
#include "app/common/tls_follow.hpp"

#include <functional>
#include <stdexcept>
#include <utility>

namespace tether::app {

awaitable<void> follow_ca_file(std::filesystem::path file, std::string in_use, net::replaceable_tls& tls,
                               asio::any_io_executor blocking, const log::logger& log,
                               std::chrono::milliseconds every)
{
    std::function<tls_reading(const std::string&)> read = [file](const std::string& current) {
        // One read, for the digest and for the trust made from it.
        const auto text = net::read_pem_file(file, "CA file");
        tls_reading r;
        r.digest = digest_of({text});
        if (r.digest != current) r.ctx = net::make_client_tls_from(text, file);
        return r;
    };
    const auto shown = std::filesystem::absolute(file).string();
    std::function<log::fields(boost::asio::ssl::context&)> describe = [shown](boost::asio::ssl::context&) {
        return log::fields{{"file", shown}};
    };
    co_await follow_tls(
        std::move(read), std::move(in_use), tls, std::move(describe), blocking, log,
        {"tls.ca_file_replaced", "tls.ca_file_unusable", "the CA certificates in use", every});
}

followed_client_tls make_followed_client_tls(const invocation& inv, bool needed)
{
    followed_client_tls out;
    const auto ca = inv.args.value("ca-file");
    if (!ca || !needed) {
        out.tls = net::fixed_tls(client_tls(inv, needed));
        return out;
    }
    try {
        const auto text = net::read_pem_file(*ca, "CA file");
        out.tls = net::fixed_tls(net::make_client_tls_from(text, *ca));
        out.digest = digest_of({text});
    } catch (const std::runtime_error& e) {
        throw cli::usage_error(e.what());
    }
    out.ca_file = *ca;
    return out;
}

void followed_client_tls::add_task(supervisor& sup, asio::any_io_executor blocking,
                                   const log::logger& log) const
{
    if (!ca_file || !tls) return;
    sup.add("ca-file", [file = *ca_file, digest = digest, tls = tls, blocking = std::move(blocking), &log] {
        return follow_ca_file(file, digest, *tls, blocking, log);
    });
}

}  // namespace tether::app
