// Raw bytes to a loopback port and what comes back: for requests no HTTP
// client would send. Blocking POSIX calls, for tests only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace tether::test {

/// A connected TCP socket to 127.0.0.1:port; -1 on failure.
inline int connect_loopback(int port)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

inline bool send_all(int fd, const std::string& bytes)
{
    std::size_t at = 0;
    while (at < bytes.size()) {
        const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
        if (n <= 0) return false;
        at += static_cast<std::size_t>(n);
    }
    return true;
}

/// Reads until the peer closes or nothing arrives for `quiet`.
inline std::string read_until_close(int fd, std::chrono::milliseconds quiet)
{
    std::string out;
    char buf[16384];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(quiet.count())) <= 0) break;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

/// Sends `bytes` on a new connection and returns everything answered until
/// the server closes (or is quiet for `quiet`). A send the server cut short
/// (it refused early and closed) still returns what it answered.
inline std::string raw_exchange(int port, const std::string& bytes,
                                std::chrono::milliseconds quiet = std::chrono::milliseconds(3000))
{
    const int fd = connect_loopback(port);
    if (fd < 0) return "connect failed";
    (void)send_all(fd, bytes);
    auto out = read_until_close(fd, quiet);
    ::close(fd);
    return out;
}

/// How many HTTP responses `text` holds (status lines at a line start).
inline int count_responses(const std::string& text)
{
    int n = 0;
    for (std::size_t at = 0; (at = text.find("HTTP/1.1 ", at)) != std::string::npos; at += 9)
        if (at == 0 || text[at - 1] == '\n') ++n;
    return n;
}

}  // namespace tether::test
