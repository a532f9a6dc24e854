// Adopting a descriptor this process has just made (accept4, socketpair)
// and shares with nobody, without the two system calls Asio spends on a
// descriptor of unknown origin.
//
// `assign()` must assume the descriptor may be a dup() of one that stays
// open elsewhere, so its close() first removes it from epoll (an
// epoll_ctl DEL), and that it is blocking, so its first operation, or
// `non_blocking(true)`, sets O_NONBLOCK (an ioctl). Neither is needed for
// a socket we created alone: the close removes it from epoll, as for a
// socket Asio opened itself, and accept4(SOCK_NONBLOCK) made it
// non-blocking. On this project's 2-vCPU VM
// a system call costs 0.9-1.7 us, and the broker's fresh stream spent
// these two on every request (docs/benchmarks.md, issue 16).
//
// The state bits live in Asio's implementation (protected in
// basic_socket); a Boost whose layout differs fails to compile here, which
// is the point: test/net/own_socket_test.cpp checks the behaviour.
#pragma once

#include "base/asio.hpp"

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/detail/socket_ops.hpp>

#include <optional>

namespace tether::net {

enum class descriptor_mode { blocking, non_blocking };

namespace detail {

template <class Protocol>
class own_socket : public asio::basic_stream_socket<Protocol> {
public:
    using asio::basic_stream_socket<Protocol>::basic_stream_socket;

    void trust(descriptor_mode mode)
    {
#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) || defined(BOOST_ASIO_WINDOWS)
        (void)mode;  // another backend, other state: Asio's own caution stays
#else
        namespace ops = asio::detail::socket_ops;
        auto& state = this->impl_.get_implementation().state_;
        state &= static_cast<ops::state_type>(~ops::possible_dup);
        if (mode == descriptor_mode::non_blocking) state |= ops::non_blocking;
#endif
    }
};

}  // namespace detail

/// `fd` becomes the socket's, or stays the caller's on failure (nullopt).
/// With `non_blocking` the socket is as after `non_blocking(true)`:
/// synchronous operations fail with would_block rather than wait.
/// Precondition: no other descriptor refers to fd's open file, and `mode`
/// is its real O_NONBLOCK state: Asio's reads on a socket it wrongly
/// believes non-blocking would block the event loop.
template <class Protocol>
std::optional<asio::basic_stream_socket<Protocol>> adopt_own_socket(const asio::any_io_executor& ex,
                                                                    const Protocol& protocol, int fd,
                                                                    descriptor_mode mode)
{
    detail::own_socket<Protocol> sock(ex);
    error_code ec;
    sock.assign(protocol, fd, ec);
    if (ec) return std::nullopt;
    sock.trust(mode);
    return std::optional<asio::basic_stream_socket<Protocol>>(std::move(sock));
}

}  // namespace tether::net
