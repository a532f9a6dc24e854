// A child for `tether exec` tests, using auth/broker_client.hpp:
//   broker_child dump                  environ, cmdline and fds to stdout
//   broker_child get THREADS N PATH [batch]   THREADS x N requests, each checked for its own answer;
//                                      "batch": streams from a stream_batch per thread
//   broker_child raw (empty|two|other|withfd|batch0|batch17|batchlong)   one malformed datagram;
//                                      prints the answer
//   broker_child once PATH [EXTRA]     one request (EXTRA: raw header lines), prints the response
//   broker_child burst N PATH          N streams asked for while the agent is stopped (SIGSTOP), so
//                                      its broker wakes to all of them at once with none open yet;
//                                      then one request on each, "good X bad Y"
//   broker_child leak N PATH [batch]  10 warm-up requests, "warm", pause, N more, "good X", pause
//   broker_child post PATH BODY        one JSON POST with the sentinel as bearer
//   broker_child head PATH             one HEAD request, prints the response and "<end>"
//   broker_child die PATH              starts a request, then SIGKILLs itself
//   broker_child orphan SECONDS        leaves a child behind that exits after SECONDS, waits 2 s,
//                                      prints "zombies N" among its own former children
//   broker_child stream PATH FILE      one keep-alive stream: GET PATH (SENTINEL replaced), the chunked
//                                      body decoded as it arrives ("first: LINE" once its first line is
//                                      in) and saved to FILE, then GET /v1/after on the same stream
#include "auth/broker_client.hpp"

