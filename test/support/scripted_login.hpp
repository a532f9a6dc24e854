// The login half of a scripted gateway: any node gets a challenge and a
// session token ("sess-<n>", n counting logins), so a test can script just
// the calls it is about.
#pragma once

#include "net/http_server.hpp"
#include "net/protojson.hpp"

#include <boost/json/serialize.hpp>

#include <optional>
#include <string>

namespace tether::test {

inline std::optional<net::reply> scripted_login(const net::http::request& req, int& logins)
{
    namespace json = boost::json;
    if (req.target.ends_with("/BeginAuth")) {
        ++logins;
        const json::object o{{"challenge", net::protojson::base64_encode(std::string(32, 'c'))},
                             {"expiresAt", "2030-01-01T00:00:00Z"}};
        return net::json_reply(json::serialize(o));
    }
    if (req.target.ends_with("/CompleteAuth")) {
        const json::object o{{"sessionToken", "sess-" + std::to_string(logins)},
                             {"expiresAt", "2030-01-02T00:00:00Z"},
                             {"serverTime", "2030-01-01T00:00:00Z"}};
        return net::json_reply(json::serialize(o));
    }
    return std::nullopt;
}

}  // namespace tether::test
