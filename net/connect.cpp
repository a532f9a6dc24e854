#include "net/connect.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <utility>

namespace tether::net::connect {

namespace {

constexpr std::array<std::pair<code, std::string_view>, 16> names{{
    {code::canceled, "canceled"},
    {code::unknown, "unknown"},
    {code::invalid_argument, "invalid_argument"},
    {code::deadline_exceeded, "deadline_exceeded"},
    {code::not_found, "not_found"},
    {code::already_exists, "already_exists"},
    {code::permission_denied, "permission_denied"},
    {code::resource_exhausted, "resource_exhausted"},
    {code::failed_precondition, "failed_precondition"},
    {code::aborted, "aborted"},
    {code::out_of_range, "out_of_range"},
    {code::unimplemented, "unimplemented"},
    {code::internal, "internal"},
    {code::unavailable, "unavailable"},
    {code::data_loss, "data_loss"},
    {code::unauthenticated, "unauthenticated"},
}};

}  // namespace

namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "tether.connect"; }
    std::string message(int v) const override
    {
        if (v < 1 || v > static_cast<int>(names.size())) return "unknown Connect code";
        return std::string(to_string(static_cast<code>(v - 1)));
    }
};

}  // namespace

const boost::system::error_category& connect_category() noexcept
{
    static const category instance;
    return instance;
}

std::string_view to_string(code c) noexcept
{
    for (const auto& [k, v] : names)
        if (k == c) return v;
    return "unknown";
}

std::optional<code> parse_code(std::string_view s) noexcept
{
    for (const auto& [k, v] : names)
        if (v == s) return k;
    return std::nullopt;
}

unsigned http_status(code c) noexcept
{
    switch (c) {
        case code::canceled:
            return 499;
        case code::unknown:
        case code::internal:
        case code::data_loss:
            return 500;
        case code::invalid_argument:
        case code::failed_precondition:
        case code::out_of_range:
            return 400;
        case code::deadline_exceeded:
            return 504;
        case code::not_found:
            return 404;
        case code::already_exists:
        case code::aborted:
            return 409;
        case code::permission_denied:
            return 403;
        case code::resource_exhausted:
            return 429;
        case code::unimplemented:
            return 501;
        case code::unavailable:
            return 503;
        case code::unauthenticated:
            return 401;
    }
    return 500;
}

code code_from_status(unsigned status) noexcept
{
    switch (status) {
        case 400:
            return code::internal;
        case 401:
            return code::unauthenticated;
        case 403:
            return code::permission_denied;
        case 404:
            return code::unimplemented;
        case 429:
        case 502:
        case 503:
        case 504:
            return code::unavailable;
        default:
            return code::unknown;
    }
}

error decode_error(unsigned status, std::string_view body)
{
    boost::system::error_code ec;
    const auto v = boost::json::parse(body, ec);
    if (!ec && v.is_object()) {
        const auto& o = v.get_object();
        if (const auto* c = o.if_contains("code"); c && c->is_string()) {
            if (const auto parsed = parse_code(c->get_string())) {
                error e{*parsed, {}, true};
                if (const auto* m = o.if_contains("message"); m && m->is_string()) {
                    const std::string_view text = m->get_string();
                    e.message = text.substr(0, max_error_message_bytes);
                    if (text.size() > max_error_message_bytes)
                        e.message += "... (" + std::to_string(text.size()) + " bytes)";
                }
                return e;
            }
        }
    }
    return {code_from_status(status), "HTTP " + std::to_string(status)};
}

std::string encode_error(const error& e)
{
    boost::json::object o;
    o["code"] = to_string(e.c);
    if (!e.message.empty()) o["message"] = e.message;
    return boost::json::serialize(o);
}

}  // namespace tether::net::connect
