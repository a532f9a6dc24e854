// The `tether-gateway` binary's subcommands.
#pragma once

#include "app/dispatch.hpp"

namespace tether::app {

std::span<const subcommand> gateway_commands();

int gateway_serve(invocation& inv);

}  // namespace tether::app
