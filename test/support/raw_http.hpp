// Raw bytes to a loopback port and what comes back: for requests no HTTP
// client would send. Blocking POSIX calls, for tests only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace tether::test {

/// A connected TCP socket to 127.0.0.1:port, from `source` (another
/// loopback address, 127.0.0.2: a second client on one machine); -1 on
/// failure.
inline int connect_loopback(int port, const char* source = nullptr)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (source != nullptr) {
        sockaddr_in from{};
        from.sin_family = AF_INET;
        if (::inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
            ::bind(fd, reinterpret_cast<const sockaddr*>(&from), sizeof from) != 0) {
            ::close(fd);
            return -1;
        }
    }
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
                                std::chrono::milliseconds quiet = std::chrono::milliseconds(3000),
                                const char* source = nullptr)
{
    const int fd = connect_loopback(port, source);
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

/// A socket listening on 127.0.0.1 that never accepts: the kernel completes
/// connections to it and nothing ever answers, which holds a client under
/// test in its connect or first read for as long as it is willing to wait.
class silent_listener {
public:
    silent_listener()
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 8) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            std::abort();
        port_ = ntohs(a.sin_port);
    }
    ~silent_listener() { ::close(fd_); }
    silent_listener(const silent_listener&) = delete;
    silent_listener& operator=(const silent_listener&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

/// A server on 127.0.0.1 that answers every request with `answer`, a whole
/// HTTP response, then closes: what a broken gateway, a proxy's page or
/// another program on the port says to a client under test. It runs on a
/// thread of its own, so a child process can be waited for beside it.
class canned_http_server {
public:
    explicit canned_http_server(std::string answer) : answer_(std::move(answer))
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            std::abort();
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~canned_http_server()
    {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    canned_http_server(const canned_http_server&) = delete;
    canned_http_server& operator=(const canned_http_server&) = delete;

    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] int requests() const { return requests_; }

    /// `body` as a 200 application/json response.
    static std::string json_answer(const std::string& body, int status = 200)
    {
        return "HTTP/1.1 " + std::to_string(status) +
               " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nConnection: close\r\n\r\n" + body;
    }

private:
    void serve()
    {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) != 1) continue;
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            // The whole request first: closing with unread bytes would
            // reset the connection before the client reads the answer.
            std::string in;
            char buf[4096];
            std::size_t want = std::string::npos;
            while (want == std::string::npos || in.size() < want) {
                pollfd r{c, POLLIN, 0};
                if (::poll(&r, 1, 2000) != 1) break;
                const ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                in.append(buf, static_cast<std::size_t>(n));
                if (const auto end = in.find("\r\n\r\n");
                    want == std::string::npos && end != std::string::npos) {
                    std::size_t length = 0;
                    for (const char* name : {"Content-Length: ", "content-length: "})
                        if (const auto at = in.find(name); at != std::string::npos && at < end)
                            length = std::strtoul(in.c_str() + at + 16, nullptr, 10);
                    want = end + 4 + length;
                }
            }
            ++requests_;
            (void)send_all(c, answer_);
            ::shutdown(c, SHUT_WR);
            (void)read_until_close(c, std::chrono::milliseconds(200));
            ::close(c);
        }
    }

    std::string answer_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> requests_{0};
    std::thread thread_;
};

}  // namespace tether::test
