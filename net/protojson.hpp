// Protobuf JSON mapping helpers (docs/protocol.md section 1), sans-IO: int64 as
// string or number, RFC 3339 timestamps, padded base64 bytes. Decoders
// built on these report the first bad field by name.
#pragma once

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tether::net::protojson {

using sys_time = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

/// A decode failure: which field, and what was wrong with it.
struct field_error {
    // Not an aggregate on purpose: C++20 paren-init would make it
    // constructible from one string, and result<std::string, field_error>
    // could then not tell a value from an error.
    field_error() = default;
    field_error(std::string p, std::string w) : path(std::move(p)), what(std::move(w)) {}
    std::string path;
    std::string what;
    [[nodiscard]] std::string message() const { return path + ": " + what; }
};

template <class T>
using result = boost::system::result<T, field_error>;

/// boost::system::result in 1.81 has no value_or.
template <class T, class U>
T value_or(const result<T>& r, U&& fallback)
{
    return r ? *r : T(std::forward<U>(fallback));
}

/// Lets result<T, field_error>::value() throw (found by ADL): a decode
/// failure where the caller asserted success is a bug.
[[noreturn]] void throw_exception_from_error(const field_error& e, const boost::source_location& loc);

std::string base64_encode(std::string_view bytes);
result<std::string> base64_decode(std::string_view text, std::string_view path);

std::string format_timestamp(sys_time t);
result<sys_time> parse_timestamp(std::string_view text, std::string_view path);

/// Field readers: absent (or null) gives the default value, as protobuf JSON
/// readers do; a present value of the wrong type is an error.
result<std::string> get_string(const boost::json::object& o, std::string_view key);
result<std::int64_t> get_int64(const boost::json::object& o, std::string_view key);
result<std::int32_t> get_int32(const boost::json::object& o, std::string_view key);
result<bool> get_bool(const boost::json::object& o, std::string_view key);
result<std::string> get_bytes(const boost::json::object& o, std::string_view key);
result<sys_time> get_timestamp(const boost::json::object& o, std::string_view key);
result<std::vector<std::string>> get_strings(const boost::json::object& o, std::string_view key);

/// Parses a body that must be one JSON object.
/// How deep a body may nest: a runtime config document (at most
/// settings::max_document_depth levels) inside one wrapper object, as in
/// PublishConfig, GetRuntimeConfig and the node's config file alike.
inline constexpr std::size_t max_body_depth = 33;

/// Parses with max_body_depth as the nesting limit.
result<boost::json::object> parse_object(std::string_view body);

}  // namespace tether::net::protojson
