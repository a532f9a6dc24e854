// What a subcommand is given (its parsed arguments, logger, environment) and
// how a binary lists its subcommands.
#pragma once

#include "app/common/cli.hpp"
#include "base/log.hpp"

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

}  // namespace tether::app
