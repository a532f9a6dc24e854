#include "app/common/client_flags.hpp"

#include "net/tls.hpp"

#include <filesystem>
#include <optional>
#include <stdexcept>

namespace tether::app {

net::url parse_url_flag(const std::string& text, const std::string& origin)
{
    auto u = net::parse_url(text);
    if (!u) throw cli::usage_error(origin + ": " + u.error());
    return *u;
}

std::shared_ptr<asio::ssl::context> client_tls(const invocation& inv, bool needed)
{
    if (!needed) return nullptr;
    std::optional<std::filesystem::path> ca;
    if (auto v = inv.args.value("ca-file")) ca = *v;
    try {
        return net::make_client_tls(ca);
    } catch (const std::runtime_error& e) {
        throw cli::usage_error(e.what());
    }
}

}  // namespace tether::app
