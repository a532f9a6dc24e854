#include "base/secret.hpp"

#include <boost/json/value.hpp>

#include <cstring>
#include <ostream>

namespace tether {

secret::secret(secret&& other) noexcept : value_(other.value_)
{
    other.wipe();
}

secret& secret::operator=(const secret& other)
{
    if (this != &other) {
        wipe();
        value_ = other.value_;
    }
    return *this;
}

secret& secret::operator=(secret&& other) noexcept
{
    if (this != &other) {
        wipe();
        value_ = other.value_;
        other.wipe();
    }
    return *this;
}

secret::~secret()
{
    wipe();
}

void secret::wipe() noexcept
{
    // explicit_bzero cannot be elided by the optimiser the way memset can.
    if (!value_.empty()) explicit_bzero(value_.data(), value_.size());
    value_.clear();
}

bool operator==(const secret& a, const secret& b) noexcept
{
    return constant_time_equal(a.value_, b.value_);
}

std::ostream& operator<<(std::ostream& os, const secret&)
{
    return os << "[redacted]";
}

void tag_invoke(const boost::json::value_from_tag&, boost::json::value& v, const secret&)
{
    v = "[redacted]";
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace tether
