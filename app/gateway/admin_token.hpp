// The gateway's admin token file: created 0600 with a random token on first
// start, read (never logged) afterwards.
#pragma once

#include "base/secret.hpp"

#include <filesystem>

namespace tether::app {

/// Reads the token; with `create`, makes the file first when it is absent.
/// Throws std::runtime_error naming the file (missing, empty, or reachable
/// by others or by a group we are not in: a token others can read is not a
/// secret; a group we are in may read it, as a Kubernetes fsGroup does).
secret load_admin_token(const std::filesystem::path& file, bool create, bool* created = nullptr);

}  // namespace tether::app
