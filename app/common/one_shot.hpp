// A private event loop for commands that make a few calls and exit
// (enroll, admin, status).
#pragma once

#include "base/asio.hpp"

#include <boost/asio/io_context.hpp>

namespace tether::app {

/// Runs `op` to completion on `ioc`; an exception it throws is rethrown here
/// rather than lost.
void run_to_completion(asio::io_context& ioc, awaitable<void> op);

}  // namespace tether::app
