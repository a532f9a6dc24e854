#include "net/http_client.hpp"

#include "net/errc.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <map>
#include <optional>
#include <tuple>
#include <vector>

namespace tether::net {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using clock = std::chrono::steady_clock;

namespace {

struct connection {
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
    bool reused = false;

    beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

    template <class F>
    auto visit(F&& f)
    {
        return secure ? f(*secure) : f(*plain);
    }

    void close() noexcept
    {
        error_code ignored;
        lowest().socket().close(ignored);
    }
};

error_code normalize(error_code ec)
{
    if (ec == beast::error::timeout) return errc::timeout;
    if (ec == bhttp::error::body_limit) return errc::body_too_large;
    if (ec == bhttp::error::header_limit) return errc::header_too_large;
    return ec;
}

/// A kept-alive connection the server closed while idle fails the next
/// request at once, before any response byte; that request is safe to send
/// again on a fresh connection.
bool stale_connection(error_code ec)
{
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

bhttp::request<bhttp::string_body> to_beast(const url& u, http::request& req, const std::string& user_agent)
{
    bhttp::request<bhttp::string_body> r;
    r.method_string(req.method);
    r.target(req.target);
    r.version(11);
    for (const auto& f : req.headers) r.set(f.name, f.value);
    r.set(bhttp::field::host, u.host_header());
    if (r.find(bhttp::field::user_agent) == r.end()) r.set(bhttp::field::user_agent, user_agent);
    r.body() = std::move(req.body);
    r.keep_alive(true);
    r.prepare_payload();
    return r;
}

template <class Body>
http::response from_beast(bhttp::response<Body>& r)
{
    http::response out;
    out.status = r.result_int();
    for (const auto& f : r) out.headers.add(f.name_string(), f.value());
    return out;
}

/// Idle kept-alive connections by origin. Shared with open streams, which
/// may outlive their client and then close their connection instead.
struct pool {
    std::size_t max_idle_per_origin = 4;
    std::map<std::string, std::vector<std::unique_ptr<connection>>> idle;

    std::unique_ptr<connection> take(const std::string& origin)
    {
        const auto it = idle.find(origin);
        if (it == idle.end() || it->second.empty()) return nullptr;
        auto c = std::move(it->second.back());
        it->second.pop_back();
        c->reused = true;
        return c;
    }

    void give_back(const std::string& origin, std::unique_ptr<connection> c)
    {
        auto& slot = idle[origin];
        if (slot.size() >= max_idle_per_origin) return;  // closes it
        c->lowest().expires_never();
        slot.push_back(std::move(c));
    }
};

class stream_impl final : public body_stream {
public:
    stream_impl(std::unique_ptr<connection> c, std::unique_ptr<bhttp::response_parser<bhttp::buffer_body>> p,
                std::weak_ptr<pool> home, std::string origin)
        : conn_(std::move(c)),
          parser_(std::move(p)),
          head_(from_beast(parser_->get())),
          home_(std::move(home)),
          origin_(std::move(origin))
    {
    }
    ~stream_impl() override
    {
        if (done() && parser_->keep_alive())
            if (const auto p = home_.lock()) {
                p->give_back(origin_, std::move(conn_));
                return;
            }
        conn_->close();
    }

    const http::response& head() const noexcept override { return head_; }
    bool done() const noexcept override { return parser_->is_done(); }

    // Every co_return below names a local: GCC 12 mis-destroys temporaries
    // converted into the coroutine's return type (double free under ASan).
    awaitable<result<std::string>> read_some(std::chrono::milliseconds idle) override
    {
        std::string out;
        while (!parser_->is_done()) {
            parser_->get().body().data = chunk_.get();
            parser_->get().body().size = chunk_size;
            conn_->lowest().expires_after(idle);
            auto [ec, n] = co_await conn_->visit(
                [&](auto& s) { return bhttp::async_read_some(s, conn_->buffer, *parser_, nothrow); });
            if (ec == bhttp::error::need_buffer) ec = {};
            if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) co_return out;
            if (ec) co_return normalize(ec);
            const std::size_t got = chunk_size - parser_->get().body().size;
            if (got > 0) {
                out.assign(chunk_.get(), got);
                co_return out;
            }
        }
        co_return out;
    }

private:
    std::unique_ptr<connection> conn_;
    std::unique_ptr<bhttp::response_parser<bhttp::buffer_body>> parser_;
    http::response head_;
    std::weak_ptr<pool> home_;
    std::string origin_;
    static constexpr std::size_t chunk_size = std::size_t{16} * 1024;
    // Not zeroed: it only ever receives bytes, and most streams (the broker's
    // small answers) are done after one read.
    std::unique_ptr<char[]> chunk_ = std::make_unique_for_overwrite<char[]>(chunk_size);
};

}  // namespace

struct http_client::impl {
    asio::any_io_executor ex;
    std::shared_ptr<asio::ssl::context> tls;
    client_options opts;
    std::shared_ptr<pool> idle;

