#include "app/common/cli.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <sstream>

namespace tether::app::cli {

namespace {

constexpr flag common[] = {
    {"log-level", "LEVEL", "debug, info, warn or error", "info"},
    {"log-format", "FORMAT", "text or json", "text on a terminal, json otherwise"},
};

const flag* find_flag(const command& cmd, std::string_view name)
{
    for (const auto& f : cmd.flags)
        if (f.name == name) return &f;
    for (const auto& f : common)
        if (f.name == name) return &f;
    return nullptr;
}

std::optional<bool> parse_bool(std::string_view s)
{
    if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
    if (s.empty() || s == "0" || s == "false" || s == "no" || s == "off") return false;
    return std::nullopt;
}

void each_flag(const command& cmd, const std::function<void(const flag&)>& fn)
{
    for (const auto& f : cmd.flags) fn(f);
    for (const auto& f : common) fn(f);
}

}  // namespace

env_lookup process_env()
{
    return [](std::string_view name) -> std::optional<std::string> {
        const std::string key(name);
        if (const char* v = std::getenv(key.c_str())) return std::string(v);
        return std::nullopt;
    };
}

std::string env_name(std::string_view flag_name)
{
    std::string out = "TETHER_";
    for (const char c : flag_name) {
        if (c == '-')
            out.push_back('_');
        else
            out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    return out;
}

std::span<const flag> common_flags()
{
    return common;
}

bool arguments::has(std::string_view name) const
{
    return values_.find(name) != values_.end();
}

bool arguments::enabled(std::string_view name) const
{
    const auto it = values_.find(name);
    if (it == values_.end() || it->second.empty()) return false;
    return parse_bool(it->second.back()).value_or(false);
}

std::optional<std::string> arguments::value(std::string_view name) const
{
    const auto it = values_.find(name);
    if (it == values_.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
}

std::vector<std::string> arguments::values(std::string_view name) const
{
    const auto it = values_.find(name);
    if (it == values_.end()) return {};
    return it->second;
}

std::string arguments::origin(std::string_view name) const
{
    const auto it = origins_.find(name);
    if (it != origins_.end()) return it->second;
    return "--" + std::string(name);
}

std::optional<std::chrono::milliseconds> arguments::duration(std::string_view name,
                                                             duration_range range) const
{
    const auto v = value(name);
    if (!v) return std::nullopt;
    return parse_duration(*v, origin(name), range);
}

std::optional<unsigned long> arguments::count(std::string_view name, unsigned long lo, unsigned long hi) const
{
    const auto v = value(name);
    if (!v) return std::nullopt;
    return parse_count(*v, origin(name), lo, hi);
}

void arguments::merge(const arguments& other)
{
    for (const auto& [k, v] : other.values_) values_[k] = v;
    for (const auto& [k, v] : other.origins_) origins_[k] = v;
    positionals_ = other.positionals_;
    help_ = help_ || other.help_;
}

arguments parse(const command& cmd, std::span<const std::string> args, const env_lookup& env,
                std::size_t* stop_at)
{
    arguments out;
    bool only_positionals = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (only_positionals || a.size() < 2 || a[0] != '-' || a == "-") {
            if (stop_at) {
                *stop_at = i;
                return out;
            }
            if (cmd.positional_usage.empty())
                throw usage_error("unexpected argument '" + a + "' for '" + std::string(cmd.name) + "'");
            out.positionals_.push_back(a);
            continue;
        }
        if (a == "--") {
            if (cmd.positional_usage.empty())
                throw usage_error("'" + std::string(cmd.name) + "' takes no positional arguments");
            only_positionals = true;
            continue;
        }
        if (a == "-h" || a == "--help") {
            out.help_ = true;
            continue;
        }
        if (a.rfind("--", 0) != 0)
            throw usage_error("unknown option '" + a + "' (options are spelled --name)");
        std::string name = a.substr(2);
        std::optional<std::string> inline_value;
        if (const auto eq = name.find('='); eq != std::string::npos) {
            inline_value = name.substr(eq + 1);
            name.resize(eq);
        }
        const flag* f = find_flag(cmd, name);
        if (!f) throw usage_error("unknown option '--" + name + "' for '" + std::string(cmd.name) + "'");
        std::string v;
        if (f->value_name.empty()) {
            if (inline_value) {
                const auto b = parse_bool(*inline_value);
                if (!b) throw usage_error("--" + name + " takes no value or one of true/false");
                v = *b ? "true" : "false";
            } else {
                v = "true";
            }
        } else if (inline_value) {
            v = *inline_value;
        } else {
            if (i + 1 >= args.size())
                throw usage_error("--" + name + " needs a value (" + std::string(f->value_name) + ")");
            v = args[++i];
        }
        auto& slot = out.values_[std::string(f->name)];
        if (!f->repeatable) slot.clear();
        slot.push_back(std::move(v));
        out.origins_[std::string(f->name)] = "--" + std::string(f->name);
    }
    if (stop_at) *stop_at = args.size();

    each_flag(cmd, [&](const flag& f) {
        if (out.has(f.name) || !env) return;
        const std::string var = env_name(f.name);
        auto v = env(var);
        if (!v) return;
        auto& slot = out.values_[std::string(f.name)];
        if (f.value_name.empty()) {
            const auto b = parse_bool(*v);
            if (!b) throw usage_error(var + " must be true or false, not '" + *v + "'");
            slot.push_back(*b ? "true" : "false");
        } else if (f.repeatable) {
            // A list in one variable: comma-separated, empty items dropped.
            std::stringstream ss(*v);
            for (std::string item; std::getline(ss, item, ',');)
                if (!item.empty()) slot.push_back(item);
        } else {
            slot.push_back(*v);
        }
        out.origins_[std::string(f.name)] = var;
    });
    return out;
}

std::string render_help(std::string_view program, const command& cmd)
{
    std::ostringstream os;
    os << "Usage: " << program << ' ' << cmd.name << " [OPTIONS]";
    if (!cmd.positional_usage.empty()) os << ' ' << cmd.positional_usage;
    os << "\n\n" << cmd.summary << "\n";
    if (!cmd.details.empty()) os << "\n" << cmd.details << "\n";
    os << "\nOptions (each also read from the environment variable shown; the flag wins):\n";
    each_flag(cmd, [&](const flag& f) {
        std::string left = "  --" + std::string(f.name);
        if (!f.value_name.empty()) left += " " + std::string(f.value_name);
        os << left;
        const std::size_t pad = left.size() < 34 ? 34 - left.size() : 1;
        os << std::string(pad, ' ') << f.help;
        if (!f.fallback.empty()) os << " (default: " << f.fallback << ")";
        if (f.repeatable) os << " (repeatable; env: comma-separated)";
        os << "\n" << std::string(34, ' ') << "[" << env_name(f.name) << "]\n";
    });
    os << "  -h, --help                      show this help\n";
    return os.str();
}

std::string render_overview(std::string_view program, std::string_view summary,
                            std::span<const command> commands)
{
    std::ostringstream os;
    os << "Usage: " << program << " COMMAND [OPTIONS]\n\n" << summary << "\n\nCommands:\n";
    std::size_t width = 0;
    for (const auto& c : commands) width = std::max(width, c.name.size());
    for (const auto& c : commands)
        os << "  " << c.name << std::string(width - c.name.size() + 3, ' ') << c.summary << "\n";
    os << "\nRun '" << program << " COMMAND --help' for a command's options.\n";
    return os.str();
}

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what, duration_range range)
{
    std::uint64_t n = 0;
    const auto* first = text.data();
    const auto* last = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(first, last, n);
    const std::string_view unit(ptr, static_cast<std::size_t>(last - ptr));
    const auto bad = [&] {
        return usage_error(std::string(what) + ": '" + std::string(text) +
                           "' is not a duration (use 500ms, 30s, 5m, 1h)");
    };
    if (ec != std::errc{} || ptr == first || n > 10'000'000) throw bad();
    using namespace std::chrono;
    milliseconds d{};
    if (unit.empty() || unit == "s")
        d = seconds(n);
    else if (unit == "ms")
        d = milliseconds(n);
    else if (unit == "m")
        d = minutes(n);
    else if (unit == "h")
        d = hours(n);
    else
        throw bad();
    if (d < range.lo || d > range.hi)
        throw usage_error(std::string(what) + ": '" + std::string(text) + "' must be from " +
                          format_duration(range.lo) + " to " + format_duration(range.hi));
    return d;
}

std::string format_duration(std::chrono::milliseconds d)
{
    using namespace std::chrono;
    const auto n = d.count();
    if (n != 0 && n % 3'600'000 == 0) return std::to_string(n / 3'600'000) + "h";
    if (n != 0 && n % 60'000 == 0) return std::to_string(n / 60'000) + "m";
    if (n % 1'000 == 0) return std::to_string(n / 1'000) + "s";
    return std::to_string(n) + "ms";
}

unsigned long parse_count(std::string_view text, std::string_view what, unsigned long lo, unsigned long hi)
{
    unsigned long n = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr != text.data() + text.size() || n < lo || n > hi)
        throw usage_error(std::string(what) + ": '" + std::string(text) + "' is not a whole number from " +
                          std::to_string(lo) + " to " + std::to_string(hi));
    return n;
}

}  // namespace tether::app::cli
