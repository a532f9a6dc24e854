// The gateway's --data-dir: the SQLite file and the admin token live there.
#pragma once

#include "base/log.hpp"

#include <filesystem>

namespace tether::app {

/// Creates `dir` when absent and makes sure nobody but us (and, on a
/// directory we do not own, its group) can reach into it: ours is narrowed
/// to 0700; one we cannot chmod (a volume mounted from the host or given
/// to a Kubernetes fsGroup) is accepted when we can write it and others
/// have no access at all. Otherwise throws cli::usage_error saying what is
/// wrong and which chmod or chown fixes it.
void prepare_data_dir(const std::filesystem::path& dir, const log::logger& log);

}  // namespace tether::app
