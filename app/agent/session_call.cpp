#include "app/agent/session_call.hpp"

#include "app/common/exit_status.hpp"

namespace tether::app {

namespace {

[[noreturn]] void permanent(const std::string& detail)
{
    throw fatal_exit(exit_status::permanent_auth, auth::session_manager::reenroll_hint(detail));
}

}  // namespace

awaitable<net::rpc_result<boost::json::object>> session_call(auth::session_manager& session,
                                                             net::rpc_client& rpc, std::string method,
                                                             boost::json::object request,
                                                             std::chrono::milliseconds timeout)
{
    using net::connect::code;
    const std::string svc(net::node_service);
    auto tok = co_await session.token();
    if (!tok) {
        if (tok.error().permanent) permanent(tok.error().error.message);
        net::rpc_result<boost::json::object> failed = tok.error().error;
        co_return failed;
    }
    secret bearer = *tok;
    auto r = co_await rpc.call(svc, method, request, bearer, timeout);
    if (!r && r.error().c == code::unauthenticated) {
        auto fresh = co_await session.refresh(bearer);
        if (!fresh && fresh.error().permanent) permanent(fresh.error().error.message);
        if (fresh) {
            bearer = *fresh;
            r = co_await rpc.call(svc, method, request, bearer, timeout);
        }
    }
    // The contract makes not_found permanent for Heartbeat only (the node was
    // deleted or revoked); elsewhere it may be a proxy's or a new gateway's.
    if (!r && method == "Heartbeat" && r.error().explicit_code && r.error().c == code::not_found)
        permanent("not_found: " + r.error().message);
    co_return r;
}

}  // namespace tether::app
