#include "net/proxy_header_read.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <array>

namespace tether::net {

namespace {

proxy_header::parsed refused(std::string_view why)
{
    proxy_header::parsed p;
    p.what = proxy_header::status::invalid;
    p.reason = why;
    return p;
}

/// Nothing at all arrived: a balancer's connect-only health check, or its
/// own idle connection. Not a broken header: the server serves it as any
/// other connection (and sees its end, or applies its own timeouts).
proxy_header::parsed nothing_yet(asio::ip::tcp::socket& socket)
{
    error_code ec;
    socket.non_blocking(false, ec);
    proxy_header::parsed p;
    p.what = proxy_header::status::absent;
    return p;
}

}  // namespace

awaitable<proxy_header::parsed> read_proxy_header(asio::ip::tcp::socket& socket,
                                                  std::chrono::milliseconds limit)
{
    using namespace asio::experimental::awaitable_operators;
    const auto ex = co_await asio::this_coro::executor;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::array<char, proxy_header::max_length> buf{};
    error_code ec;
    // A peek must never wait on the thread: without data it says so.
    socket.non_blocking(true, ec);
    std::size_t seen = 0;
    for (;;) {
        timer t{ex};
        t.expires_at(deadline);
        if (seen == 0) {
            auto woke = co_await (socket.async_wait(asio::socket_base::wait_read, nothrow) || t.async_wait());
            if (woke.index() == 1) co_return nothing_yet(socket);
        } else {
            // Part of a header is queued, so the socket stays readable:
            // pause instead of spinning until the rest arrives.
            t.expires_at(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)));
            co_await t.async_wait();
            if (std::chrono::steady_clock::now() >= deadline)
                co_return refused("no complete PROXY header within the header timeout");
        }
        const auto n = socket.receive(asio::buffer(buf), asio::socket_base::message_peek, ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
        if (ec || n == 0) {
            if (seen == 0) co_return nothing_yet(socket);
            co_return refused("the connection ended inside its PROXY header");
        }
        auto p = proxy_header::parse(std::string_view(buf.data(), n));
        if (p.what == proxy_header::status::need_more) {
            if (n == buf.size()) co_return refused("a PROXY header longer than 1024 bytes");
            seen = n;
            continue;
        }
        if (p.what == proxy_header::status::complete) {
            // Queued already (peeked): one receive takes exactly these.
            std::size_t taken = 0;
            while (taken < p.length) {
                const auto got = socket.receive(asio::buffer(buf.data() + taken, p.length - taken), 0, ec);
                if (ec || got == 0) co_return refused("the connection ended inside its PROXY header");
                taken += got;
            }
        }
        socket.non_blocking(false, ec);
        co_return p;
    }
}

}  // namespace tether::net
