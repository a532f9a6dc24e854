// A string that must never reach a log, an error message or a child process.
#pragma once

#include <boost/json/fwd.hpp>

#include <iosfwd>
#include <string>
#include <string_view>

namespace tether {

/// Holds a credential (API key, session or stream token, private key PEM).
///
/// Formatting it (operator<<, Boost.JSON value_from) prints `[redacted]`;
/// the only way to the bytes is the explicit `reveal()`, which makes every
/// use greppable. The buffer is wiped when the value dies or is moved from.
/// Copies are allowed because tokens are read at every call; each copy wipes
/// itself too.
class secret {
public:
    secret() = default;
    explicit secret(std::string value) noexcept : value_(std::move(value)) {}
    secret(const secret& other) : value_(other.value_) {}
    secret(secret&& other) noexcept;
    secret& operator=(const secret& other);
    secret& operator=(secret&& other) noexcept;
    ~secret();

    [[nodiscard]] std::string_view reveal() const noexcept { return value_; }
    [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return value_.size(); }

    /// Constant-time comparison: a mismatching prefix must not answer faster.
    friend bool operator==(const secret& a, const secret& b) noexcept;

    friend std::ostream& operator<<(std::ostream& os, const secret&);

private:
    void wipe() noexcept;
    std::string value_;
};

/// Boost.JSON conversion, so `fields{{"token", s}}` logs `[redacted]`.
void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const secret&);

/// Constant-time equality of two byte strings (length is not hidden).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace tether
