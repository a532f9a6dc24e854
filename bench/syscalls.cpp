// What one system call costs on this machine: the calls a proxied request
// is made of, each repeated in a tight loop on a Unix socket pair. On a
// paravirtualized VM a call can cost ten times what it does on hardware,
// and then the count of calls per request, not the code around them,
// sets a proxy's CPU (docs/benchmarks.md, issue 16).
//
//   build/release/bench/bench_syscalls [iterations]
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace {

void report(const char* what, int n, const std::function<void()>& body)
{
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) body();
    const std::chrono::duration<double, std::micro> us = std::chrono::steady_clock::now() - t0;
    std::printf("%-44s %6.2f us\n", what, us.count() / n);
}

}  // namespace

int main(int argc, char** argv)
{
    const int n = argc > 1 ? std::max(1000, std::atoi(argv[1])) : 200000;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 1;
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) != 0) return 1;
    char byte = 'x';
    int on = 1;

    std::printf("%d iterations each\n", n);
    report("getppid (the bare cost of a call)", n, [] { (void)::getppid(); });
    report("recv that finds nothing (EAGAIN)", n, [&] { (void)::recv(sv[0], &byte, 1, 0); });
    report("send 1 byte + recv it", n, [&] {
        (void)::send(sv[1], &byte, 1, MSG_NOSIGNAL);
        (void)::recv(sv[0], &byte, 1, 0);
    });
    report("epoll_ctl MOD (a wait re-armed)", n, [&] { (void)::epoll_ctl(ep, EPOLL_CTL_MOD, sv[0], &ev); });
    report("epoll_wait, nothing ready, no timeout", n, [&] {
        epoll_event out[8];
        (void)::epoll_wait(ep, out, 8, 0);
    });
    report("ioctl FIONBIO", n, [&] { (void)::ioctl(sv[0], FIONBIO, &on); });
    report("getsockopt SO_PEERCRED", n, [&] {
        ucred who{};
        socklen_t len = sizeof who;
        (void)::getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &who, &len);
    });
    report("socketpair + close both", n / 10, [] {
        int p[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) return;
        ::close(p[0]);
        ::close(p[1]);
    });
    report("socketpair + epoll ADD + DEL + close both", n / 10, [&] {
        int p[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) return;
        (void)::epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
        (void)::epoll_ctl(ep, EPOLL_CTL_DEL, p[0], &ev);
        ::close(p[0]);
        ::close(p[1]);
    });
    ::close(ep);
    ::close(sv[0]);
    ::close(sv[1]);
    return 0;
}
