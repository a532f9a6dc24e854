// Files followed while a process runs (the gateway's admin token and TLS
// files, the agent's CA bundle): what they hold is read again every few
// seconds and put in use without a restart, and files that cannot be used
// leave what is in use alone.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace tether::app {

/// What one look at followed files found, on the thread that read them.
struct file_look {
    /// Puts a change in use; run on the following task's executor. Empty
    /// when the files hold what is in use.
    std::function<void()> use;
    /// Set when the files cannot be used now: a path and a reason, never
    /// what they hold.
    std::string error;
};

struct file_follow_options {
    std::string_view unusable_event;  ///< logged (warn) once per reason
    std::string_view keeps;           ///< what stays in use meanwhile, for that log line
    std::chrono::milliseconds every{2'000};
};

/// Every `every`, runs `look` on `blocking` (a std::runtime_error it throws
/// counts as an error), then its `use` here. Files that cannot be used
/// (gone, half written, garbled) keep what is in use, since refusing every
/// request or handshake helps nobody, and are logged once per reason; the
/// next look tries again. Runs until cancelled.
awaitable<void> follow_files(std::function<file_look()> look, asio::any_io_executor blocking,
                             const log::logger& log, file_follow_options opts);

}  // namespace tether::app
