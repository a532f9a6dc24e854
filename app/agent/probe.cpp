// `tether probe`: one GET of a health endpoint on loopback, for container
// health checks and Kubernetes exec probes. The runtime image has no shell
// and no wget, so the agent's own binary is the probe (of the gateway too:
// --health-listen 127.0.0.1:8443).
#include "app/agent/commands.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/listen_address.hpp"
#include "app/common/one_shot.hpp"
#include "base/utf8.hpp"
#include "net/http_client.hpp"

#include <boost/asio/io_context.hpp>

#include <iostream>

namespace tether::app {

int agent_probe(invocation& inv)
{
    const auto addr =
        parse_listen(inv, "--health-listen", inv.args.value("health-listen").value_or("127.0.0.1:9464"));
    const auto& args = inv.args.positionals();
    if (args.size() > 1) throw cli::usage_error("probe takes one PATH at most");
    const std::string path = args.empty() ? "/livez" : args.front();
    if (path.empty() || path.front() != '/' || path.size() > 256 ||
        path.find_first_of(" \r\n\t") != std::string::npos)
        throw cli::usage_error("PATH must be an absolute path such as /livez or /readyz");
    const auto timeout = inv.args.duration("probe-timeout", cli::at_least(std::chrono::milliseconds(100)))
                             .value_or(std::chrono::seconds(2));
    if (!net::is_loopback_host(addr.text.host))
        throw cli::usage_error(
            "--health-listen: health endpoints listen on loopback only (127.0.0.1, [::1])");
    const auto host =
        addr.text.host.find(':') != std::string::npos ? "[" + addr.text.host + "]" : addr.text.host;
    auto u = net::parse_url("http://" + host + ":" + std::to_string(addr.text.port) + path);
    if (!u) throw cli::usage_error("--health-listen: " + u.error());

    asio::io_context ioc;
    net::http_client http(ioc.get_executor(), nullptr);
    std::string outcome = "no answer";
    bool ok = false;
    run_to_completion(ioc, [&]() -> awaitable<void> {
        net::http::request req;
        req.target = u->target();
        auto r = co_await http.request(*u, req, timeout);
        if (!r) {
            outcome = r.error().message();
            co_return;
        }
        ok = r->status == 200;
        // What a container engine keeps as the check's output: short, and
        // printable whatever the endpoint answered.
        outcome = std::to_string(r->status) + " " + terminal_safe(std::string_view(r->body).substr(0, 200));
    }());
    std::cout << path << ": " << outcome << "\n";
    return ok ? 0 : to_int(exit_status::failure);
}

}  // namespace tether::app
