// WHATWG "UTF-8 decode" with replacement, byte-preserving for valid input.
#pragma once

#include <string>
#include <string_view>

namespace tether {

/// Valid UTF-8 passes through unchanged; each maximal invalid subpart
/// becomes U+FFFD, as a browser's EventSource decodes a stream. Because
/// the decoder never swallows an ASCII byte, decoding each parsed field
/// equals decoding the stream before parsing it.
std::string utf8_replace_invalid(std::string_view in);

/// C0 controls, DEL, or C1 controls (U+0080..U+009F as UTF-8): what can
/// forge lines or drive a terminal when printed.
bool has_control_characters(std::string_view s) noexcept;

/// `s` for a terminal cell: control characters and backslashes shown as
/// \xNN (a C1 as its two bytes), everything else as it is.
std::string terminal_safe(std::string_view s);

/// Serialized JSON (whose strings hold no raw C0: serializers escape it)
/// with every control character written as a \u escape: the same value,
/// and nothing in it that drives a terminal when printed.
std::string terminal_safe_json(std::string_view serialized);

}  // namespace tether
