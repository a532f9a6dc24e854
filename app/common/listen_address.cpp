#include "app/common/listen_address.hpp"

namespace tether::app {

listen_address parse_listen(const invocation& inv, std::string_view flag, const std::string& text)
{
    const auto hp = net::parse_host_port(text);
    if (!hp) throw cli::usage_error(inv.args.origin(flag) + " '" + text + "': " + hp.error());
    error_code ec;
    const auto addr = asio::ip::make_address(hp->host == "localhost" ? "127.0.0.1" : hp->host, ec);
    if (ec) throw cli::usage_error(inv.args.origin(flag) + " needs an IP address, not '" + hp->host + "'");
    return {*hp, {addr, hp->port}};
}

}  // namespace tether::app