    awaitable<result<std::unique_ptr<connection>>> connect(const url& u, clock::time_point deadline)
    {
        using namespace asio::experimental::awaitable_operators;
        if (u.tls() && !tls) co_return errc::url_refused;

        asio::ip::tcp::resolver resolver(ex);
        timer limit(ex);
        limit.expires_at(deadline);
        auto resolved =
            co_await (resolver.async_resolve(u.host, std::to_string(u.port), nothrow) || limit.async_wait());
        if (resolved.index() == 1) co_return errc::timeout;
        auto [rec, endpoints] = std::get<0>(std::move(resolved));
        if (rec) co_return rec;

        auto c = std::make_unique<connection>();
        beast::tcp_stream tcp(ex);
        tcp.expires_at(deadline);
        auto [cec, ep] = co_await tcp.async_connect(endpoints, nothrow);
        if (cec) co_return normalize(cec);
        error_code ignored;
        tcp.socket().set_option(asio::ip::tcp::no_delay(true), ignored);

        if (!u.tls()) {
            c->plain.emplace(std::move(tcp));
            co_return c;
        }
        c->secure.emplace(std::move(tcp), *tls);
        auto& s = *c->secure;
        error_code addr_ec;
        (void)asio::ip::make_address(u.host, addr_ec);
        // SNI only for names (RFC 6066 forbids IP literals); verification always.
        // (SSL_set_tlsext_host_name is a macro with an old-style cast; this is its body.)
        if (addr_ec && SSL_ctrl(s.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                const_cast<char*>(u.host.c_str())) != 1)
            co_return error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
        s.set_verify_mode(asio::ssl::verify_peer);
        s.set_verify_callback(asio::ssl::host_name_verification(u.host));
        beast::get_lowest_layer(s).expires_at(deadline);
        auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, nothrow);
        if (hec) co_return normalize(hec);
        co_return c;
    }

    /// Writes `msg` and reads the response (whole, or its header only) on a
    /// kept-alive connection when one is idle, else on a fresh one. A
    /// kept-alive connection the server had closed fails before any response
    /// byte; the request then goes once more on a fresh connection.
    template <class Parser>
    awaitable<result<std::unique_ptr<connection>>> exchange(const url& u, const std::string& origin,
                                                            bhttp::request<bhttp::string_body>& msg,
                                                            clock::time_point deadline, Parser& parser,
                                                            bool header_only)
    {
        // A response to HEAD announces a body it does not send.
        if (msg.method() == bhttp::verb::head) parser.skip(true);
        for (int attempt = 0;; ++attempt) {
            auto conn = attempt == 0 ? idle->take(origin) : nullptr;
            if (!conn) {
                auto fresh = co_await connect(u, deadline);
                if (!fresh) co_return fresh.error();
                conn = std::move(*fresh);
            }
            conn->lowest().expires_at(deadline);
            auto [wec, wn] =
                co_await conn->visit([&](auto& st) { return bhttp::async_write(st, msg, nothrow); });
            if (wec) {
                if (conn->reused && stale_connection(wec)) continue;
                co_return normalize(wec);
            }
            error_code rec;
            if (header_only) {
                std::tie(rec, std::ignore) = co_await conn->visit(
                    [&](auto& st) { return bhttp::async_read_header(st, conn->buffer, parser, nothrow); });
            } else {
                std::tie(rec, std::ignore) = co_await conn->visit(
                    [&](auto& st) { return bhttp::async_read(st, conn->buffer, parser, nothrow); });
            }
            if (rec) {
                if (conn->reused && !parser.got_some() && stale_connection(rec)) continue;
                co_return normalize(rec);
            }
            co_return conn;
        }
    }
};

http_client::http_client(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> tls,
                         client_options opts)
    : impl_(std::make_unique<impl>(
          impl{std::move(ex), std::move(tls), std::move(opts), std::make_shared<pool>()}))
{
    impl_->idle->max_idle_per_origin = impl_->opts.max_idle_per_origin;
}

http_client::~http_client() = default;

void http_client::close_idle() noexcept
{
    impl_->idle->idle.clear();
}

awaitable<result<http::response>> http_client::request(url u, http::request req,
                                                       std::chrono::milliseconds timeout)
{
    auto& s = *impl_;
    const auto deadline = clock::now() + timeout;
    const std::string origin = u.origin();
    auto msg = to_beast(u, req, s.opts.user_agent);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(s.opts.max_body_bytes);
    auto conn = co_await s.exchange(u, origin, msg, deadline, parser, false);
    if (!conn) co_return conn.error();
    auto& res = parser.get();
    http::response out = from_beast(res);
    out.body = std::move(res.body());
    if (res.keep_alive()) s.idle->give_back(origin, std::move(*conn));
    co_return out;
}

awaitable<result<std::unique_ptr<body_stream>>> http_client::open(url u, http::request req,
                                                                  std::chrono::milliseconds header_timeout)
{
    auto& s = *impl_;
    const auto deadline = clock::now() + header_timeout;
    std::string origin = u.origin();
    auto msg = to_beast(u, req, s.opts.user_agent);
    auto parser = std::make_unique<bhttp::response_parser<bhttp::buffer_body>>();
    parser->body_limit(boost::none);  // an event stream has no length
    auto conn = co_await s.exchange(u, origin, msg, deadline, *parser, true);
    if (!conn) co_return conn.error();
    std::unique_ptr<body_stream> out =
        std::make_unique<stream_impl>(std::move(*conn), std::move(parser), s.idle, std::move(origin));
    co_return out;
}

}  // namespace tether::net
