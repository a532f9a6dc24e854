#include "gateway/records.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace tether::gateway {

std::string caps_to_json(const std::vector<std::string>& caps)
{
    boost::json::array a;
    for (const auto& c : caps) a.emplace_back(c);
    return boost::json::serialize(a);
}

std::vector<std::string> caps_from_json(std::string_view text)
{
    std::vector<std::string> out;
    boost::system::error_code ec;
    const auto v = boost::json::parse(text, ec);
    if (ec || !v.is_array()) return out;
    for (const auto& c : v.get_array())
        if (c.is_string()) out.emplace_back(c.get_string());
    return out;
}

}  // namespace tether::gateway
