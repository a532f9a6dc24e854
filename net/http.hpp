// HTTP messages as plain values, so callers never include Beast: the server
// and client translate at their edges.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tether::net::http {

/// Header fields in arrival order; names compare case-insensitively.
class fields {
public:
    struct field {
        std::string name;
        std::string value;
    };

    [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const noexcept;
    [[nodiscard]] std::size_t count(std::string_view name) const noexcept;
    /// Replaces every field of that name with one.
    void set(std::string_view name, std::string_view value);
    void add(std::string_view name, std::string_view value);
    void erase(std::string_view name);
    /// Drops every field `drop` names; the others keep their order.
    template <class Pred>
    void erase_if(Pred drop)
    {
        std::erase_if(items_, drop);
    }
    void reserve(std::size_t n) { items_.reserve(n); }
    [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }

    [[nodiscard]] auto begin() const noexcept { return items_.begin(); }
    [[nodiscard]] auto end() const noexcept { return items_.end(); }
    /// Values may be changed in place; a name changed must stay a token.
    [[nodiscard]] auto begin() noexcept { return items_.begin(); }
    [[nodiscard]] auto end() noexcept { return items_.end(); }

private:
    std::vector<field> items_;
};

bool iequals(std::string_view a, std::string_view b) noexcept;

/// ASCII lower case (host names, header and parameter names).
std::string to_lower(std::string_view s);

struct request {
    std::string method = "GET";
    std::string target = "/";
    fields headers;
    std::string body;
};

struct response {
    unsigned status = 200;
    fields headers;
    std::string body;
};

}  // namespace tether::net::http
