// One authenticated NodeService call with the agent's rules for failures.
#pragma once

#include "auth/session.hpp"
#include "net/rpc_client.hpp"

#include <boost/json/object.hpp>

namespace tether::app {

/// Calls `method` with the session's token; on `unauthenticated` logs in once
/// more and retries once (the session died under us: gateway restart,
/// expiry). The contract's permanent failures (BeginAuth refused with
/// permission_denied, Heartbeat answered not_found, each in a Connect error
/// body) throw fatal_exit(permanent_auth); everything else comes back as an
/// error to retry.
awaitable<net::rpc_result<boost::json::object>> session_call(auth::session_manager& session,
                                                             net::rpc_client& rpc, std::string method,
                                                             boost::json::object request,
                                                             std::chrono::milliseconds timeout);

}  // namespace tether::app
