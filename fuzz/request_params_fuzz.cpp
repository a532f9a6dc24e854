// The local config API's request parsers on arbitrary bytes: keys that come
// back obey the limits and the alphabet; If-None-Match finds a tag in the
// input whenever the input is that tag; a parsed decimal prints back to
// something that parses to it.
#include "net/request_params.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace tether::net;
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    const auto k = parse_keys_param(in);
    if (k.keys && k.refusal.empty()) {
        if (k.keys->empty() || k.keys->size() > max_query_keys) std::abort();
        for (const auto& key : *k.keys) {
            if (key.empty() || key.size() > max_query_key_length) std::abort();
            for (const char c : key) {
                const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                c == '_' || c == '-' || c == '.';
                if (!ok) std::abort();
            }
        }
    }

    const auto split = in.find('\n');
    const auto header = in.substr(0, split);
    const auto tag = split == std::string_view::npos ? std::string_view() : in.substr(split + 1);
    (void)if_none_match(header, tag);
    if (!tag.empty() && tag.find_first_of(", \t") == std::string_view::npos && !tag.starts_with("W/") &&
        !if_none_match(tag, tag))
        std::abort();

    if (const auto v = parse_decimal(in)) {
        const auto again = parse_decimal(std::to_string(*v));
        if (!again || *again != *v) std::abort();
    }
    return 0;
}
