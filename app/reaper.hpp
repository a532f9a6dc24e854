// Reaping children we did not start (Linux): orphans re-parented to us when
// we are PID 1 of a container or a child subreaper.
#pragma once

#include "net/asio.hpp"
#include "net/log.hpp"

#include <sys/types.h>

namespace tether::app {

/// Reaps every exited child except `keep` (whose status its owner collects),
/// now and on each SIGCHLD, until cancelled.
awaitable<void> reap_orphans(pid_t keep, const log::logger& log);

/// Reaps exited children other than `keep`, without blocking; returns how many.
int reap_exited(pid_t keep) noexcept;

}  // namespace tether::app
