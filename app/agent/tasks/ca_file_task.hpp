// The agent's --ca-file, followed while it runs: a CA bundle replaced for a
// CA rotation (the new CA added beside the old, then the old removed) is
// trusted by new connections without restarting every agent of the fleet.
#pragma once

#include "app/common/invocation.hpp"
#include "app/common/supervisor.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/tls.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace tether::app {

/// Reads `file` every `every` on `blocking`. When it holds something other
/// than `in_use` (digest_of its text) and loads, new connections trust what it
/// holds; connections already open keep theirs. A file that cannot be used
/// (gone, empty, garbled) keeps the trust in use, logged once per reason.
/// Runs until cancelled.
awaitable<void> follow_ca_file(std::filesystem::path file, std::string in_use, net::replaceable_tls& tls,
                               asio::any_io_executor blocking, const log::logger& log,
                               std::chrono::milliseconds every = std::chrono::seconds(5));

/// The client context for `inv` (client_tls), held where a `ca-file` task
/// can replace it.
struct followed_client_tls {
    std::shared_ptr<net::replaceable_tls> tls;     ///< null when no URL needs TLS
    std::optional<std::filesystem::path> ca_file;  ///< the --ca-file, when TLS is needed
    std::string digest;                            ///< digest_of the text loaded

    /// With a file to follow, the `ca-file` task on `sup`.
    void add_task(supervisor& sup, asio::any_io_executor blocking, const log::logger& log) const;
};

/// client_tls(inv, needed), and what follow_ca_file needs to follow it.
/// Throws cli::usage_error as client_tls does.
followed_client_tls make_followed_client_tls(const invocation& inv, bool needed);

}  // namespace tether::app
