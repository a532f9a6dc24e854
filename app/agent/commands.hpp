// The `tether` binary's subcommands.
#pragma once

#include "app/common/invocation.hpp"
#include "auth/state_paths.hpp"

namespace tether::app {

std::span<const subcommand> agent_commands();

/// The TETHER_* variables of every flag marked secret (TETHER_CODE): what a
/// child of ours must never inherit, whichever command reads them.
std::vector<std::string> secret_variables();

/// --state-dir, TETHER_STATE_DIR, or the per-user default.
auth::state_paths resolve_state_dir(const invocation& inv);

int agent_run(invocation& inv);
int agent_enroll(invocation& inv);
int agent_show_status(invocation& inv);
int agent_probe(invocation& inv);
int agent_exec(invocation& inv);

}  // namespace tether::app
