#include "net/request_params.hpp"

#include <charconv>
#include <utility>

namespace tether::net {

keys_param parse_keys_param(std::string_view target)
{
    keys_param out;
    const auto q = target.find('?');
    if (q == std::string_view::npos) return out;
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto param = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (!param.starts_with("keys=")) continue;
        if (out.keys) {
            out.refusal = "keys given more than once";
            return out;
        }
        out.keys.emplace();
        std::string key;
        const auto flush = [&] {
            if (key.empty() || key.size() > max_query_key_length) return false;
            out.keys->push_back(std::exchange(key, {}));
            return out.keys->size() <= max_query_keys;
        };
        const auto value = param.substr(5);
        for (std::size_t i = 0; i < value.size(); ++i) {
            const char c = value[i];
            const bool comma = c == ',' || (c == '%' && value.substr(i + 1, 2) == "2C") ||
                               (c == '%' && value.substr(i + 1, 2) == "2c");
            if (comma) {
                if (c == '%') i += 2;
                if (!flush()) {
                    out.refusal = "keys must be 1 to 64 names of 1 to 128 characters, comma-separated";
                    return out;
                }
                continue;
            }
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '_' || c == '-' || c == '.';
            if (!ok) {
                out.refusal = "keys may hold letters, digits, '_', '-' and '.' only";
                return out;
            }
            key += c;
        }
        if (!flush()) {
            out.refusal = "keys must be 1 to 64 names of 1 to 128 characters, comma-separated";
            return out;
        }
    }
    return out;
}

bool if_none_match(std::string_view header, std::string_view tag)
{
    while (!header.empty()) {
        const auto comma = header.find(',');
        auto one = header.substr(0, comma);
        header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
        while (!one.empty() && (one.front() == ' ' || one.front() == '\t')) one.remove_prefix(1);
        while (!one.empty() && (one.back() == ' ' || one.back() == '\t')) one.remove_suffix(1);
        if (one.starts_with("W/")) one.remove_prefix(2);
        if (one == "*" || one == tag) return true;
    }
    return false;
}

std::optional<std::int64_t> parse_decimal(std::string_view s)
{
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace tether::net
