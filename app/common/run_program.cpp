#include "app/common/run_program.hpp"

#include "app/common/exit_status.hpp"
#include "base/log.hpp"
#include "base/utf8.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <iostream>
#include <string_view>

namespace tether::app {

log::logger make_logger(const cli::arguments& args)
{
    auto lvl = log::level::info;
    if (const auto v = args.value("log-level")) {
        const auto parsed = log::parse_level(*v);
        if (!parsed)
            throw cli::usage_error(args.origin("log-level") + " must be debug, info, warn or error, not '" +
                                   *v + "'");
        lvl = *parsed;
    }
    auto fmt = ::isatty(STDERR_FILENO) ? log::format::text : log::format::json;
    if (const auto v = args.value("log-format")) {
        const auto parsed = log::parse_format(*v);
        if (!parsed)
            throw cli::usage_error(args.origin("log-format") + " must be text or json, not '" + *v + "'");
        fmt = *parsed;
    }
    // Never a blocking write on an event-loop thread: a stderr nobody reads
    // must not stop heartbeats, health answers or a SIGTERM drain.
    return log::logger(lvl, fmt, std::make_shared<log::background_stderr>(fmt));
}

namespace {

/// One write(2) for the whole line (log::stderr_sink): the log's writer
/// thread shares stderr, and a line written in pieces could get one of its
/// lines inside. Made terminal-safe: a message may quote what a server
/// answered (a Connect error's text, a field) or what a file held.
void say_error(std::string_view name, std::string_view what)
{
    log::stderr_sink()(std::string(name) + ": " + terminal_safe(what));
}

const subcommand* find(std::span<const subcommand> cmds, std::string_view name)
{
    for (const auto& c : cmds)
        if (c.spec.name == name) return &c;
    return nullptr;
}

std::vector<cli::command> specs_of(std::span<const subcommand> cmds)
{
    std::vector<cli::command> out;
    for (const auto& c : cmds) out.push_back(c.spec);
    return out;
}

int run_subcommand(const std::string& program, const subcommand& cmd, std::span<const std::string> rest,
                   const cli::env_lookup& env, cli::arguments outer)
{
    const std::string full = program + " " + std::string(cmd.spec.name);
    if (!cmd.children.empty()) {
        std::size_t at = 0;
        auto args = cli::parse(cmd.spec, rest, nullptr, &at);
        if (args.help_requested() || at >= rest.size()) {
            const auto specs = specs_of(cmd.children);
            (at >= rest.size() && !args.help_requested() ? std::cerr : std::cout)
                << cli::render_overview(full, cmd.spec.summary, specs);
            return args.help_requested() ? 0 : to_int(exit_status::usage);
        }
        const subcommand* child = find(cmd.children, rest[at]);
        if (!child) throw cli::usage_error("unknown command '" + rest[at] + "' (see '" + full + " --help')");
        outer.merge(args);
        // The child accepts its parent's flags too, so flag order is free.
        subcommand merged = *child;
        for (const auto& f : cmd.spec.flags) merged.spec.flags.push_back(f);
        return run_subcommand(full, merged, rest.subspan(at + 1), env, outer);
    }
    auto args = cli::parse(cmd.spec, rest, env);
    if (args.help_requested()) {
        std::cout << cli::render_help(program, cmd.spec);
        return 0;
    }
    outer.merge(args);
    const auto logger = make_logger(outer);
    invocation inv{program, outer, logger, env};
    return cmd.run(inv);
}

}  // namespace

namespace {

/// The soft open-files limit up to the hard one: a listener's connections
/// and an agent's streams are descriptors, and a default soft limit of 256
/// or 1024 is far below what the process is allowed.
void raise_open_files_limit() noexcept
{
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
}

void secret_flag_names(std::span<const subcommand> cmds, std::vector<std::string>& out)
{
    for (const auto& c : cmds) {
        for (const auto& f : c.spec.flags)
            if (f.secret) out.push_back("--" + std::string(f.name));
        secret_flag_names(c.children, out);
    }
}

}  // namespace

void blank_secret_arguments(std::span<const subcommand> cmds, int argc, char** argv)
{
    std::vector<std::string> names;
    secret_flag_names(cmds, names);
    const auto blank = [](char* p) {
        for (; *p != '\0'; ++p) *p = 'x';
    };
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--") break;  // a child's command line (exec -- CMD) is its own
        for (const auto& n : names) {
            if (a == n && i + 1 < argc) {
                blank(argv[++i]);
                break;
            }
            if (a.size() > n.size() && a.starts_with(n) && a[n.size()] == '=') {
                blank(argv[i] + n.size() + 1);
                break;
            }
        }
    }
}

int run_program(const program_spec& program, int argc, char** argv, const cli::env_lookup& env)
{
    raise_open_files_limit();
    const std::string name(program.name);
    std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    blank_secret_arguments(program.commands, argc, argv);
    const auto specs = specs_of(program.commands);
    try {
        // Common flags may stand before the command name: `tether --log-level debug run`.
        std::vector<std::string> leading;
        while (!args.empty() && args.front().rfind("--log-", 0) == 0) {
            leading.push_back(args.front());
            args.erase(args.begin());
            if (leading.back().find('=') == std::string::npos && !args.empty()) {
                leading.push_back(args.front());
                args.erase(args.begin());
            }
        }
        if (args.empty()) {
            std::cerr << cli::render_overview(name, program.summary, specs);
            return to_int(exit_status::usage);
        }
        if (args.front() == "--help" || args.front() == "-h" || args.front() == "help") {
            std::cout << cli::render_overview(name, program.summary, specs);
            return 0;
        }
        if (args.front() == "--version") {
            std::cout << name << " " << TETHER_VERSION << "\n";
            return 0;
        }
        const subcommand* cmd = find(program.commands, args.front());
        if (!cmd)
            throw cli::usage_error("unknown command '" + args.front() + "' (see '" + name + " --help')");
        std::vector<std::string> rest(leading);
        rest.insert(rest.end(), args.begin() + 1, args.end());
        return run_subcommand(name, *cmd, rest, env, cli::arguments{});
    } catch (const cli::usage_error& e) {
        say_error(name, e.what());
        return to_int(exit_status::usage);
    } catch (const fatal_exit& e) {
        say_error(name, e.what());
        return to_int(e.status);
    } catch (const std::exception& e) {
        say_error(name, e.what());
        return to_int(exit_status::failure);
    }
}

}  // namespace tether::app
