// Turns argv into one subcommand call: parsing, --help, logger set-up, and
// the mapping of start-up errors to exit statuses. Shared by both binaries.
#pragma once

#include "app/common/invocation.hpp"

namespace tether::app {

/// Never throws. Exit statuses: 0 ok, 1 failure, 2 usage, 3 permanent auth.
int run_program(const program_spec& program, int argc, char** argv, const cli::env_lookup& env);

/// Overwrites with 'x' the value of every `secret` flag of `cmds` (and
/// their children) given on the command line, as `--flag VALUE` or
/// `--flag=VALUE`, up to a `--`; the length stays, the bytes go. Called by
/// run_program once the arguments are copied.
void blank_secret_arguments(std::span<const subcommand> cmds, int argc, char** argv);

/// Builds the logger from --log-level/--log-format (or TETHER_LOG_*);
/// text on a terminal, JSON lines otherwise.
log::logger make_logger(const cli::arguments& args);

}  // namespace tether::app
