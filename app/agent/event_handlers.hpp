// The agent's event handlers: what each event type the gateway sends does
// on this node.
#pragma once

#include "auth/session.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/server_set.hpp"
#include "net/url.hpp"

#include <functional>
#include <memory>
#include <string>

namespace tether::app {

class config_sync_task;
class dispatch_task;

/// Asks the gateway whether this node is really gone, with one
/// authenticated call: throws fatal_exit(permanent_auth) when the gateway
/// says so, and returns otherwise (an event alone is not proof).
using revocation_check = std::function<awaitable<void>()>;
revocation_check confirm_with_gateway(auth::session_manager& session, net::server_set server,
                                      std::shared_ptr<net::replaceable_tls> tls);

/// config-updated and reset ask `sync` for a fetch; node-revoked naming
/// `node_id` ends the agent with exit status 3 once `confirm` agrees.
void add_agent_handlers(dispatch_task& dispatch, config_sync_task& sync, std::string node_id,
                        revocation_check confirm, const log::logger& log);

}  // namespace tether::app
