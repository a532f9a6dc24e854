#include "app/common/client_flags.hpp"

#include "net/tls.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <stdexcept>

namespace tether::app {

net::server_set parse_server_list(const std::string& text, const std::string& origin, const uniform01& rand)
{
    std::vector<net::url> urls;
    for (const auto& part : net::split_server_list(text)) urls.push_back(parse_url_flag(part, origin));
    if (urls.empty()) throw cli::usage_error(origin + ": no URL given");
    if (urls.size() > 64) throw cli::usage_error(origin + ": at most 64 URLs");
    if (urls.size() == 1) return net::server_set(urls.front());
    return net::server_set(std::move(urls), rand);
}

bool any_tls(const net::server_set& servers)
{
    const auto all = servers.in_order();
    return std::any_of(all.begin(), all.end(), [](const net::url& u) { return u.tls(); });
}

net::url parse_url_flag(const std::string& text, const std::string& origin)
{
    auto u = net::parse_url(text);
    if (!u) throw cli::usage_error(origin + ": " + u.error());
    return *u;
}

std::shared_ptr<asio::ssl::context> client_tls(const invocation& inv, bool needed)
{
    std::optional<std::filesystem::path> ca;
    if (auto v = inv.args.value("ca-file")) ca = *v;
    if (!needed && !ca) return nullptr;
    try {
        // A --ca-file is read even when every URL is plain http: a wrong
        // path shows now, not on the day the server moves to https.
        auto ctx = net::make_client_tls(ca);
        return needed ? ctx : nullptr;
    } catch (const std::runtime_error& e) {
        throw cli::usage_error(e.what());
    }
}

}  // namespace tether::app
