// Reading one cookie out of a request's Cookie header fields (RFC 6265
// section 5.4's shape: "name=value" pairs separated by "; "). Sans-IO.
#pragma once

#include "net/http.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace tether::net::http {

/// The value of cookie `name`, when the request carries it exactly once, not
/// empty and at most `max_size` bytes. Two of them (a sibling subdomain can
/// plant one) answer nullopt: trust neither rather than guess which.
std::optional<std::string> cookie_value(const fields& headers, std::string_view name, std::size_t max_size);

}  // namespace tether::net::http
