// The admin token file, followed while the gateway serves: replacing its
// contents (by hand, or a Kubernetes Secret update) rotates the token
// without a restart.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"

#include <chrono>
#include <filesystem>

namespace tether::gateway {
class service;
}

namespace tether::app {

/// Reads `file` every `every` on `blocking` and hands a changed token to
/// `svc` (service::replace_admin_token). A file that cannot be used (gone,
/// empty, readable by others) keeps the token in use, logged once per
/// reason. Runs until cancelled.
awaitable<void> follow_admin_token(std::filesystem::path file, gateway::service& svc,
                                   asio::any_io_executor blocking, const log::logger& log,
                                   std::chrono::milliseconds every = std::chrono::seconds(2));

}  // namespace tether::app
