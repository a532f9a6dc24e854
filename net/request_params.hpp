// Small request parsers of the agent's local config API (app/agent/
// config_api.cpp), sans-IO so they are fuzzed: the `keys` query parameter,
// If-None-Match, and a decimal version (Last-Event-ID).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::net {

inline constexpr std::size_t max_query_keys = 64;
inline constexpr std::size_t max_query_key_length = 128;

/// `keys` from a request target's query: names of top-level keys,
/// comma-separated (an encoded comma too), each 1 to 128 of A-Z a-z 0-9 _ - .,
/// at most 64. `keys` is nullopt when the parameter is absent; `refusal`
/// says why a present one is refused (then `keys` means nothing).
struct keys_param {
    std::optional<std::vector<std::string>> keys;
    std::string refusal;
};
keys_param parse_keys_param(std::string_view target);

/// An If-None-Match header holds `tag` (exactly, as W/`tag`, or *).
bool if_none_match(std::string_view header, std::string_view tag);

/// A whole decimal int64, nothing around it (Last-Event-ID, a version).
std::optional<std::int64_t> parse_decimal(std::string_view s);

}  // namespace tether::net
