#include "net/http_reader.hpp"

#include "net/errc.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <utility>

namespace tether::net::http {

namespace bhttp = boost::beast::http;
using boost::system::error_code;

unsigned read_failure::http_status() const noexcept
{
    switch (what) {
        case kind::header_too_large:
            return 431;
        // 429 with resource_exhausted, as the Connect protocol maps that code.
        case kind::body_too_large:
            return 429;
        case kind::malformed:
            break;
    }
    return 400;
}

std::string read_failure::describe(const read_limits& limits) const
{
    switch (what) {
        case kind::body_too_large:
            return "request body exceeds " + std::to_string(limits.max_body_bytes.value_or(0)) + " bytes";
        case kind::header_too_large:
            return "request header exceeds " + std::to_string(limits.max_header_bytes) + " bytes";
        case kind::malformed:
            break;
    }
    return "malformed HTTP request: " + reason;
}

boost::system::error_code read_failure::client_error() const noexcept
{
    switch (what) {
        case kind::header_too_large:
            return errc::header_too_large;
        case kind::body_too_large:
            return errc::body_too_large;
        case kind::malformed:
            break;
    }
    return errc::bad_response;
}

namespace {

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

template <class View>
std::string_view sv(View v) noexcept
{
    return {v.data(), v.size()};
}

/// Beast's parser with the framing rules of this project on top. Fields and
/// the body go into plain values; trailers are counted, then dropped.
template <bool IsRequest>
class strict_parser final : public bhttp::basic_parser<IsRequest> {
public:
    using base = bhttp::basic_parser<IsRequest>;

    std::string method;
    std::string target;
    unsigned status = 0;
    unsigned version = 11;
    fields headers;
    std::string body;
    std::size_t header_bytes = 0;  // set by the reader when the header completes
    std::size_t max_header_bytes = 0;
    std::string reason;  // ours, when we refused; else Beast's message

private:
    bool in_trailer_ = false;
    std::size_t trailer_bytes_ = 0;
    int transfer_encodings_ = 0;
    int content_lengths_ = 0;
    int hosts_ = 0;

    void refuse(error_code& ec, std::string why)
    {
        reason = std::move(why);
        ec = bhttp::error::bad_value;
    }

    void on_request_impl(bhttp::verb, boost::beast::string_view method_str, boost::beast::string_view t,
                         int v, error_code&) override
    {
        method.assign(sv(method_str));
        target.assign(sv(t));
        version = static_cast<unsigned>(v);
    }

    void on_response_impl(int code, boost::beast::string_view, int v, error_code&) override
    {
        status = static_cast<unsigned>(code);
        version = static_cast<unsigned>(v);
    }

    void on_field_impl(bhttp::field f, boost::beast::string_view name, boost::beast::string_view value,
                       error_code& ec) override
    {
        if (in_trailer_) {
            trailer_bytes_ += name.size() + value.size() + 4;
            if (header_bytes + trailer_bytes_ > max_header_bytes) ec = bhttp::error::header_limit;
            return;
        }
        if (f == bhttp::field::transfer_encoding) {
            ++transfer_encodings_;
            if (!iequals(trim(sv(value)), "chunked"))
                return refuse(ec, "Transfer-Encoding other than exactly chunked");
        }
        if (f == bhttp::field::content_length) ++content_lengths_;
        if (f == bhttp::field::host) ++hosts_;
        // One allocation for a usual header instead of one per doubling,
        // small enough (512 bytes) for the allocator's per-thread cache.
        if (headers.size() == 0) headers.reserve(8);
        headers.add(sv(name), sv(value));
    }

    void on_header_impl(error_code& ec) override
    {
        if (transfer_encodings_ > 1) return refuse(ec, "more than one Transfer-Encoding");
        if (transfer_encodings_ > 0 && content_lengths_ > 0)
            return refuse(ec, "both Transfer-Encoding and Content-Length");
        if constexpr (IsRequest) {
            if (hosts_ > 1) return refuse(ec, "more than one Host");
            if (version >= 11 && hosts_ == 0) return refuse(ec, "no Host in an HTTP/1.1 request");
        }
    }

    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}

    std::size_t on_body_impl(boost::beast::string_view s, error_code&) override
    {
        body.append(s.data(), s.size());
        return s.size();
    }

    void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view, error_code&) override
    {
        if (size == 0) in_trailer_ = true;
    }

    std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view s, error_code&) override
    {
        body.append(s.data(), s.size());
        return s.size();
    }

    void on_finish_impl(error_code&) override {}
};

/// The buffering and the obs-fold scan both parsers share.
template <bool IsRequest>
struct reader_core {
    read_limits limits;
    std::unique_ptr<strict_parser<IsRequest>> parser;
    std::string pending;   // received, not yet consumed by the parser
    std::size_t scan = 0;  // obs-fold scan position in `pending` (header phase)
    bool started = false;
    read_status state = read_status::need_more;
    read_failure failure;

    explicit reader_core(read_limits l) : limits(l) { reset(); }

