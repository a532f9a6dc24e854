// The child's side of the credential broker handshake (docs/protocol.md section
// 6), for children written in C++: POSIX only, no tether or Boost headers.
// Copy it into a child's tree as it is.
//
//     int fd = tether::broker_client::connect_stream();  // the socket when
//                                                        // TETHER_BROKER_SOCKET is set
//     // fd is a connected stream: write one HTTP/1.1 request to
//     // $TETHER_API_BASE/path?app_key=$TETHER_SENTINEL, read the response.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tether::broker_client {

/// The control channel from TETHER_CRED_FD, or -1 (errno EBADF) when unset.
inline int control_fd()
{
    const char* v = std::getenv("TETHER_CRED_FD");
    if (!v || !*v) {
        errno = EBADF;
        return -1;
    }
    return std::atoi(v);
}

/// TETHER_BROKER_SOCKET (set by `tether exec --broker-socket`), or null.
inline const char* broker_socket_path()
{
    const char* v = std::getenv("TETHER_BROKER_SOCKET");
    return v && *v ? v : nullptr;
}

/// A fresh stream by one connect() to the broker's socket: no handshake.
/// -1 with errno from the system (ECONNREFUSED once the broker is gone).
inline int connect_socket(const char* path)
{
    sockaddr_un addr{};
    if (std::strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path, std::strlen(path) + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/// The first half of connect_stream(): asks for one stream. False with
/// errno on failure.
inline bool request_stream(int control)
{
    if (control < 0) return false;
    const char request = 0x01;
    ssize_t sent = 0;
    do {
        sent = ::send(control, &request, 1, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent == 1;
}

/// The second half: takes one answer, as connect_stream() returns it.
/// Requests may be sent ahead and their answers taken later, one each.
inline int receive_stream(int control)
{
    char answer = 0;
    iovec iov{&answer, 1};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    ssize_t got = 0;
    do {
        got = ::recvmsg(control, &m, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -1;
    if (got == 0) {
        errno = EPIPE;
        return -1;
    }
    int fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (answer == 0x01 && fd >= 0) return fd;
    if (fd >= 0) ::close(fd);
    errno = EAGAIN;
    return -1;
}

/// Asks the broker for a fresh stream. Returns its descriptor (close-on-exec
/// set), or -1 with errno: EAGAIN when the broker refused (retrying is safe),
/// EPIPE when the channel is closed, anything else from the system.
/// Thread-safe without a lock: every request gets exactly one answer and
/// answers are interchangeable (each accept carries its own fresh stream),
/// so concurrent callers may take each other's and still each get one.
inline int connect_stream(int control)
{
    if (!request_stream(control)) return -1;
    return receive_stream(control);
}

/// A fresh stream the cheapest way the broker offers: connect() to its
/// socket when TETHER_BROKER_SOCKET is set, else the fd 3 handshake.
inline int connect_stream()
{
    if (const char* path = broker_socket_path()) return connect_socket(path);
    return connect_stream(control_fd());
}

}  // namespace tether::broker_client
