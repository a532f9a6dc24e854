// The Connect protocol's unary JSON conventions (docs/protocol.md section 1),
// sans-IO: codes, the code <-> HTTP status tables, error bodies.
#pragma once

#include <boost/system/error_code.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace tether::net::connect {

enum class code {
    canceled,
    unknown,
    invalid_argument,
    deadline_exceeded,
    not_found,
    already_exists,
    permission_denied,
    resource_exhausted,
    failed_precondition,
    aborted,
    out_of_range,
    unimplemented,
    internal,
    unavailable,
    data_loss,
    unauthenticated,
};

std::string_view to_string(code c) noexcept;

/// Connect codes as error_codes (category "tether.connect"), for interfaces
/// that speak error_code and must not lose which code it was.
const boost::system::error_category& connect_category() noexcept;
inline boost::system::error_code make_error_code(code c) noexcept
{
    return {static_cast<int>(c) + 1, connect_category()};  // + 1: 0 means success
}
std::optional<code> parse_code(std::string_view s) noexcept;

/// The status a server sends for `c`.
unsigned http_status(code c) noexcept;

/// What a client infers from a status when the body is not a Connect error:
/// 400 internal, 401 unauthenticated, 403 permission_denied,
/// 404 unimplemented, 429/502/503/504 unavailable, anything else unknown.
code code_from_status(unsigned status) noexcept;

/// A failed RPC as the caller sees it. `message` is the peer's text (data,
/// never to be interpolated into markup) or ours for transport failures.
struct error {
    code c = code::unknown;
    std::string message;
    /// The code came in a Connect error body, not guessed from the HTTP
    /// status (a proxy's 403 page is no statement of the contract).
    bool explicit_code = false;
};

/// A server's error message is kept to this many bytes (logged on every failure).
inline constexpr std::size_t max_error_message_bytes = 512;

/// Decodes a non-200 response: the JSON error body when there is one,
/// otherwise the status fallback table.
error decode_error(unsigned status, std::string_view body);

/// {"code":"...","message":"..."}
std::string encode_error(const error& e);

inline constexpr std::string_view protocol_version_header = "Connect-Protocol-Version";
inline constexpr std::string_view timeout_header = "Connect-Timeout-Ms";

}  // namespace tether::net::connect

template <>
struct boost::system::is_error_code_enum<tether::net::connect::code> : std::true_type {
};
