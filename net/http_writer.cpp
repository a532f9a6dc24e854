#include "net/http_writer.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

namespace tether::net::http {

namespace {

bool tchar(unsigned char c) noexcept
{
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20U) >= 'a' && (c | 0x20U) <= 'z') return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

/// A request target: visible ASCII only (no space, no control byte).
bool writable_target(std::string_view s) noexcept
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f;
    });
}

/// The writer frames every message itself: a caller's own Content-Length
/// or Transfer-Encoding could make one write read as two messages.
bool framing_field(std::string_view name) noexcept
{
    return iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding");
}

bool writable_fields(const fields& headers) noexcept
{
    return std::all_of(headers.begin(), headers.end(), [](const fields::field& f) {
        return writable_token(f.name) && writable_value(f.value) && !framing_field(f.name);
    });
}

void append_fields(std::string& out, const fields& headers)
{
    for (const auto& f : headers) out.append(f.name).append(": ").append(f.value).append("\r\n");
}

/// Base 10 or 16, without printf's format parsing (once or twice per message).
void append_number(std::string& out, std::size_t n, int base)
{
    char digits[24];
    const auto r = std::to_chars(std::begin(digits), std::end(digits), n, base);
    out.append(digits, r.ptr);
}

}  // namespace

bool writable_token(std::string_view s) noexcept
{
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return tchar(static_cast<unsigned char>(c)); });
}

bool usable_bearer_token(std::string_view s) noexcept
{
    return !s.empty() && s.size() <= 4096 && std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f;
    });
}

void drop_framing_fields(fields& headers)
{
    headers.erase_if(
        [](const fields::field& f) { return framing_field(f.name) || iequals(f.name, "Connection"); });
}

bool writable_value(std::string_view s) noexcept
{
    return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string_view reason_phrase(unsigned status) noexcept
{
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 203:
            return "Non-Authoritative Information";
        case 204:
            return "No Content";
        case 205:
            return "Reset Content";
        case 206:
            return "Partial Content";
        case 300:
            return "Multiple Choices";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 406:
            return "Not Acceptable";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 410:
            return "Gone";
        case 411:
            return "Length Required";
        case 412:
            return "Precondition Failed";
        case 413:
            return "Payload Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 416:
            return "Range Not Satisfiable";
        case 422:
            return "Unprocessable Entity";
        case 425:
            return "Too Early";
        case 428:
            return "Precondition Required";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "";
    }
}

bool append_request(std::string& out, const request& req)
{
    if (!writable_token(req.method) || !writable_target(req.target) || !writable_fields(req.headers))
        return false;
    out.append(req.method).append(" ").append(req.target).append(" HTTP/1.1\r\n");
    append_fields(out, req.headers);
    const bool expects_body = req.method == "POST" || req.method == "PUT" || req.method == "PATCH";
    if (!req.body.empty() || expects_body) {
        out.append("Content-Length: ");
        append_number(out, req.body.size(), 10);
        out.append("\r\n");
    }
    out.append("\r\n").append(req.body);
    return true;
}

bool append_response_head(std::string& out, unsigned status, const fields& headers, unsigned version,
                          bool keep_alive, framing how, std::size_t length)
{
    if (status < 100 || status > 999 || !writable_fields(headers)) return false;
    out.append(version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ");
    append_number(out, status, 10);
    out.append(" ").append(reason_phrase(status)).append("\r\n");
    append_fields(out, headers);
    switch (how) {
        case framing::length:
            out.append("Content-Length: ");
            append_number(out, length, 10);
            out.append("\r\n");
            break;
        case framing::chunked:
            out.append("Transfer-Encoding: chunked\r\n");
            break;
        case framing::close:
        case framing::none:
            break;
    }
    if (version >= 11 && !keep_alive) out.append("Connection: close\r\n");
    if (version < 11 && keep_alive) out.append("Connection: keep-alive\r\n");
    out.append("\r\n");
    return true;
}

chunk_size_line::chunk_size_line(std::size_t size) noexcept
{
    char* const end = std::to_chars(std::begin(text_), std::end(text_) - 2, size, 16).ptr;
    end[0] = '\r';
    end[1] = '\n';
    length_ = static_cast<std::size_t>(end + 2 - text_);
}

void append_chunk(std::string& out, std::string_view bytes)
{
    if (bytes.empty()) return;
    out.append(chunk_size_line(bytes.size()).view()).append(bytes).append("\r\n");
}

}  // namespace tether::net::http
