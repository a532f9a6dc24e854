// The agent's event stream task and the handlers it feeds.
#pragma once

#include "app/agent_metrics.hpp"
#include "auth/session.hpp"
#include "net/asio.hpp"
#include "net/backoff.hpp"
#include "net/log.hpp"
#include "net/sse_client.hpp"
#include "net/url.hpp"

#include <memory>
#include <vector>

namespace tether::app {

class config_sync;
class event_dispatcher;

/// The stream URL candidates: each `--realtime-url` in order (a URL with no
/// path gets /v1/events), or the server's /v1/events when none is given.
std::vector<net::url> realtime_candidates(const net::url& server, const std::vector<net::url>& given);

/// Runs until cancelled, or until the gateway refuses the stream for good
/// (permission_denied on CreateStreamToken, 403 on the stream): then it
/// logs why and returns, and heartbeats carry on. Each connect uses a new
/// stream token; a 401 on the stream gets a new stream token, a second 401
/// in a row a new session first. Every (re)connect asks `sync` for one
/// catch-up fetch. If the first connect fails, one warning says realtime
/// updates are unavailable and heartbeats still pick up changes.
awaitable<void> run_realtime(net::sse_options opts, auth::session_manager& session, net::url server,
                             std::shared_ptr<asio::ssl::context> tls, event_dispatcher& dispatch,
                             config_sync& sync, agent_metrics& metrics, const log::logger& log,
                             net::uniform01 rand);

/// Asks the gateway whether this node is really gone, with one
/// authenticated call: throws fatal_exit(permanent_auth) when the gateway
/// says so, and returns otherwise (an event alone is not proof).
using revocation_check = std::function<awaitable<void>()>;
revocation_check confirm_with_gateway(auth::session_manager& session, net::url server,
                                      std::shared_ptr<asio::ssl::context> tls);

/// The agent's handlers: config-updated and reset ask `sync` for a fetch;
/// node-revoked naming `node_id` ends the agent with exit status 3 once
/// `confirm` agrees.
void add_agent_handlers(event_dispatcher& dispatch, config_sync& sync, std::string node_id,
                        revocation_check confirm, const log::logger& log);

}  // namespace tether::app
