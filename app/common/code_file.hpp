// An enrollment code read from a file or stdin: the ways of passing one
// that keep it off command lines.
#pragma once

#include "app/common/invocation.hpp"
#include "base/secret.hpp"

#include <string>

namespace tether::app {

/// The code in the file that flag `flag` names (- for stdin): one line of
/// at most 4 KiB, its line end dropped. Anything else is a usage error
/// naming the flag and the file.
secret read_code_file(const invocation& inv, const std::string& flag);

}  // namespace tether::app
