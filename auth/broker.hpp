// The egress-auth credential broker (Linux): hands a child private stream
// sockets over its SOCK_SEQPACKET control channel and forwards the HTTP
// requests it sends there to the upstream, with the real credential put in
// place of the sentinel.
#pragma once

#include "auth/broker_control.hpp"
#include "base/asio.hpp"
#include "base/log.hpp"
#include "base/secret.hpp"
#include "net/url.hpp"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace tether::net {
class replaceable_tls;
}

namespace tether::auth {

/// Where the real credential comes from for each request.
class credential_source {
public:
    virtual ~credential_source() = default;
    virtual awaitable<result<secret>> get() = 0;
    /// The upstream said 401 to `rejected`: a fresh one, or the same if
    /// this source cannot refresh (a file).
    virtual awaitable<result<secret>> refresh(secret rejected) = 0;
    /// A credential that never changes, read without a call per request;
    /// nullptr when it may (get() is asked then).
    [[nodiscard]] virtual const secret* fixed() const noexcept { return nullptr; }
};

struct broker_options {
    net::url upstream;
    /// Each new upstream connection takes the context current then (a CA
    /// bundle followed while running); kept-alive ones go on with theirs.
    std::shared_ptr<net::replaceable_tls> tls;
    std::string sentinel;
    /// From sending a request to the upstream's response header, and then
    /// between two pieces of its body.
    std::chrono::milliseconds upstream_timeout{30'000};
    std::size_t max_request_body = 8U << 20U;
    /// With SO_PASSCRED on the control socket: datagrams from processes
    /// outside this process's tree are refused (a same-uid process could
    /// otherwise take fd 3 with pidfd_getfd). -1: no check.
    pid_t child = -1;
    /// A listening stream socket (make_broker_listener) the broker owns
    /// from run() on: connections from `child`'s tree get streams served
    /// like fd 3's, without the handshake. -1: none (the default).
    int listen_fd = -1;
};

struct broker_stats {
    std::atomic<std::int64_t> streams{0};
    std::atomic<std::int64_t> refused_datagrams{0};
    std::atomic<std::int64_t> refused_connections{0};
    std::atomic<std::int64_t> requests{0};
    std::atomic<std::int64_t> refused_requests{0};
    std::atomic<std::int64_t> upstream_failures{0};
    std::atomic<std::int64_t> streamed_responses{0};
};

class broker {
public:
    broker(broker_options opts, credential_source& creds, const log::logger& log);
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    /// The dispatch task. Takes ownership of `control_fd` (our end of the
    /// pair, SO_PASSCRED already set). Runs until the child closes its end
    /// or cancellation; then cancels every proxy and waits for them.
    awaitable<void> run(int control_fd);

    [[nodiscard]] const broker_stats& stats() const noexcept { return stats_; }

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    broker_stats stats_;
};

}  // namespace tether::auth
