// What a call refuses with, as text, for tests that check refusals by message.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace tether::test {

/// The message of the `std::runtime_error` that `call` throws, or empty when it returns.
/// Any other exception escapes, so that a bug is not read as a refusal.
inline std::string what_thrown(const std::function<void()>& call)
{
    try {
        call();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return {};
}

}  // namespace tether::test
