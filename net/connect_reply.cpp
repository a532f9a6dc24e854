#include "net/connect_reply.hpp"

namespace tether::net::connect {

reply error_reply(unsigned status, code c, std::string_view message)
{
    reply r;
    r.head.status = status;
    r.head.headers.set("Content-Type", "application/json");
    r.head.body = encode_error({c, std::string(message)});
    return r;
}

reply error_reply(code c, std::string_view message)
{
    return error_reply(http_status(c), c, message);
}

reply refusal_reply(unsigned status, std::string_view reason)
{
    const code c = status == 400   ? code::invalid_argument
                   : status == 500 ? code::internal
                                   : code::resource_exhausted;
    return error_reply(status, c, reason);
}

}  // namespace tether::net::connect
