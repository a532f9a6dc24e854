// The `tether-gateway` binary's subcommands.
#pragma once

#include "app/common/invocation.hpp"

namespace tether::app {

std::span<const subcommand> gateway_commands();

int gateway_serve(invocation& inv);
int gateway_migrate(invocation& inv);
int gateway_backup(invocation& inv);
int admin_create_enrollment_code(invocation& inv);
int admin_publish_config(invocation& inv);
int admin_revoke_enrollment_code(invocation& inv);
int admin_forget_nodes(invocation& inv);
int admin_get_config(invocation& inv);
int admin_nodes(invocation& inv);
int admin_revoke(invocation& inv);
int admin_rollout(invocation& inv);

}  // namespace tether::app
