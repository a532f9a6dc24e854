// The agent's endpoints (health, /status, the config API) on a Unix socket
// (`--local-socket PATH`), for workloads in other containers of a pod or
// without a network namespace in common. Who may talk is decided twice: the
// socket file's mode (0600, or 0660 with --local-socket-group) and the
// peer's credentials (SO_PEERCRED) on every connection: our uid, root, or a
// member of that group; anyone else is closed without an answer.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/http_server.hpp"

#include <boost/asio/local/stream_protocol.hpp>

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <optional>

namespace tether::app {

/// Whether a peer with these credentials may use the socket: `owner`'s uid,
/// root, or a member of `group` (primary or supplementary, read from
/// /proc/<pid>/status).
bool local_peer_allowed(pid_t pid, uid_t uid, gid_t gid, uid_t owner, std::optional<gid_t> group);

class local_socket_task {
public:
    struct deps {
        asio::any_io_executor ex;
        std::filesystem::path path;
        std::optional<gid_t> group;
        net::handler handler;
        const log::logger& log;
        std::size_t max_connections = 256;
    };

    /// Binds now: a path in use by a live listener, or that cannot be
    /// created, is a start-up error (throws std::runtime_error). A stale
    /// socket file (nobody listening) is replaced.
    explicit local_socket_task(deps d);
    ~local_socket_task();
    local_socket_task(const local_socket_task&) = delete;
    local_socket_task& operator=(const local_socket_task&) = delete;

    /// Accepts until cancelled; then ends every connection and removes the
    /// socket file.
    awaitable<void> run();

    [[nodiscard]] std::int64_t refused() const noexcept { return refused_.load(); }

private:
    deps d_;
    asio::local::stream_protocol::acceptor acceptor_;
    std::atomic<std::int64_t> refused_{0};
};

}  // namespace tether::app
