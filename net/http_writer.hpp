// Sans-IO HTTP/1.1 message heads, written by hand: the credential broker's
// hot path sends one contiguous buffer per message instead of running
// Beast's serializer. Names and values come from the message readers (so
// they are already valid); anything else holding CR, LF or NUL is refused
// rather than written, so no value can start a field or a message of its
// own, and so is a Content-Length or Transfer-Encoding field: the writer
// alone frames the body. fuzz/http_writer_fuzz.cpp reads every message it
// writes back with the strict readers.
#pragma once

#include "net/http.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace tether::net::http {

/// How the body after a head is framed.
enum class framing {
    length,   ///< Content-Length, the body follows whole
    chunked,  ///< Transfer-Encoding: chunked
    close,    ///< neither: the body ends when the connection closes
    none,     ///< no body and no length (1xx, 204, 304)
};

/// Appends "METHOD target HTTP/1.1", the fields and Content-Length when
/// there is a body or the method expects one (POST, PUT, PATCH), then the
/// body. False (and `out` unchanged) for a name or value that cannot be
/// written safely.
[[nodiscard]] bool append_request(std::string& out, const request& req);

/// Appends the status line, the fields, the framing, Connection when
/// `keep_alive` differs from the version's default, and the blank line.
/// `length` is used with framing::length only. False (and `out` unchanged)
/// for a field that cannot be written safely.
[[nodiscard]] bool append_response_head(std::string& out, unsigned status, const fields& headers,
                                        unsigned version, bool keep_alive, framing how, std::size_t length);

/// The line that starts a chunk of `size` bytes ("1a\r\n"), for a writer
/// that sends the bytes from where they are instead of copying them.
struct chunk_size_line {
    explicit chunk_size_line(std::size_t size) noexcept;
    [[nodiscard]] std::string_view view() const noexcept { return {text_, length_}; }

private:
    char text_[20];  // 16 hex digits and CR LF
    std::size_t length_;
};

/// One chunk of a chunked body; nothing for empty bytes (that is the end).
void append_chunk(std::string& out, std::string_view bytes);
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

/// The reason phrase HTTP/1.1 servers usually send ("" for unknown codes).
std::string_view reason_phrase(unsigned status) noexcept;

/// A credential a server issued that can go after "Bearer " as it is: 1 to
/// 4096 visible ASCII characters (no space, no control byte). A longer one
/// would crowd the peer's header limit on every request.
[[nodiscard]] bool usable_bearer_token(std::string_view s) noexcept;

/// Drops the fields the writer decides itself (Content-Length,
/// Transfer-Encoding, Connection), for a caller whose fields come from
/// elsewhere (a handler, a caller of the client): kept, the first two are
/// refused and the last would be written twice.
void drop_framing_fields(fields& headers);

/// No status, method or field can be written with this in it.
[[nodiscard]] bool writable_token(std::string_view s) noexcept;
[[nodiscard]] bool writable_value(std::string_view s) noexcept;

}  // namespace tether::net::http
