#include "net/http_client.hpp"

#include "net/errc.hpp"
#include "net/http_reader.hpp"
#include "net/http_writer.hpp"
#include "net/plain_http_endpoints.hpp"
#include "net/tls.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <map>
#include <optional>
#include <tuple>
#include <vector>

namespace tether::net {

namespace beast = boost::beast;
using clock = std::chrono::steady_clock;

namespace {

struct connection {
    std::shared_ptr<asio::ssl::context> tls;  ///< what `secure` was made with, kept as long
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
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
    return ec;
}

/// One read from the server at a time: with the reader's bound on what it
/// holds, memory per response in flight stays small whatever the server sends.
constexpr std::size_t read_chunk = std::size_t{16} * 1024;

/// Reads into `reader` until `enough` holds. A close completes a body that
/// is delimited by it; any other close or error is returned.
template <class F>
awaitable<error_code> read_until(connection& c, http::response_reader& reader, char* buf, F enough)
{
    while (!enough()) {
        auto [ec, n] = co_await c.visit(
            [&](auto& s) { return s.async_read_some(asio::buffer(buf, read_chunk), nothrow); });
        http::read_status st = http::read_status::need_more;
        if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
            if (!reader.got_some()) co_return asio::error::eof;
            st = reader.feed_eof();
        } else if (ec) {
            co_return normalize(ec);
        } else {
            st = reader.feed({buf, n});
        }
        if (st == http::read_status::failed) {
            const error_code failed = reader.failure().client_error();
            co_return failed;
        }
        if (ec) break;  // eof that completed the body
    }
    co_return error_code{};
}

/// The request as sent: Host from the URL, a User-Agent unless the caller
/// gave one, and the framing and Connection the client alone decides (a
/// caller's own would frame the body twice). Nothing when a method, target
/// or field cannot be written safely (CR, LF or NUL in it): the request is
/// not sent at all, so no value can add a field or a second request.
std::optional<std::string> wire_request(const url& u, http::request& req, const std::string& user_agent)
{
    http::drop_framing_fields(req.headers);
    req.headers.set("Host", u.host_header());
    if (!req.headers.get("User-Agent")) req.headers.add("User-Agent", user_agent);
    std::string out;
    out.reserve(256 + req.body.size());
    if (!http::append_request(out, req)) return std::nullopt;
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
    stream_impl(std::unique_ptr<connection> c, http::response_reader r, std::weak_ptr<pool> home,
                std::string origin)
        : conn_(std::move(c)), reader_(std::move(r)), home_(std::move(home)), origin_(std::move(origin))
    {
    }
    ~stream_impl() override
    {
        if (done() && reader_.keep_alive())
            if (const auto p = home_.lock()) {
                p->give_back(origin_, std::move(conn_));
                return;
            }
        conn_->close();
    }

    const http::response& head() const noexcept override { return reader_.head(); }
    bool done() const noexcept override { return reader_.done() && !failed_; }

    // Every co_return below names a local: GCC 12 mis-destroys temporaries
    // converted into the coroutine's return type (double free under ASan).
    awaitable<result<std::string>> read_some(std::chrono::milliseconds idle) override
    {
        std::string out = reader_.take_body();
        if (!out.empty() || reader_.done()) co_return out;
        if (!chunk_) chunk_ = std::make_unique_for_overwrite<char[]>(read_chunk);
        conn_->lowest().expires_after(idle);
        const auto ec = co_await read_until(*conn_, reader_, chunk_.get(),
                                            [this] { return reader_.done() || reader_.has_body(); });
        if (ec == asio::error::eof) co_return out;  // closed before a byte: the end, as before
        if (ec) {
            failed_ = true;
            co_return ec;
        }
        out = reader_.take_body();
        co_return out;
    }

private:
    std::unique_ptr<connection> conn_;
    http::response_reader reader_;
    std::weak_ptr<pool> home_;
    std::string origin_;
    bool failed_ = false;
    // Allocated at the first read: most streams (the broker's small answers)
    // arrive whole with the header.
    std::unique_ptr<char[]> chunk_;
};

}  // namespace

