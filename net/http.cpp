#include "net/http.hpp"

#include <algorithm>

namespace tether::net::http {

namespace {

/// ASCII only, like field names and schemes: no locale, no call per byte.
constexpr char fold(char c) noexcept
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::string to_lower(std::string_view s)
{
    std::string out(s);
    for (auto& c : out) c = fold(c);
    return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return fold(x) == fold(y); });
}

std::optional<std::string_view> fields::get(std::string_view name) const noexcept
{
    for (const auto& f : items_)
        if (iequals(f.name, name)) return std::string_view(f.value);
    return std::nullopt;
}

std::size_t fields::count(std::string_view name) const noexcept
{
    return static_cast<std::size_t>(
        std::count_if(items_.begin(), items_.end(), [&](const field& f) { return iequals(f.name, name); }));
}

void fields::set(std::string_view name, std::string_view value)
{
    erase(name);
    add(name, value);
}

void fields::add(std::string_view name, std::string_view value)
{
    items_.push_back({std::string(name), std::string(value)});
}

void fields::erase(std::string_view name)
{
    std::erase_if(items_, [&](const field& f) { return iequals(f.name, name); });
}

}  // namespace tether::net::http
