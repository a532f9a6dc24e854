// The agent's --ca-file, followed while it runs: a CA bundle replaced for a
// CA rotation (the new CA added beside the old, then the old removed) is
// trusted by new connections without restarting every agent of the fleet.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/tls.hpp"

#include <chrono>
#include <filesystem>
#include <string>

namespace tether::app {

/// What follow_ca_file compares: a SHA-256 of the file's text. Throws
/// std::runtime_error naming the file when it cannot be read.
std::string ca_file_digest(const std::filesystem::path& file);

/// Reads `file` every `every` on `blocking`. When it holds something other
/// than `in_use` (a ca_file_digest) and loads, new connections trust what it
/// holds; connections already open keep theirs. A file that cannot be used
/// (gone, empty, garbled) keeps the trust in use, logged once per reason.
/// Runs until cancelled.
awaitable<void> follow_ca_file(std::filesystem::path file, std::string in_use, net::replaceable_tls& tls,
                               asio::any_io_executor blocking, const log::logger& log,
                               std::chrono::milliseconds every = std::chrono::seconds(5));

}  // namespace tether::app