bool stale_connection(error_code ec)
{
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

struct http_client::impl {
    asio::any_io_executor ex;
    std::shared_ptr<replaceable_tls> tls;
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
        auto [rec, resolved_endpoints] = std::get<0>(std::move(resolved));
        if (rec) co_return rec;
        const auto endpoints = permitted_endpoints(u, resolved_endpoints);
        if (endpoints.empty()) co_return errc::not_loopback;

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
        c->tls = tls->current();
        c->secure.emplace(std::move(tcp), *c->tls);
        auto& s = *c->secure;
        if (auto ec = prepare_client_session(s.native_handle(), u.host)) co_return ec;
        s.set_verify_mode(asio::ssl::verify_peer);
        beast::get_lowest_layer(s).expires_at(deadline);
        auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, nothrow);
        if (hec) {
            const error_code why = verify_failure(SSL_get_verify_result(s.native_handle()));
            co_return why ? why : normalize(hec);
        }
        co_return c;
    }

    /// Writes `msg` and reads the response (whole, or its header only) on a
    /// kept-alive connection when one is idle, else on a fresh one. A
    /// kept-alive connection the server had closed fails before any response
    /// byte; the request then goes once more on a fresh connection.
    awaitable<result<std::unique_ptr<connection>>> exchange(const url& u, const std::string& origin,
                                                            const std::string& wire, bool head,
                                                            clock::time_point deadline,
                                                            http::response_reader& reader,
                                                            http::read_limits limits, bool header_only)
    {
        const auto buf = std::make_unique_for_overwrite<char[]>(read_chunk);
        for (int attempt = 0;; ++attempt) {
            auto conn = attempt == 0 ? idle->take(origin) : nullptr;
            if (!conn) {
                auto fresh = co_await connect(u, deadline);
                if (!fresh) co_return fresh.error();
                conn = std::move(*fresh);
            }
            conn->lowest().expires_at(deadline);
            auto [wec, wn] = co_await conn->visit(
                [&](auto& st) { return asio::async_write(st, asio::buffer(wire), nothrow); });
            if (wec) {
                if (conn->reused && stale_connection(wec)) continue;
                co_return normalize(wec);
            }
            // A response to HEAD announces a body it does not send.
            reader = http::response_reader(limits, head);
            const auto rec = co_await read_until(
                *conn, reader, buf.get(), [&] { return header_only ? reader.header_done() : reader.done(); });
            if (rec) {
                if (conn->reused && !reader.got_some() && stale_connection(rec)) continue;
                co_return rec == asio::error::eof ? error_code(errc::bad_response) : rec;
            }
            co_return conn;
        }
    }
};

http_client::http_client(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> tls,
                         client_options opts)
    : http_client(std::move(ex), fixed_tls(std::move(tls)), std::move(opts))
{
}

http_client::http_client(asio::any_io_executor ex, std::nullptr_t, client_options opts)
    : http_client(std::move(ex), std::shared_ptr<replaceable_tls>(), std::move(opts))
{
}

http_client::http_client(asio::any_io_executor ex, std::shared_ptr<replaceable_tls> tls, client_options opts)
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
    const auto wire = wire_request(u, req, s.opts.user_agent);
    if (!wire) co_return errc::unwritable_message;
    const bool head = req.method == "HEAD";
    const http::read_limits limits{s.opts.max_header_bytes, s.opts.max_body_bytes};
    http::response_reader reader(limits);
    auto conn = co_await s.exchange(u, origin, *wire, head, deadline, reader, limits, false);
    if (!conn) co_return conn.error();
    http::response out = reader.head();
    out.body = reader.take_body();
    if (reader.keep_alive()) s.idle->give_back(origin, std::move(*conn));
    co_return out;
}

awaitable<result<std::unique_ptr<body_stream>>> http_client::open(url u, http::request req,
                                                                  std::chrono::milliseconds header_timeout)
{
    auto& s = *impl_;
    const auto deadline = clock::now() + header_timeout;
    std::string origin = u.origin();
    const auto wire = wire_request(u, req, s.opts.user_agent);
    if (!wire) co_return errc::unwritable_message;
    const bool head = req.method == "HEAD";
    const http::read_limits limits{s.opts.max_header_bytes, std::nullopt};  // an event stream has no length
    http::response_reader reader(limits);
    auto conn = co_await s.exchange(u, origin, *wire, head, deadline, reader, limits, true);
    if (!conn) co_return conn.error();
    std::unique_ptr<body_stream> out =
        std::make_unique<stream_impl>(std::move(*conn), std::move(reader), s.idle, std::move(origin));
    co_return out;
}

}  // namespace tether::net
