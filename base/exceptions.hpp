// How an exception that ended a coroutine is told apart and written down:
// one rendering for every log line that reports one.
#pragma once

#include <exception>
#include <string>

namespace tether {

/// One line for a log: the code and category of a system_error, what() of
/// other exceptions. "no error" for a null pointer.
std::string describe(const std::exception_ptr& e);

/// A coroutine that ended because it was cancelled (operation_aborted thrown).
bool is_cancellation(const std::exception_ptr& e);

}  // namespace tether
