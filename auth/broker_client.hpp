// The child's side of the credential broker handshake (docs/protocol.md section
// 6), for children written in C++: POSIX only, no tether or Boost headers.
// Copy it into a child's tree as it is.
//
//     int fd = tether::broker_client::connect_stream();
//     // fd is a connected stream: write one HTTP/1.1 request to
//     // $TETHER_API_BASE/path?app_key=$TETHER_SENTINEL, read the response.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
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

/// Asks the broker for a fresh stream. Returns its descriptor (close-on-exec
/// set), or -1 with errno: EAGAIN when the broker refused (retrying is safe),
/// EPIPE when the channel is closed, anything else from the system.
/// Thread-safe without a lock: every request gets exactly one answer and
/// answers are interchangeable (each accept carries its own fresh stream),
/// so concurrent callers may take each other's and still each get one.
inline int connect_stream(int control = control_fd())
{
    if (control < 0) return -1;
    const char request = 0x01;
    ssize_t sent = 0;
    do {
        sent = ::send(control, &request, 1, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent != 1) return -1;

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

}  // namespace tether::broker_client
