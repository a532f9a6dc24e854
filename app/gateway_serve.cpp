#include "app/exit_status.hpp"
#include "app/gateway_commands.hpp"
#include "app/supervisor.hpp"
#include "net/host_port.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>

#include <filesystem>

namespace tether::app {

namespace {

/// Placeholder listener until the HTTP server core lands: it binds, so
/// start-up errors (port in use, bad address) surface now, and accepts and
/// closes connections until cancelled.
awaitable<void> accept_and_close(asio::ip::tcp::endpoint ep, const log::logger& log)
{
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::acceptor acceptor(ex, ep);
    log.info("gateway.listening", {{"address", acceptor.local_endpoint().address().to_string()},
                                   {"port", acceptor.local_endpoint().port()}});
    for (;;) {
        auto socket = co_await acceptor.async_accept(use_awaitable);
        error_code ignored;
        socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    }
}

}  // namespace

int gateway_serve(invocation& inv)
{
    const auto listen_text = inv.args.value("listen").value_or("127.0.0.1:8443");
    const auto listen = net::parse_host_port(listen_text);
    if (!listen)
        throw cli::usage_error(inv.args.origin("listen") + " '" + listen_text + "': " + listen.error());
    const bool tls = inv.args.has("tls-cert") || inv.args.has("tls-key");
    if (tls && !(inv.args.has("tls-cert") && inv.args.has("tls-key")))
        throw cli::usage_error("--tls-cert and --tls-key go together");
    if (!tls && !net::is_loopback_host(listen->host))
        throw cli::usage_error("refusing plain HTTP on non-loopback address '" + listen_text +
                               "': give --tls-cert and --tls-key, or listen on 127.0.0.1 / [::1]");

    const std::filesystem::path data_dir = inv.args.value("data-dir").value_or("./tether-data");
    std::filesystem::create_directories(data_dir);
    std::filesystem::permissions(data_dir, std::filesystem::perms::owner_all);

    supervisor_options opts;
    if (auto v = inv.args.value("threads"))
        opts.threads = static_cast<unsigned>(parse_count(*v, "--threads", 1, 64));
    if (auto v = inv.args.value("drain-timeout")) opts.drain = parse_duration(*v, "--drain-timeout");

    error_code ec;
    const auto address = asio::ip::make_address(listen->host == "localhost" ? "127.0.0.1" : listen->host, ec);
    if (ec) throw cli::usage_error("--listen needs an IP address, not '" + listen->host + "'");
    const asio::ip::tcp::endpoint ep(address, listen->port);

    supervisor sup(inv.log, opts);
    sup.add("http", [ep, &log = inv.log] { return accept_and_close(ep, log); });
    return sup.run();
}

}  // namespace tether::app
