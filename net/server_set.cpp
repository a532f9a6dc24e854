#include "net/server_set.hpp"

#include <stdexcept>

namespace tether::net {

namespace {
bool same(const url& a, const url& b)
{
    return a.origin() == b.origin() && a.path == b.path;
}
}  // namespace

server_set::server_set(url only) : state_(std::make_shared<state>())
{
    state_->urls.push_back(std::move(only));
}

server_set::server_set(std::vector<url> urls, const uniform01& rand) : state_(std::make_shared<state>())
{
    if (urls.empty()) throw std::invalid_argument("server_set: no URL");
    // Fisher-Yates with the injected randomness (tests fix it).
    for (std::size_t i = urls.size(); i > 1; --i) {
        const auto j = std::min(i - 1, static_cast<std::size_t>(rand() * static_cast<double>(i)));
        std::swap(urls[i - 1], urls[j]);
    }
    state_->urls = std::move(urls);
}

url server_set::current() const
{
    const std::lock_guard lock(state_->m);
    return state_->urls[state_->at];
}

void server_set::failed(const url& u) const
{
    const std::lock_guard lock(state_->m);
    // Many calls fail at once when a replica dies: only the first moves on,
    // the others find the set already past it.
    if (state_->urls.size() > 1 && same(state_->urls[state_->at], u))
        state_->at = (state_->at + 1) % state_->urls.size();
}

std::vector<url> server_set::in_order() const
{
    const std::lock_guard lock(state_->m);
    std::vector<url> out;
    for (std::size_t i = 0; i < state_->urls.size(); ++i)
        out.push_back(state_->urls[(state_->at + i) % state_->urls.size()]);
    return out;
}

std::vector<std::string> split_server_list(std::string_view text)
{
    std::vector<std::string> out;
    while (!text.empty()) {
        const auto comma = text.find(',');
        auto part = text.substr(0, comma);
        while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
        while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
        if (!part.empty()) out.emplace_back(part);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return out;
}

}  // namespace tether::net
