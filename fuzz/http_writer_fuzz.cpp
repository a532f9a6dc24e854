// What the broker writes by hand, read back by the strict readers: a
// message append_request or append_response_head accepts must read as
// exactly one message (no bytes left over: nothing smuggled), with the
// method, target, status, fields and body it was given. Input: line 1 the
// method, line 2 the target, then "Name: value" lines up to an empty line,
// then the body; the first byte also picks the response's status, version,
// keep-alive and framing.
#include "net/http_reader.hpp"
#include "net/http_writer.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace http = tether::net::http;

namespace {

std::string_view trim(std::string_view v)
{
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

/// Every field given, in order and with its value, among those read back.
bool same_fields(const http::fields& given, const http::fields& got)
{
    auto it = got.begin();
    for (const auto& f : given) {
        while (it != got.end() && !(http::iequals(it->name, f.name) && it->value == trim(f.value))) ++it;
        if (it == got.end()) return false;
        ++it;
    }
    return true;
}

std::string_view next_line(std::string_view& rest)
{
    const auto nl = rest.find('\n');
    const auto line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0) return 0;
    const auto mode = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    http::request req;
    req.method = std::string(next_line(rest));
    req.target = std::string(next_line(rest));
    while (!rest.empty()) {
        const auto line = next_line(rest);
        if (line.empty()) break;
        const auto colon = line.find(':');
        req.headers.add(line.substr(0, colon), colon == std::string_view::npos ? "" : line.substr(colon + 1));
    }
    req.body = std::string(rest);

    std::string out;
    if (http::append_request(out, req)) {
        http::request_reader r({64 * 1024, 1 << 20});
        const auto st = r.feed(out);
        if (st == http::read_status::need_more) std::abort();  // the writer wrote all of it
        if (st == http::read_status::done) {
            if (r.buffered() != 0) std::abort();
            const auto got = r.take();
            if (got.message.method != req.method || got.message.target != req.target ||
                got.message.body != req.body || !same_fields(req.headers, got.message.headers))
                std::abort();
        }
    } else if (out.size() != 0) {
        std::abort();  // refused, yet something was written
    }

    // The same fields and body as a response.
    const unsigned status = 100 + mode % 500;
    const unsigned version = mode & 0x80 ? 10 : 11;
    const bool keep = (mode & 0x40) != 0;
    auto how = http::framing::length;
    if (status < 200 || status == 204 || status == 304)
        how = http::framing::none;
    else if (mode & 0x20)
        how = version == 11 ? http::framing::chunked : http::framing::close;
    std::string res;
    if (!http::append_response_head(res, status, req.headers, version, keep, how, req.body.size())) {
        if (!res.empty()) std::abort();
        return 0;
    }
    if (how == http::framing::length) res += req.body;
    if (how == http::framing::chunked) {
        http::append_chunk(res, req.body);
        res += http::last_chunk;
    }
    if (how == http::framing::close) res += req.body;
    http::response_reader r({64 * 1024, std::nullopt});
    auto st = r.feed(res);
    if (st == http::read_status::need_more && how == http::framing::close) st = r.feed_eof();
    if (st == http::read_status::need_more) std::abort();
    if (st == http::read_status::done) {
        if (r.head().status != status || !same_fields(req.headers, r.head().headers)) std::abort();
        const auto body = r.take_body();
        if (how != http::framing::none && body != req.body) std::abort();
        if (how == http::framing::none && !body.empty()) std::abort();
    }
    return 0;
}
