// Leveled, structured logging: one event name plus fields per line.
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tether::log {

enum class level { debug, info, warn, error };
enum class format { text, json };

using fields = boost::json::object;

std::optional<level> parse_level(std::string_view s) noexcept;
std::optional<format> parse_format(std::string_view s) noexcept;
std::string_view to_string(level l) noexcept;

/// Where finished lines go. Production: stderr. Tests: a capture buffer.
using sink = std::function<void(std::string_view line)>;

/// Writes one line to stderr per call (a single write(2), so lines from
/// several processes sharing a terminal do not interleave mid-line).
/// Blocks while stderr does: for tools, not for event-loop threads.
sink stderr_sink();

/// Lines to stderr through a bounded queue drained by a thread of its own,
/// so a stderr that nobody reads never blocks a task: when `max_bytes` are
/// queued, further lines are dropped and counted, and a `log.dropped` line
/// says how many once stderr moves again. flush() waits a bounded time.
class background_stderr {
public:
    explicit background_stderr(format fmt, std::size_t max_bytes = std::size_t{1} << 20);
    ~background_stderr();  ///< flushes for up to a second, then lets the writer go
    background_stderr(const background_stderr&) = delete;
    background_stderr& operator=(const background_stderr&) = delete;

    /// Thread-safe, never blocks on stderr.
    void push(std::string_view line);
    /// Waits until everything queued is written or `limit` passes.
    bool flush(std::chrono::milliseconds limit);
    [[nodiscard]] std::uint64_t dropped() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

/// Thread-safe: several strands log through one logger. It is passed by
/// reference to whoever needs it, never reached through a global.
///
/// Field values are data: a server-supplied string is quoted in text format
/// and escaped in JSON, never interpolated into the message. Secrets go in
/// as `tether::secret` and come out as `[redacted]`.
class logger {
public:
    explicit logger(level min = level::info, format fmt = format::text, sink out = stderr_sink());
    /// Lines go through `out` (owned by the logger), which never blocks.
    logger(level min, format fmt, std::shared_ptr<background_stderr> out);

    void debug(std::string_view event, fields f = {}) const { write(level::debug, event, std::move(f)); }
    void info(std::string_view event, fields f = {}) const { write(level::info, event, std::move(f)); }
    void warn(std::string_view event, fields f = {}) const { write(level::warn, event, std::move(f)); }
    void error(std::string_view event, fields f = {}) const { write(level::error, event, std::move(f)); }

    void write(level l, std::string_view event, fields f) const;
    [[nodiscard]] bool enabled(level l) const noexcept { return l >= min_; }

    /// Before the process ends without unwinding (_Exit): waits up to
    /// `limit` for queued lines. A no-op for synchronous sinks.
    void flush(std::chrono::milliseconds limit) const;

    [[nodiscard]] level min_level() const noexcept { return min_; }
    [[nodiscard]] format line_format() const noexcept { return fmt_; }

private:
    level min_;
    format fmt_;
    sink out_;
    std::shared_ptr<background_stderr> background_;
    std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
};

/// At most one line per interval for an event that a peer can cause at
/// will (refused requests, failed logins): the rest are counted, and the
/// next line that goes out says how many were left out. Thread-safe.
class throttle {
public:
    explicit throttle(std::chrono::milliseconds interval = std::chrono::seconds(1)) : interval_(interval) {}
    /// Whether to log now; when it is, `suppressed` is the count left out since the last line.
    bool allow(std::uint64_t& suppressed) noexcept;

private:
    std::chrono::milliseconds interval_;
    std::mutex mutex_;
    std::chrono::steady_clock::time_point next_{};
    std::uint64_t dropped_ = 0;
};

/// Renders one line (without the trailing newline). Exposed for tests.
std::string render(format fmt, std::string_view timestamp, level l, std::string_view event, const fields& f);

}  // namespace tether::log
