#include "auth/broker_control.hpp"

#include "auth/broker_client.hpp"
#include "auth/broker_rewrite.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace tether::auth {

// The child's side (a header children copy, with no tether includes) keeps
// its own copy of the bound.
static_assert(broker_client::max_batch == max_control_batch);

namespace {

struct received {
    std::string bytes;
    bool truncated = false;
    bool descriptors = false;
    bool eof = false;
    bool again = false;
    std::optional<ucred> sender;
};

/// One datagram, without blocking. Descriptors it carried are closed here.
received receive_datagram(int fd)
{
    received out;
    char buf[3];  // the longest valid request (0x02 N) and one byte more
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 32) + CMSG_SPACE(sizeof(ucred))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    ssize_t n = 0;
    do {
        n = ::recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        out.again = errno == EAGAIN || errno == EWOULDBLOCK;
        out.eof = !out.again;
        return out;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            out.descriptors = true;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int passed = -1;
                std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (passed >= 0) ::close(passed);
            }
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            ucred u{};
            std::memcpy(&u, CMSG_DATA(c), sizeof u);
            out.sender = u;
        }
    }
    out.truncated = (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    // SEQPACKET reads 0 for an empty datagram and for the peer's close; with
    // SO_PASSCRED only a real datagram carries credentials.
    if (n == 0 && !out.sender && !out.descriptors) {
        pollfd p{fd, POLLRDHUP, 0};
        out.eof = ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
        if (!out.eof) out.again = true;  // nothing there after all
        return out;
    }
    out.bytes.assign(buf, static_cast<std::size_t>(std::min<ssize_t>(n, sizeof buf)));
    return out;
}

void reply_byte(int fd, char b)
{
    (void)::send(fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

std::pair<int, int> make_control_pair()
{
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair(SOCK_SEQPACKET)");
    const int on = 1;
    if (::setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
        const int e = errno;
        ::close(sv[0]);
        ::close(sv[1]);
        throw std::system_error(e, std::generic_category(), "setsockopt(SO_PASSCRED)");
    }
    return {sv[0], sv[1]};
}

bool in_process_tree(pid_t pid, pid_t root)
{
    for (int depth = 0; pid > 1 && depth < 64; ++depth) {
        if (pid == root) return true;
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) return false;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const auto close = line.rfind(')');
        if (close == std::string::npos) return false;
        std::istringstream rest(line.substr(close + 1));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        pid = ppid;
    }
    return pid == root;
}

std::pair<int, int> make_stream_pair()
{
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {-1, -1};
    return {sv[0], sv[1]};
}

control_step next_control_step(int fd, pid_t child, const std::function<int()>& take_stream)
{
    control_step out;
    const auto d = receive_datagram(fd);
    if (d.eof) {
        out.what = control_step::kind::closed;
        return out;
    }
    if (d.again) return out;
    out.bytes = d.bytes.size();
    out.descriptors = d.descriptors;
    out.truncated = d.truncated;
    out.outside_child_tree = child > 0 && (!d.sender || !in_process_tree(d.sender->pid, child));
    const std::size_t wanted =
        out.outside_child_tree ? 0 : streams_requested(d.bytes, d.truncated, d.descriptors);
    if (wanted == 0) {
        reply_byte(fd, control_refuse);
        out.what = control_step::kind::refused;
        return out;
    }
    // A batch the system cuts short (EMFILE) is answered with what was
    // made: the child counts the descriptors, not its request.
    int theirs[max_control_batch];
    std::size_t made = 0;
    for (; made < wanted; ++made) {
        errno = 0;
        theirs[made] = take_stream();
        if (theirs[made] < 0) {
            out.error = errno;
            break;
        }
    }
    if (made == 0) {
        reply_byte(fd, control_refuse);
        out.what = control_step::kind::failed;
        return out;
    }
    // Ours close with their owner when the hand-over fails.
    const bool sent = send_with_fds(fd, control_accept, theirs, made);
    for (std::size_t i = 0; i < made; ++i) ::close(theirs[i]);
    out.streams = sent ? made : 0;
    out.what = sent ? control_step::kind::accepted : control_step::kind::failed;
    return out;
}

bool send_with_fds(int fd, char b, const int* passed, std::size_t count)
{
    if (count == 0 || count > max_control_batch) {
        errno = EINVAL;
        return false;
    }
    iovec iov{&b, 1};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * max_control_batch)] = {};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * count);
    std::memcpy(CMSG_DATA(c), passed, sizeof(int) * count);
    ssize_t n = 0;
    do {
        n = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n == 1;
}

int make_broker_listener(const std::string& path)
{
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path)
        throw std::system_error(ENAMETOOLONG, std::generic_category(), "broker socket path " + path);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket(AF_UNIX)");
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const auto fail = [&](const char* what) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), std::string(what) + " " + path);
    };
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
    if (::chmod(path.c_str(), 0600) != 0) fail("chmod");
    if (::listen(fd, SOMAXCONN) != 0) fail("listen");
    return fd;
}

accept_step next_accept(int listen_fd, pid_t child)
{
    accept_step out;
    int fd = -1;
    do {
        fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        // A connection reset before we took it is gone: look for the next.
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return out;
        out.what = accept_step::kind::failed;
        out.error = errno;
        return out;
    }
    ucred who{};
    socklen_t len = sizeof who;
    const bool known = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &who, &len) == 0 && len == sizeof who;
    out.peer = known ? who.pid : 0;
    if (!known || (child > 0 && !in_process_tree(who.pid, child))) {
        ::close(fd);
        out.what = accept_step::kind::refused;
        return out;
    }
    out.fd = fd;
    out.what = accept_step::kind::accepted;
    return out;
}

}  // namespace tether::auth
