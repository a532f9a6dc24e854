// Turns argv into one subcommand call: parsing, --help, logger set-up, and
// the mapping of start-up errors to exit statuses. Shared by both binaries.
#pragma once

#include "app/cli.hpp"
#include "net/log.hpp"

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace tether::app {

struct invocation {
    std::string program;  ///< "tether" or "tether-gateway admin"
    cli::arguments args;
    const log::logger& log;
    cli::env_lookup env;
};

struct subcommand {
    cli::command spec;
    std::function<int(invocation&)> run;
    std::vector<subcommand> children{};  ///< nested commands (admin ...)
};

struct program_spec {
    std::string_view name;
    std::string_view summary;
    std::span<const subcommand> commands;
};

/// Never throws. Exit statuses: 0 ok, 1 failure, 2 usage, 3 permanent auth.
int dispatch(const program_spec& program, int argc, char** argv, const cli::env_lookup& env);

/// Builds the logger from --log-level/--log-format (or TETHER_LOG_*);
/// text on a terminal, JSON lines otherwise.
log::logger make_logger(const cli::arguments& args);

/// "10s", "250ms", "2m", "1h" or a bare number of seconds. Throws usage_error.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what);

/// Unsigned integer within [lo, hi]. Throws usage_error naming `what`.
unsigned long parse_count(std::string_view text, std::string_view what, unsigned long lo, unsigned long hi);

/// The answer of a subcommand that exists in the CLI but not yet in code.
int not_implemented(const invocation& inv, std::string_view command);

}  // namespace tether::app
