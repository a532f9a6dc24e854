// WHATWG "UTF-8 decode" with replacement, byte-preserving for valid input.
#pragma once

#include <string>
#include <string_view>

namespace tether::net {

/// Valid UTF-8 passes through unchanged; each maximal invalid subpart
/// becomes U+FFFD, as a browser's EventSource decodes a stream. Because
/// the decoder never swallows an ASCII byte, decoding each parsed field
/// equals decoding the stream before parsing it.
std::string utf8_replace_invalid(std::string_view in);

}  // namespace tether::net
