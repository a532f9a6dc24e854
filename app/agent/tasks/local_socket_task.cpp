#include "app/agent/tasks/local_socket_task.hpp"

#include "base/exceptions.hpp"
#include "base/task_group.hpp"

#include <boost/asio/this_coro.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace tether::app {

bool local_peer_allowed(pid_t pid, uid_t uid, gid_t gid, uid_t owner, std::optional<gid_t> group)
{
    if (uid == owner || uid == 0) return true;
    if (!group) return false;
    if (gid == *group) return true;
    // Supplementary groups: a peer that exits meanwhile (or a reused pid)
    // is read as what /proc says now; the file mode already kept out
    // anyone outside the group.
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("Groups:")) continue;
        std::istringstream ids(line.substr(7));
        for (long g = 0; ids >> g;)
            if (static_cast<gid_t>(g) == *group) return true;
        return false;
    }
    return false;
}

namespace {

/// Whether something listens on `path` now.
bool listening(const std::filesystem::path& path)
{
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return up;
}

}  // namespace

local_socket_task::local_socket_task(deps d) : d_(std::move(d)), acceptor_(d_.ex)
{
    const auto& path = d_.path;
    if (path.string().size() >= sizeof(sockaddr_un::sun_path))
        throw std::runtime_error(path.string() + ": longer than a Unix socket path may be");
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path.string() + " exists and is not a socket");
        if (listening(path)) throw std::runtime_error(path.string() + " is in use by another process");
        ::unlink(path.c_str());  // stale: its listener is gone
    }
    // Created with no access for anyone, then opened to who may use it:
    // no moment in which others could connect.
    const mode_t old = ::umask(0777);
    error_code ec;
    acceptor_.open(asio::local::stream_protocol(), ec);
    if (!ec) acceptor_.bind(asio::local::stream_protocol::endpoint(path.string()), ec);
    ::umask(old);
    if (ec) throw std::runtime_error("cannot bind " + path.string() + ": " + ec.message());
    if (d_.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *d_.group) != 0)
        throw std::runtime_error("cannot set the group of " + path.string() + ": " + std::strerror(errno));
    if (::chmod(path.c_str(), d_.group ? 0660 : 0600) != 0)
        throw std::runtime_error("cannot set the mode of " + path.string() + ": " + std::strerror(errno));
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + path.string() + ": " + ec.message());
}

local_socket_task::~local_socket_task()
{
    error_code ignored;
    acceptor_.close(ignored);
    ::unlink(d_.path.c_str());
}

awaitable<void> local_socket_task::run()
{
    const auto ex = co_await asio::this_coro::executor;
    const auto cs = co_await asio::this_coro::cancellation_state;
    co_await asio::this_coro::throw_if_cancelled(false);
    task_group connections(ex);
    std::atomic<std::size_t> open{0};
    net::server_options opts;
    const uid_t owner = ::geteuid();
    static log::throttle refusals;
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
        if (cs.cancelled() != asio::cancellation_type::none) break;
        if (ec) {
            if (ec == asio::error::operation_aborted) break;
            // Out of descriptors and the like: a pause, not a spin.
            timer pause{ex, std::chrono::milliseconds(100)};
            co_await pause.async_wait(nothrow);
            continue;
        }
        ucred peer{};
        socklen_t len = sizeof peer;
        const bool known = ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0;
        if (!known || !local_peer_allowed(peer.pid, peer.uid, peer.gid, owner, d_.group) ||
            open.load() >= d_.max_connections) {
            ++refused_;
            if (std::uint64_t left_out = 0; refusals.allow(left_out))
                d_.log.warn("local.refused",
                            {{"uid", static_cast<std::int64_t>(peer.uid)},
                             {"pid", static_cast<std::int64_t>(peer.pid)},
                             {"reason", open.load() >= d_.max_connections ? "too many connections"
                                                                          : "peer credentials"},
                             {"suppressed", left_out}});
            continue;  // closed without a byte
        }
        ++open;
        connections.spawn(ex, net::serve_local_stream(std::move(socket), d_.handler, opts, d_.log),
                          [&open, this](const std::exception_ptr& e) {
                              --open;
                              if (e) d_.log.debug("local.connection_ended", {{"error", describe(e)}});
                          });
    }
    connections.stop();
    co_await connections.join();
}

}  // namespace tether::app