    void reset()
    {
        parser = std::make_unique<strict_parser<IsRequest>>();
        parser->header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header_bytes, UINT32_MAX)));
        if (limits.max_body_bytes)
            parser->body_limit(static_cast<std::uint64_t>(*limits.max_body_bytes));
        else
            parser->body_limit(boost::none);
        parser->max_header_bytes = limits.max_header_bytes;
        scan = 0;
        started = false;
        state = read_status::need_more;
    }

    read_status fail(read_failure::kind k, std::string why)
    {
        failure = {k, std::move(why)};
        state = read_status::failed;
        return state;
    }

    read_status fail(const error_code& ec)
    {
        if (ec == bhttp::error::header_limit)
            return fail(read_failure::kind::header_too_large,
                        "header exceeds " + std::to_string(limits.max_header_bytes) + " bytes");
        if (ec == bhttp::error::body_limit)
            return fail(read_failure::kind::body_too_large,
                        "body exceeds " + std::to_string(limits.max_body_bytes.value_or(0)) + " bytes");
        return fail(read_failure::kind::malformed, parser->reason.empty() ? ec.message() : parser->reason);
    }

    /// obs-fold: a line of the header that starts with SP or HTAB. Checked
    /// before Beast sees the header, because Beast unfolds such lines.
    bool header_has_fold()
    {
        for (; scan + 1 < pending.size(); ++scan) {
            if (pending[scan] != '\n') continue;
            if (scan >= 3 && pending.compare(scan - 3, 4, "\r\n\r\n") == 0) {
                scan = pending.size();  // header complete: nothing after it is header
                return false;
            }
            const char next = pending[scan + 1];
            if (next == ' ' || next == '\t') return true;
        }
        return false;
    }

    read_status parse(std::string_view bytes)
    {
        if (state != read_status::need_more) return state;
        pending.append(bytes);
        if (!pending.empty()) started = true;
        auto& p = *parser;
        std::size_t used = 0;
        error_code ec;
        try {
            while (!p.is_done() && used < pending.size()) {
                if (!p.is_header_done() && header_has_fold())
                    return fail(read_failure::kind::malformed, "obs-fold line in the header");
                const bool header_was_done = p.is_header_done();
                const auto n =
                    p.put(boost::asio::const_buffer(pending.data() + used, pending.size() - used), ec);
                used += n;
                if (!header_was_done && p.is_header_done()) p.header_bytes = used;
                if (ec == bhttp::error::need_more) {
                    ec = {};
                    break;
                }
                if (ec) return fail(ec);
                if (n == 0) break;
            }
        } catch (const std::exception& e) {
            // Beast throws for fields over 64 KiB; the limits above should
            // keep them out, and this keeps any that slip through a refusal.
            return fail(read_failure::kind::header_too_large, e.what());
        }
        pending.erase(0, used);
        if (scan != 0) scan = scan > used ? scan - used : 0;
        if (p.is_done()) {
            state = read_status::done;
            return state;
        }
        // Whatever waits for the rest of a header, a chunk line or a trailer.
        if (pending.size() > limits.max_header_bytes)
            return fail(read_failure::kind::header_too_large,
                        "header exceeds " + std::to_string(limits.max_header_bytes) + " bytes");
        return state;
    }
};

}  // namespace

struct request_reader::impl : reader_core<true> {
    using reader_core::reader_core;
};

request_reader::request_reader(read_limits limits) : impl_(std::make_unique<impl>(limits)) {}
request_reader::~request_reader() = default;
request_reader::request_reader(request_reader&&) noexcept = default;
request_reader& request_reader::operator=(request_reader&&) noexcept = default;

read_status request_reader::feed(std::string_view bytes)
{
    return impl_->parse(bytes);
}

bool request_reader::started() const noexcept
{
    return impl_->started;
}

std::size_t request_reader::buffered() const noexcept
{
    return impl_->pending.size();
}

const read_failure& request_reader::failure() const noexcept
{
    return impl_->failure;
}

received_request request_reader::take()
{
    auto& p = *impl_->parser;
    received_request out;
    out.message.method = std::move(p.method);
    out.message.target = std::move(p.target);
    out.message.headers = std::move(p.headers);
    out.message.body = std::move(p.body);
    out.version = p.version;
    out.keep_alive = p.keep_alive();
    impl_->reset();
    impl_->started = !impl_->pending.empty();
    return out;
}

struct response_reader::impl : reader_core<false> {
    impl(read_limits l, bool head_request) : reader_core(l)
    {
        if (head_request) parser->skip(true);
    }
    response head;
};

response_reader::response_reader(read_limits limits, bool head_request)
    : impl_(std::make_unique<impl>(limits, head_request))
{
}
response_reader::~response_reader() = default;
response_reader::response_reader(response_reader&&) noexcept = default;
response_reader& response_reader::operator=(response_reader&&) noexcept = default;

read_status response_reader::feed(std::string_view bytes)
{
    auto& s = *impl_;
    const bool had_header = s.parser->is_header_done();
    const auto st = s.parse(bytes);
    if (!had_header && s.parser->is_header_done()) {
        s.head.status = s.parser->status;
        s.head.headers = std::move(s.parser->headers);
    }
    return st;
}

read_status response_reader::feed_eof()
{
    auto& s = *impl_;
    if (s.state != read_status::need_more) return s.state;
    error_code ec;
    s.parser->put_eof(ec);
    if (ec) return s.fail(ec);
    if (!s.parser->is_done()) return s.fail(read_failure::kind::malformed, "connection closed mid-response");
    s.state = read_status::done;
    return s.state;
}

response response_reader::take_head() noexcept
{
    return std::move(impl_->head);
}

bool response_reader::got_some() const noexcept
{
    return impl_->started;
}

bool response_reader::header_done() const noexcept
{
    return impl_->parser->is_header_done();
}

bool response_reader::done() const noexcept
{
    return impl_->state == read_status::done;
}

bool response_reader::keep_alive() const noexcept
{
    return impl_->parser->is_header_done() && impl_->parser->keep_alive();
}

const read_failure& response_reader::failure() const noexcept
{
    return impl_->failure;
}

const response& response_reader::head() const noexcept
{
    return impl_->head;
}

bool response_reader::has_body() const noexcept
{
    return !impl_->parser->body.empty();
}

std::string response_reader::take_body()
{
    return std::exchange(impl_->parser->body, {});
}

}  // namespace tether::net::http
