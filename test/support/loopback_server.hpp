// A real net::http_server on 127.0.0.1:0 in the test's io_context, with a
// scripted handler.
#pragma once

#include "net/http_server.hpp"
#include "net/url.hpp"
#include "support/log_capture.hpp"
#include "support/run_for.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

namespace tether::test {

/// A text/event-stream reply that writes `body`, then keeps the stream open
/// for `hold` (TCP open, no bytes) and ends it.
inline net::reply sse_reply(std::string body, std::chrono::milliseconds hold = std::chrono::milliseconds(0))
{
    net::reply r;
    r.head.headers.set("Content-Type", "text/event-stream");
    r.head.headers.set("Cache-Control", "no-store");
    r.stream = [body = std::move(body), hold](net::body_writer& w) -> awaitable<error_code> {
        auto ec = co_await w.write(body);
        if (!ec && hold.count() > 0) co_await sleep_for(hold);
        co_return ec;
    };
    return r;
}

class loopback_server {
public:
    loopback_server(asio::io_context& ioc, net::handler h, std::shared_ptr<asio::ssl::context> tls = nullptr,
                    net::server_options opts = {})
        : ioc_(ioc),
          tls_(tls != nullptr),
          server_(ioc.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, std::move(h), logs_.logger(),
                  opts, std::move(tls))
    {
        asio::co_spawn(
            ioc, server_.run(),
            asio::bind_cancellation_slot(stop_.slot(), [this](std::exception_ptr) { done_ = true; }));
    }

    ~loopback_server()
    {
        if (!done_) stop();
    }

    [[nodiscard]] std::uint16_t port() const { return server_.local_endpoint().port(); }

    [[nodiscard]] net::url base(const std::string& host = "127.0.0.1") const
    {
        return *net::parse_url(std::string(tls_ ? "https://" : "http://") + host + ":" +
                               std::to_string(port()));
    }

    /// Cancels the server and runs the context until it has drained.
    void stop()
    {
        stop_.emit(asio::cancellation_type::terminal);
        BOOST_TEST(poll_until(
                       ioc_, [this] { return done_; }, std::chrono::seconds(10)),
                   "server did not drain");
    }

    [[nodiscard]] const log_capture& logs() const { return logs_; }

private:
    asio::io_context& ioc_;
    bool tls_;
    log_capture logs_;
    net::http_server server_;
    asio::cancellation_signal stop_;
    bool done_ = false;
};

}  // namespace tether::test
