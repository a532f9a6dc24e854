#include "net/cookie.hpp"

namespace tether::net::http {

std::optional<std::string> cookie_value(const fields& headers, std::string_view name, std::size_t max_size)
{
    std::optional<std::string_view> found;
    for (const auto& f : headers) {
        if (!iequals(f.name, "Cookie")) continue;
        std::string_view rest = f.value;
        while (!rest.empty()) {
            const auto semi = rest.find(';');
            auto pair = rest.substr(0, semi);
            while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
            if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
                pair[name.size()] == '=') {
                if (found) return std::nullopt;
                found = pair.substr(name.size() + 1);
            }
            if (semi == std::string_view::npos) break;
            rest.remove_prefix(semi + 1);
        }
    }
    if (!found || found->empty() || found->size() > max_size) return std::nullopt;
    return std::string(*found);
}

}  // namespace tether::net::http
