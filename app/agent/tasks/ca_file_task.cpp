#include "app/agent/tasks/ca_file_task.hpp"

#include "app/common/client_flags.hpp"
#include "app/common/tls_follow.hpp"

#include <functional>
#include <stdexcept>
#include <utility>

namespace tether::app {

std::string ca_file_digest(const std::filesystem::path& file)
{
    return digest_of({net::read_pem_file(file, "CA file")});
}

awaitable<void> follow_ca_file(std::filesystem::path file, std::string in_use, net::replaceable_tls& tls,
                               asio::any_io_executor blocking, const log::logger& log,
                               std::chrono::milliseconds every)
{
    std::function<tls_reading(const std::string&)> read = [file](const std::string& current) {
        tls_reading r;
        // The digest before the load: a file replaced between the two is
        // loaded now and again at the next look, never missed.
        r.digest = ca_file_digest(file);
        if (r.digest != current) r.ctx = net::make_client_tls(file);
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
    if (auto ca = inv.args.value("ca-file"); ca && needed) {
        // Read before the load (see follow_ca_file); a file that cannot be
        // read is client_tls's to report.
        out.ca_file = *ca;
        try {
            out.digest = ca_file_digest(*out.ca_file);
        } catch (const std::runtime_error&) {
        }
    }
    out.tls = net::fixed_tls(client_tls(inv, needed));
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
