// `tether sse-decode`: a captured event stream in, one JSON line per event out.
#pragma once

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace tether::app {

/// Reads chunks from `read` (returns an empty string at end of input) and
/// writes one line per event to `write`: {"type":..,"data":..,"id":..}, then
/// {"retry":N} when a retry value was set. Invalid UTF-8 is replaced (U+FFFD)
/// so every line is valid JSON. Stops at the first parse error.
boost::system::error_code sse_decode(const std::function<std::string()>& read,
                                     const std::function<void(std::string_view)>& write,
                                     std::size_t max_event_bytes);

}  // namespace tether::app
