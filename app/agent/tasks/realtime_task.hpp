// The realtime task: follows the gateway's event stream and hands each
// event to the dispatch task.
#pragma once

#include "app/agent/metrics.hpp"
#include "auth/session.hpp"
#include "base/asio.hpp"
#include "base/backoff.hpp"
#include "base/log.hpp"
#include "net/server_set.hpp"
#include "net/sse_client.hpp"
#include "net/url.hpp"

#include <memory>
#include <vector>

namespace tether::app {

class config_sync_task;
class dispatch_task;

/// The stream URL candidates: each `--realtime-url` in order (a URL with no
/// path gets /v1/events), or the server's /v1/events when none is given.
std::vector<net::url> realtime_candidates(const net::server_set& server, const std::vector<net::url>& given);

class realtime_task {
public:
    struct deps {
        net::sse_options stream;
        auth::session_manager& session;
        net::server_set server;  ///< one URL, or replicas to fail over between
        std::shared_ptr<net::replaceable_tls> tls;
        dispatch_task& dispatch;
        config_sync_task& sync;
        agent_metrics& metrics;
        const log::logger& log;
        uniform01 rand;
    };

    explicit realtime_task(deps d);

    /// Runs until cancelled, or until the gateway refuses the stream for good
    /// (permission_denied on CreateStreamToken, 403 on the stream): then it
    /// logs why and returns, and heartbeats carry on. Each connect uses a new
    /// stream token; a 401 on the stream gets a new stream token, a second 401
    /// in a row a new session first. Every (re)connect asks `sync` for one
    /// catch-up fetch. If the first connect fails, one warning says realtime
    /// updates are unavailable and heartbeats still pick up changes.
    awaitable<void> run();

private:
    deps d_;
};

}  // namespace tether::app
