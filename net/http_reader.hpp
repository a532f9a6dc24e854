// Sans-IO HTTP/1.1 message readers: bytes in, a request or a response out.
// Every listener and the client read through these, so the strictness rules
// live in one place and one fuzz target covers what a socket would feed:
//
//  * Transfer-Encoding is exactly `chunked` or absent (RFC 9112 6.3: anything
//    else, or together with Content-Length, cannot be framed safely);
//  * HTTP/1.1 requests carry exactly one Host; obs-fold lines are refused;
//  * chunked trailers count against the header limit and are dropped, so
//    nothing in them can authenticate or change how the body is read;
//  * bytes held while waiting for the rest of a header, chunk line or
//    trailer are bounded by the header limit;
//  * nothing throws: a refusal is a value naming the status to answer.
#pragma once

#include "net/http.hpp"

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tether::net::http {

struct read_limits {
    /// Start line and fields, with any trailer fields counted in too.
    std::size_t max_header_bytes = 16 * 1024;
    /// No limit when unset (streamed response bodies).
    std::optional<std::size_t> max_body_bytes = 64 * 1024;
};

enum class read_status { need_more, done, failed };

/// Why a message was refused, and what a server answers.
struct read_failure {
    enum class kind { malformed, header_too_large, body_too_large } what = kind::malformed;
    std::string reason;
    [[nodiscard]] unsigned http_status() const noexcept;
    /// What a server tells the peer: the limit the message went past, or
    /// why it is malformed. Never holds the message's bytes.
    [[nodiscard]] std::string describe(const read_limits& limits) const;
    /// What a client reports for a response it refused: errc::header_too_large,
    /// errc::body_too_large or errc::bad_response.
    [[nodiscard]] boost::system::error_code client_error() const noexcept;
};

struct received_request {
    request message;
    unsigned version = 11;
    bool keep_alive = true;
};

/// One connection's requests, one after another (pipelined bytes are kept).
class request_reader {
public:
    explicit request_reader(read_limits limits);
    ~request_reader();
    request_reader(request_reader&&) noexcept;
    request_reader& operator=(request_reader&&) noexcept;

    /// Takes `bytes` and parses as far as they go.
    read_status feed(std::string_view bytes);
    /// True once any byte of the current request arrived.
    [[nodiscard]] bool started() const noexcept;
    /// Bytes received but not yet parsed (the start of a next request).
    [[nodiscard]] std::size_t buffered() const noexcept;
    [[nodiscard]] const read_failure& failure() const noexcept;
    /// After `done`: the request; the reader then parses what followed it
    /// (call feed({}) to see whether that is already a whole request).
    received_request take();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// One response. The body is either collected whole (up to the body limit)
/// or handed out piece by piece with take_body() as it arrives.
class response_reader {
public:
    /// `head_request`: the answer to a HEAD has no body whatever it says.
    explicit response_reader(read_limits limits, bool head_request = false);
    ~response_reader();
    response_reader(response_reader&&) noexcept;
    response_reader& operator=(response_reader&&) noexcept;

    read_status feed(std::string_view bytes);
    /// The peer closed: completes a body delimited by the close, else fails.
    read_status feed_eof();
    [[nodiscard]] bool got_some() const noexcept;
    [[nodiscard]] bool header_done() const noexcept;
    [[nodiscard]] bool done() const noexcept;
    [[nodiscard]] bool keep_alive() const noexcept;
    [[nodiscard]] const read_failure& failure() const noexcept;
    /// Status and fields once header_done(); body empty (see take_body).
    [[nodiscard]] const response& head() const noexcept;
    /// The status and fields, moved out: head() is empty after this.
    response take_head() noexcept;
    /// Body bytes are waiting for take_body().
    [[nodiscard]] bool has_body() const noexcept;
    /// The body bytes parsed so far and not yet taken.
    std::string take_body();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace tether::net::http
