// The child's side of the credential broker handshake (docs/protocol.md section
// 6), for children written in C++: POSIX only, no tether or Boost headers.
// Copy it into a child's tree as it is.
//
//     int fd = tether::broker_client::connect_stream();  // the socket when
//                                                        // TETHER_BROKER_SOCKET is set
//     // fd is a connected stream: write one HTTP/1.1 request to
//     // $TETHER_API_BASE/path?app_key=$TETHER_SENTINEL, read the response.
//
//     thread_local tether::broker_client::stream_batch streams;
//     int fd = streams.take();  // over fd 3, eight asked for at a time
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tether::broker_client {

/// The most streams one `0x02 N` request may ask for and one answer carry.
inline constexpr unsigned max_batch = 16;

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

/// Asks for `n` streams (1-16) in one request, `0x02 N`: answered by one
/// datagram that receive_streams() takes. A broker that predates it
/// refuses it (0xFF); see stream_batch for the fallback.
inline bool request_streams(int control, unsigned n)
{
    if (control < 0) return false;
    if (n < 1 || n > max_batch) {
        errno = EINVAL;
        return false;
    }
    const char request[2] = {0x02, static_cast<char>(n)};
    ssize_t sent = 0;
    do {
        sent = ::send(control, request, sizeof request, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent == static_cast<ssize_t>(sizeof request);
}

/// Takes one answer, whatever request it answers: up to `room` (1-16)
/// streams into `out`, their number returned; descriptors beyond `room` are
/// closed. 0 with errno EAGAIN when the broker refused (retrying is safe),
/// -1 with errno EPIPE when the channel is closed, or from the system.
inline int receive_streams(int control, int* out, unsigned room)
{
    char answer = 0;
    iovec iov{&answer, 1};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * max_batch)] = {};
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
    unsigned taken = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (fd < 0) continue;
            if (answer == 0x01 && taken < room)
                out[taken++] = fd;
            else
                ::close(fd);
        }
    }
    if (taken == 0) errno = EAGAIN;
    return static_cast<int>(taken);
}

/// The second half: takes one answer, as connect_stream() returns it.
/// Requests may be sent ahead and their answers taken later, one each.
inline int receive_stream(int control)
{
    int fd = -1;
    const int n = receive_streams(control, &fd, 1);
    return n == 1 ? fd : -1;
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

/// Fresh streams over fd 3 asked for several at a time (`0x02 N`) and
/// kept until used, so the handshake's round trip is paid once per batch,
/// not once per stream; the next batch is asked for as the last spare is
/// taken, so its answer is there by the time it is needed. take() is what
/// connect_stream() is, one stream per call; each stream is still fresh and
/// private. Not thread-safe: one per thread (thread_local), each holding at
/// most `batch` - 1 spares and one answer on its way. Spares older than
/// `max_age` (counted from the request) are closed unused: the broker
/// closes a stream that has not begun a request within 30 s. After a
/// fork() the new process holds copies of its parent's spares: it closes
/// them unused, so no stream is ever written by two processes. Against a
/// broker that refuses the batch request but grants the single one (it
/// predates `0x02`), every later take() asks for one stream.
class stream_batch {
    using clock = std::chrono::steady_clock;

public:
    explicit stream_batch(int control = control_fd(), unsigned batch = 8,
                          clock::duration max_age = std::chrono::seconds(10))
        : control_(control),
          batch_(batch < 1           ? 1
                 : batch > max_batch ? max_batch
                                     : batch),
          max_age_(max_age)
    {
        static std::once_flag registered;
        std::call_once(registered, [] { ::pthread_atfork(nullptr, nullptr, [] { ++forks(); }); });
        forks_seen_ = forks().load();
    }
    stream_batch(const stream_batch&) = delete;
    stream_batch& operator=(const stream_batch&) = delete;
    ~stream_batch()
    {
        forget_a_parents();
        drop_spares();
        if (asked_) {
            // The answer on its way would otherwise wait in the channel
            // for another taker, its streams held open for nobody.
            int fds[max_batch];
            const int got = receive_streams(control_, fds, max_batch);
            for (int i = 0; i < got; ++i) ::close(fds[i]);
        }
    }

    /// A fresh stream, or -1 with errno as connect_stream().
    int take()
    {
        forget_a_parents();
        if (count_ == 0 && asked_) {
            asked_ = false;
            if (const int got = receive_batch(asked_at_); got <= 0) return got < 0 ? -1 : refused();
        }
        if (count_ > 0 && clock::now() - received_ > max_age_) drop_spares();
        if (count_ == 0) {
            if (batch_ == 1) return connect_stream(control_);
            const auto at = clock::now();
            if (!request_streams(control_, batch_)) return -1;
            if (const int got = receive_batch(at); got <= 0) return got < 0 ? -1 : refused();
        }
        const int fd = spares_[--count_];
        if (count_ == 0 && batch_ > 1 && request_streams(control_, batch_)) {
            asked_ = true;
            asked_at_ = clock::now();
        }
        return fd;
    }

    /// Streams held for the next take() calls (not counting an answer on
    /// its way).
    [[nodiscard]] unsigned spares() const noexcept { return count_; }

private:
    /// Takes the answer to the batch request sent at `asked` into the
    /// spares: their number, 0 when refused, -1 as receive_streams().
    int receive_batch(clock::time_point asked)
    {
        const int got = receive_streams(control_, spares_, batch_);
        if (got > 0) {
            count_ = static_cast<unsigned>(got);
            received_ = asked;
        }
        return got;
    }

    /// A batch request refused: a passing failure (retrying is safe), or a
    /// broker that does not know 0x02. One stream asked for the old way
    /// tells them apart.
    int refused()
    {
        const int fd = connect_stream(control_);
        if (fd >= 0) batch_ = 1;
        return fd;
    }

    void drop_spares()
    {
        while (count_ > 0) ::close(spares_[--count_]);
    }

    /// fork()s so far in this process's line, counted in each child.
    static std::atomic<unsigned>& forks()
    {
        static std::atomic<unsigned> n{0};
        return n;
    }

    /// In a process forked since the spares came: they are the parent's
    /// (closing our copies leaves its own open), and so is the answer on
    /// its way, which the parent takes.
    void forget_a_parents()
    {
        const unsigned f = forks().load();
        if (f == forks_seen_) return;
        forks_seen_ = f;
        drop_spares();
        asked_ = false;
    }

    int control_;
    unsigned batch_;
    clock::duration max_age_;
    clock::time_point received_{};  ///< when the spares were asked for
    clock::time_point asked_at_{};
    bool asked_ = false;  ///< a batch request's answer is on its way
    unsigned forks_seen_ = 0;
    int spares_[max_batch] = {};
    unsigned count_ = 0;
};

}  // namespace tether::broker_client