#include <dirent.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string slurp(const char* path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool write_all(int fd, const std::string& s)
{
    std::size_t off = 0;
    while (off < s.size()) {
        const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

std::string read_all(int fd)
{
    std::string out;
    char buf[8192];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
}

std::string request(const std::string& target, const std::string& extra = {},
                    const std::string& method = "GET")
{
    return method + " " + target + " HTTP/1.1\r\nHost: tether-broker.invalid\r\nConnection: close\r\n" +
           extra + "\r\n";
}

std::string sentinel()
{
    const char* s = std::getenv("TETHER_SENTINEL");
    return s ? s : "";
}

/// `text` with every "SENTINEL" replaced by the real one.
std::string with_sentinel(std::string text)
{
    for (std::size_t at; (at = text.find("SENTINEL")) != std::string::npos;) text.replace(at, 8, sentinel());
    return text;
}

bool batched = false;

int exchange(const std::string& req, std::string& response)
{
    thread_local tether::broker_client::stream_batch streams;
    const int fd = batched ? streams.take() : tether::broker_client::connect_stream();
    if (fd < 0) return -1;
    const bool ok = write_all(fd, req);
    response = ok ? read_all(fd) : std::string();
    ::close(fd);
    return ok ? 0 : -1;
}

/// Reads a chunked body as it arrives, calling `piece` for each chunk's
/// data; false on a malformed or cut body.
bool read_chunked(int fd, std::string& pending, const std::function<void(std::string_view)>& piece)
{
    const auto fill = [&] {
        char buf[65536];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) pending.append(buf, static_cast<std::size_t>(n));
        return n > 0;
    };
    for (;;) {
        std::size_t eol = 0;
        while ((eol = pending.find("\r\n")) == std::string::npos)
            if (!fill()) return false;
        const std::size_t size = std::stoul(pending.substr(0, eol), nullptr, 16);
        while (pending.size() < eol + 2 + size + 2)
            if (!fill()) return false;
        if (size == 0) {
            pending.erase(0, eol + 4);  // no trailers from the broker
            return true;
        }
        piece(std::string_view(pending).substr(eol + 2, size));
        pending.erase(0, eol + 2 + size + 2);
    }
}

/// The status and header of one response; "" when the stream ended first.
std::string read_head(int fd, std::string& pending)
{
    std::size_t end = 0;
    char buf[4096];
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return {};
        pending.append(buf, static_cast<std::size_t>(n));
    }
    std::string head = pending.substr(0, end + 4);
    pending.erase(0, end + 4);
    return head;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "dump") {
        auto env = slurp("/proc/self/environ");
        for (auto& c : env)
            if (c == '\0') c = '\n';
        auto cmd = slurp("/proc/self/cmdline");
        for (auto& c : cmd)
            if (c == '\0') c = ' ';
        std::cout << "ENV\n" << env << "CMDLINE " << cmd << "\nFDS";
        if (DIR* d = ::opendir("/proc/self/fd")) {
            while (auto* e = ::readdir(d))
                if (e->d_name[0] != '.') std::cout << ' ' << e->d_name;
            ::closedir(d);
        }
        std::cout << "\n";
        return 0;
    }
    if (mode == "get" && argc >= 5) {
        const int threads = std::atoi(argv[2]);
        const int per = std::atoi(argv[3]);
        const std::string path = argv[4];
        batched = argc >= 6 && std::string(argv[5]) == "batch";
        std::atomic<int> good{0}, bad{0};
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) {
            ts.emplace_back([&, t] {
                for (int i = 0; i < per; ++i) {
                    const std::string id = std::to_string(t) + "-" + std::to_string(i);
                    std::string res;
                    const bool sent =
                        exchange(request(path + "?app_key=" + sentinel() + "&id=" + id), res) == 0;
                    // The upstream echoes the id: a response carrying another
                    // request's id would mean interleaved bytes.
                    if (sent && res.starts_with("HTTP/1.1 200") &&
                        res.find("id=" + id + ";") != std::string::npos)
                        ++good;
                    else
                        ++bad;
                }
            });
        }
        for (auto& t : ts) t.join();
        std::cout << "good " << good.load() << " bad " << bad.load() << "\n";
        return bad.load() == 0 ? 0 : 1;
    }
    if (mode == "burst" && argc >= 4) {
        const int n = std::atoi(argv[2]);
        const std::string path = argv[3];
        const pid_t agent = ::getppid();
        std::vector<int> fds;
        const int ctl = tether::broker_client::control_fd();
        const char* sock = tether::broker_client::broker_socket_path();
        int asked = 0;
        ::kill(agent, SIGSTOP);
        for (int i = 0; i < n; ++i) {
            if (sock)
                fds.push_back(tether::broker_client::connect_socket(sock));
            else if (tether::broker_client::request_stream(ctl))
                ++asked;
            else
                fds.push_back(-1);
        }
        ::kill(agent, SIGCONT);
        for (int i = 0; i < asked; ++i) fds.push_back(tether::broker_client::receive_stream(ctl));
        int good = 0, bad = 0;
        for (std::size_t i = 0; i < fds.size(); ++i) {
            const std::string id = std::to_string(i);
            std::string res;
            if (fds[i] >= 0 && write_all(fds[i], request(path + "?app_key=" + sentinel() + "&id=" + id)))
                res = read_all(fds[i]);
            if (fds[i] >= 0) ::close(fds[i]);
            if (res.starts_with("HTTP/1.1 200") && res.find("id=" + id + ";") != std::string::npos)
                ++good;
            else
                ++bad;
        }
        std::cout << "good " << good << " bad " << bad << "\n";
        return bad == 0 ? 0 : 1;
    }
    if (mode == "leak" && argc >= 4) {
        // Warm up, pause for the test to count the agent's descriptors, run
        // N sequential requests, pause for the second count. Each phase is
        // a thread of its own, so a batch's spares are closed (with the
        // thread's stream_batch) before each count: the agent then holds
        // a full pool and no open stream at both, whatever the order in
        // which it saw the last batch request and the last streams' ends.
        const int n = std::atoi(argv[2]);
        const std::string path = argv[3];
        batched = argc >= 5 && std::string(argv[4]) == "batch";
        int good = 0;
        const auto phase = [&](int from, int to) {
            std::thread([&] {
                for (int i = from; i < to; ++i) {
                    std::string res;
                    if (exchange(request(path + "?id=" + std::to_string(i)), res) == 0 &&
                        res.starts_with("HTTP/1.1 200"))
                        ++good;
                }
            }).join();
        };
        phase(0, 10);
        std::cout << "warm" << std::endl;
        ::sleep(2);
        phase(10, n + 10);
        std::cout << "good " << good << std::endl;
        ::sleep(2);
        return good == n + 10 ? 0 : 1;
    }
    if (mode == "raw" && argc >= 3) {
        const int ctl = tether::broker_client::control_fd();
        const std::string kind = argv[2];
        msghdr m{};
        char bytes[3] = {0x01, 0x01, 0x01};
        iovec iov{bytes, kind == "empty" ? 0U : kind == "two" ? 2U : 1U};
        if (kind == "other") bytes[0] = 0x03;
        if (kind.starts_with("batch")) {  // 0x02 N with N out of range, or a third byte
            bytes[0] = 0x02;
            bytes[1] = kind == "batch0" ? 0 : kind == "batch17" ? 17 : 4;
            iov.iov_len = kind == "batchlong" ? 3U : 2U;
        }
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
        int passed = -1;
        if (kind == "withfd") {
            passed = ::open("/dev/null", O_RDONLY);
            m.msg_control = ctrl;
            m.msg_controllen = sizeof ctrl;
            cmsghdr* c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(c), &passed, sizeof passed);
        }
        if (::sendmsg(ctl, &m, MSG_NOSIGNAL) < 0) return 2;
        char answer = 0;
        iovec riov{&answer, 1};
        alignas(cmsghdr) char rctrl[CMSG_SPACE(sizeof(int))] = {};
        msghdr r{};
        r.msg_iov = &riov;
        r.msg_iovlen = 1;
        r.msg_control = rctrl;
        r.msg_controllen = sizeof rctrl;
        const ssize_t n = ::recvmsg(ctl, &r, 0);
        std::printf("answer %zd %02x fd %s\n", n, static_cast<unsigned char>(answer),
                    CMSG_FIRSTHDR(&r) ? "yes" : "no");
        // The channel still works after a refusal.
        const int fd = tether::broker_client::connect_stream();
        std::printf("then %s\n", fd >= 0 ? "ok" : "refused");
        return 0;
    }
    if (mode == "bigtrailer") {
        // One hostile request, then an ordinary one on a fresh stream: the
        // broker must refuse the first and still serve the second.
        std::string res;
        const std::string attack =
            "POST /x HTTP/1.1\r\nHost: tether-broker.invalid\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " +
            std::string(65534, 'a') + "\r\n\r\n";
        if (exchange(attack, res) != 0) return 1;
        std::cout << "first " << res.substr(0, res.find("\r\n")) << "\n";
        if (exchange(request("/v1/items", {}), res) != 0) return 1;
        std::cout << "then " << res.substr(0, res.find("\r\n")) << "\n";
        return 0;
    }
    if (mode == "repeat" && argc >= 5) {
        // COUNT requests to TARGET, INTERVAL_MS apart, each on a stream of
        // its own: one line with its status each, as it comes.
        const int count = std::atoi(argv[2]);
        const int interval_ms = std::atoi(argv[3]);
        const std::string target = with_sentinel(argv[4]);
        for (int i = 0; i < count; ++i) {
            std::string res;
            const bool sent = exchange(request(target), res) == 0;
            std::cout << i << ' ' << (sent ? res.substr(0, res.find("\r\n")) : "no stream") << std::endl;
            std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
        }
        return 0;
    }
    if (mode == "once" && argc >= 3) {
        std::string extra = argc >= 4 ? argv[3] : "";
        std::string res;
        std::string target = argv[2];
        // ENC_SENTINEL: the sentinel with its first byte percent-encoded.
        const std::string enc = "%" + [] {
            char b[3];
            std::snprintf(b, sizeof b, "%02X", static_cast<unsigned char>(sentinel()[0]));
            return std::string(b);
        }() + sentinel().substr(1);
        for (std::size_t at; (at = target.find("ENC_SENTINEL")) != std::string::npos;)
            target.replace(at, 12, enc);
        target = with_sentinel(target);
        extra = with_sentinel(extra);
        if (exchange(request(target, extra), res) != 0) {
            std::cout << "no stream\n";
            return 1;
        }
        std::cout << res << "\n";
        return 0;
    }
    if (mode == "head" && argc >= 3) {
        std::string res;
        if (exchange(request(argv[2], {}, "HEAD"), res) != 0) return 1;
        std::cout << res << "<end>\n";
        return 0;
    }
    if (mode == "post" && argc >= 4) {
        // A Connect call with the sentinel as bearer: the default upstream
        // (the node's gateway) gets the node's session token.
        const std::string body = argv[3];
        const std::string req = std::string("POST ") + argv[2] +
                                " HTTP/1.1\r\nHost: tether-broker.invalid\r\nConnection: close\r\n"
                                "Content-Type: application/json\r\nAuthorization: Bearer " +
                                sentinel() + "\r\nContent-Length: " + std::to_string(body.size()) +
                                "\r\n\r\n" + body;
        std::string res;
        if (exchange(req, res) != 0) return 1;
        std::cout << res << "\n";
        return 0;
    }
    if (mode == "die" && argc >= 3) {
        const int fd = tether::broker_client::connect_stream();
        write_all(fd, request(argv[2]));
        ::usleep(200 * 1000);  // the broker is now waiting on the upstream
        ::raise(SIGKILL);
    }
    if (mode == "orphan" && argc >= 3) {
        const pid_t mid = ::fork();
        if (mid == 0) {
            // The grandchild outlives its parent: re-parented to the subreaper.
            if (::fork() == 0) {
                ::execlp("sleep", "sleep", argv[2], static_cast<char*>(nullptr));
                ::_exit(127);
            }
            ::_exit(0);
        }
        ::waitpid(mid, nullptr, 0);
        ::sleep(2);
        std::cout << "done\n";
        return 0;
    }
    if (mode == "stream" && argc >= 4) {
        const std::string target = with_sentinel(argv[2]);
        const int fd = tether::broker_client::connect_stream();
        if (fd < 0 || !write_all(fd, "GET " + target + " HTTP/1.1\r\nHost: tether-broker.invalid\r\n\r\n"))
            return 1;
        std::string pending;
        const auto head = read_head(fd, pending);
        std::cout << head.substr(0, head.find("\r\n")) << "\n"
                  << (head.find("Transfer-Encoding: chunked") != std::string::npos ? "chunked\n"
                                                                                   : "not chunked\n");
        std::string body;
        bool told = false;
        const bool whole = read_chunked(fd, pending, [&](std::string_view data) {
            body.append(data);
            if (!told && data.find('\n') != std::string_view::npos) {
                std::cout << "first: " << body.substr(0, body.find('\n')) << std::endl;
                told = true;
            }
        });
        std::ofstream(argv[3], std::ios::binary) << body;
        std::cout << (whole ? "complete " : "cut ") << body.size() << " bytes" << std::endl;
        // The same stream serves the next request.
        if (!write_all(fd,
                       "GET /v1/after HTTP/1.1\r\nHost: tether-broker.invalid\r\nConnection: close\r\n\r\n"))
            return 1;
        const auto next = read_all(fd);
        std::cout << "second: " << next.substr(0, next.find("\r\n")) << std::endl;
        ::close(fd);
        return 0;
    }
    std::cerr << "usage: broker_child dump|get|raw|once|die|orphan|stream ...\n";
    return 2;
}
