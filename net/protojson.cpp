#include "net/protojson.hpp"

#include <boost/json/parse.hpp>
#include <boost/throw_exception.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace tether::net::protojson {

namespace {

field_error bad(std::string_view path, std::string what)
{
    return {std::string(path), std::move(what)};
}

constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) noexcept
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;  // protobuf readers accept the URL-safe alphabet too
    if (c == '/' || c == '_') return 63;
    return -1;
}

// Howard Hinnant's days_from_civil: no timegm, no TZ environment.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept
{
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out)
{
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

const boost::json::value* find(const boost::json::object& o, std::string_view key)
{
    const auto* v = o.if_contains(key);
    return (v && !v->is_null()) ? v : nullptr;
}

}  // namespace

void throw_exception_from_error(const field_error& e, const boost::source_location& loc)
{
    boost::throw_exception(std::invalid_argument(e.message()), loc);
}

std::string base64_encode(std::string_view bytes)
{
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    const auto at = [&](std::size_t k) {
        return static_cast<unsigned>(static_cast<unsigned char>(bytes[k]));
    };
    for (; i + 3 <= bytes.size(); i += 3) {
        const unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out += b64[(v >> 18) & 63];
        out += b64[(v >> 12) & 63];
        out += b64[(v >> 6) & 63];
        out += b64[v & 63];
    }
    if (bytes.size() - i == 1) {
        const unsigned v = at(i) << 16;
        out += b64[(v >> 18) & 63];
        out += b64[(v >> 12) & 63];
        out += "==";
    } else if (bytes.size() - i == 2) {
        const unsigned v = (at(i) << 16) | (at(i + 1) << 8);
        out += b64[(v >> 18) & 63];
        out += b64[(v >> 12) & 63];
        out += b64[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

result<std::string> base64_decode(std::string_view text, std::string_view path)
{
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (text.size() % 4 == 1) return bad(path, "not valid base64 (bad length)");
    std::string out;
    out.reserve(text.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    for (const char c : text) {
        const int v = b64_value(c);
        if (v < 0) return bad(path, "not valid base64");
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return out;
}

std::string format_timestamp(sys_time t)
{
    using namespace std::chrono;
    const auto ms = t.time_since_epoch().count();
    std::int64_t secs = ms / 1000;
    std::int64_t frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        --secs;
    }
    std::int64_t days = secs / 86400;
    std::int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        --days;
    }
    // civil_from_days
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const auto doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    char buf[64];
    if (frac == 0)
        std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(y), m, d,
                      static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60),
                      static_cast<int>(rem % 60));
    else
        std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<long long>(y), m,
                      d, static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60),
                      static_cast<int>(rem % 60), static_cast<int>(frac));
    return buf;
}

result<sys_time> parse_timestamp(std::string_view s, std::string_view path)
{
    const auto fail = [&] {
        return bad(path, "not an RFC 3339 timestamp (2026-11-22T10:00:00Z)");
    };
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) || s[13] != ':' ||
        !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
        return fail();
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return fail();
    std::size_t pos = 19;
    std::int64_t millis = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        const std::size_t start = pos;
        int scale = 100;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            millis += (s[pos] - '0') * scale;
            scale /= 10;
            ++pos;
        }
        if (pos == start || pos - start > 9) return fail();
    }
    std::int64_t offset = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
            !digits(s, pos + 4, 2, om))
            return fail();
        offset = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
        pos += 6;
    } else {
        return fail();
    }
    if (pos != s.size()) return fail();
    const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + std::min(sec, 59) - offset;
    return sys_time{std::chrono::milliseconds{secs * 1000 + millis}};
}

result<std::string> get_string(const boost::json::object& o, std::string_view key)
{
    const auto* v = find(o, key);
    if (!v) return std::string{};
    if (!v->is_string()) return bad(key, "must be a string");
    return std::string(v->get_string());
}

result<std::int64_t> get_int64(const boost::json::object& o, std::string_view key)
{
    const auto* v = find(o, key);
    if (!v) return std::int64_t{0};
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) {
        if (v->get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return bad(key, "out of int64 range");
        return static_cast<std::int64_t>(v->get_uint64());
    }
    if (v->is_double()) {
        const double dv = v->get_double();
        if (std::trunc(dv) != dv || std::fabs(dv) > 9.007199254740992e15)
            return bad(key, "must be an integer");
        return static_cast<std::int64_t>(dv);
    }
    if (v->is_string()) {
        const auto& s = v->get_string();
        std::int64_t n = 0;
        const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size())
            return bad(key, "must be an integer");
        return n;
    }
    return bad(key, "must be an integer (number or string)");
}

result<std::int32_t> get_int32(const boost::json::object& o, std::string_view key)
{
    auto v = get_int64(o, key);
    if (!v) return v.error();
    if (*v < std::numeric_limits<std::int32_t>::min() || *v > std::numeric_limits<std::int32_t>::max())
        return bad(key, "out of int32 range");
    return static_cast<std::int32_t>(*v);
}

result<bool> get_bool(const boost::json::object& o, std::string_view key)
{
    const auto* v = find(o, key);
    if (!v) return false;
    if (!v->is_bool()) return bad(key, "must be true or false");
    return v->get_bool();
}

result<std::string> get_bytes(const boost::json::object& o, std::string_view key)
{
    const auto* v = find(o, key);
    if (!v) return std::string{};
    if (!v->is_string()) return bad(key, "must be a base64 string");
    return base64_decode(v->get_string(), key);
}

result<sys_time> get_timestamp(const boost::json::object& o, std::string_view key)
{
    const auto* v = find(o, key);
    if (!v) return sys_time{};
    if (!v->is_string()) return bad(key, "must be an RFC 3339 timestamp string");
    return parse_timestamp(v->get_string(), key);
}

result<std::vector<std::string>> get_strings(const boost::json::object& o, std::string_view key)
{
    const auto* v = find(o, key);
    std::vector<std::string> out;
    if (!v) return out;
    if (!v->is_array()) return bad(key, "must be an array of strings");
    std::size_t i = 0;
    for (const auto& item : v->get_array()) {
        if (!item.is_string())
            return bad(std::string(key) + "[" + std::to_string(i) + "]", "must be a string");
        out.emplace_back(item.get_string());
        ++i;
    }
    return out;
}

result<boost::json::object> parse_object(std::string_view body)
{
    boost::system::error_code ec;
    boost::json::parse_options opts;
    opts.max_depth = max_body_depth;
    auto v = boost::json::parse(body, ec, {}, opts);
    if (ec) return bad("body", "malformed JSON: " + ec.message());
    if (!v.is_object()) return bad("body", "must be a JSON object");
    return std::move(v.get_object());
}

}  // namespace tether::net::protojson
