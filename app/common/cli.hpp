// Command-line parsing: declarative flags, each also readable from a
// TETHER_* environment variable (the flag wins). No I/O beyond the lookup.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tether::app::cli {

struct flag {
    std::string_view name;        ///< long name without dashes: "state-dir"
    std::string_view value_name;  ///< "DIR"; empty for a switch
    std::string_view help;
    std::string_view fallback{};  ///< default, shown in --help
    bool repeatable = false;
    /// A credential: given on the command line, its bytes in this
    /// process's argv are overwritten once read (run_program), since every
    /// user of the machine can read a command line (ps, /proc/PID/cmdline).
    bool secret = false;
};

struct command {
    std::string_view name;
    std::string_view summary;
    std::vector<flag> flags;
    std::string_view positional_usage{};  ///< e.g. "-- CMD [ARGS...]"; empty: none accepted
    std::string_view details{};
};

/// Bad input on the command line or in a TETHER_* variable: exit status 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using env_lookup = std::function<std::optional<std::string>(std::string_view)>;
env_lookup process_env();

/// "state-dir" -> "TETHER_STATE_DIR".
std::string env_name(std::string_view flag_name);

/// Where a duration flag's value may lie. The default ceiling keeps every
/// deadline (now plus the value, plus a grace) far from overflowing the
/// clock's 64-bit nanoseconds, which 10 000 000h would.
struct duration_range {
    static constexpr std::chrono::milliseconds ceiling{std::chrono::hours(24 * 30)};
    std::chrono::milliseconds lo{0};
    std::chrono::milliseconds hi{ceiling};
};

/// From `lo` to the common ceiling.
constexpr duration_range at_least(std::chrono::milliseconds lo)
{
    return duration_range{lo, duration_range::ceiling};
}

class arguments {
public:
    [[nodiscard]] bool help_requested() const noexcept { return help_; }
    [[nodiscard]] bool has(std::string_view name) const;
    [[nodiscard]] bool enabled(std::string_view name) const;  ///< a switch, from flag or env
    [[nodiscard]] std::optional<std::string> value(std::string_view name) const;
    [[nodiscard]] std::vector<std::string> values(std::string_view name) const;
    [[nodiscard]] const std::vector<std::string>& positionals() const noexcept { return positionals_; }
    /// Where a value came from, for error messages: "--state-dir" or "TETHER_STATE_DIR".
    [[nodiscard]] std::string origin(std::string_view name) const;
    /// The value as parse_duration / parse_count read it, errors naming
    /// where it came from; nullopt when neither flag nor variable is set.
    [[nodiscard]] std::optional<std::chrono::milliseconds> duration(std::string_view name,
                                                                    duration_range range = {}) const;
    [[nodiscard]] std::optional<unsigned long> count(std::string_view name, unsigned long lo,
                                                     unsigned long hi) const;

    /// Values of `other` replace ours flag by flag (nested commands).
    void merge(const arguments& other);

private:
    friend arguments parse(const command&, std::span<const std::string>, const env_lookup&, std::size_t*);
    std::map<std::string, std::vector<std::string>, std::less<>> values_;
    std::map<std::string, std::string, std::less<>> origins_;
    std::vector<std::string> positionals_;
    bool help_ = false;
};

/// Flags every command accepts (log level and format).
std::span<const flag> common_flags();

/// Parses `args` (what follows the command name) against `cmd` plus the
/// common flags, then fills unset flags from the environment.
///
/// With `stop_at` non-null, parsing stops at the first positional argument
/// and its index is stored there (for `admin <subcommand>`); environment
/// values are then left for the inner parse.
arguments parse(const command& cmd, std::span<const std::string> args, const env_lookup& env,
                std::size_t* stop_at = nullptr);

std::string render_help(std::string_view program, const command& cmd);
std::string render_overview(std::string_view program, std::string_view summary,
                            std::span<const command> commands);

/// "10s", "250ms", "2m", "1h" or a bare number of seconds, within `range`.
/// Throws usage_error naming `what`.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what,
                                         duration_range range = {});

/// "250ms", "5s", "2m", "720h": the largest unit that shows it whole.
std::string format_duration(std::chrono::milliseconds d);

/// Unsigned integer within [lo, hi]. Throws usage_error naming `what`.
unsigned long parse_count(std::string_view text, std::string_view what, unsigned long lo, unsigned long hi);

}  // namespace tether::app::cli
