#include "net/rpc_client.hpp"

#include "net/errc.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"

#include <boost/json/serialize.hpp>

namespace tether::net {

awaitable<rpc_result<boost::json::object>> rpc_client::call(std::string service, std::string method,
                                                            boost::json::object request, secret bearer,
                                                            std::chrono::milliseconds timeout)
{
    const url base = servers_.current();
    http::request req;
    req.method = "POST";
    const url target = base.with_path("/" + service + "/" + method);
    req.target = target.target();
    req.headers.set("Content-Type", "application/json");
    req.headers.set(connect::protocol_version_header, "1");
    req.headers.set(connect::timeout_header, std::to_string(timeout.count()));
    if (!bearer.empty()) req.headers.set("Authorization", "Bearer " + std::string(bearer.reveal()));
    req.body = boost::json::serialize(request);

    auto res = co_await http_.request(target, std::move(req), timeout);
    rpc_result<boost::json::object> out = boost::json::object{};
    if (!res) {
        const auto ec = res.error();
        connect::error e;
        if (ec == errc::timeout)
            e = {connect::code::deadline_exceeded, "no answer from " + base.redacted() + " in time"};
        else if (ec == asio::error::operation_aborted)
            e = {connect::code::canceled, "canceled"};
        else
            e = {connect::code::unavailable, base.redacted() + ": " + ec.message()};
        if (e.c != connect::code::canceled) servers_.failed(base);
        out = e;
        co_return out;
    }
    if (res->status != 200) {
        auto e = connect::decode_error(res->status, res->body);
        if (e.c == connect::code::unavailable || e.c == connect::code::deadline_exceeded)
            servers_.failed(base);
        out = std::move(e);
        co_return out;
    }
    auto body = protojson::parse_object(res->body);
    if (!body) {
        out = connect::error{connect::code::internal, "malformed response: " + body.error().message()};
        co_return out;
    }
    out = std::move(*body);
    co_return out;
}

}  // namespace tether::net
