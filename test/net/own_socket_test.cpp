// net::adopt_own_socket on real socket pairs and a real io_context: Asio
// takes the descriptor's mode at our word, still makes a blocking one
// non-blocking itself, closes what it adopted, and gives no socket for a
// descriptor its reactor cannot take.
#include "net/own_socket.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

namespace net = tether::net;
namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {

struct pair_fds {
    explicit pair_fds(int flags)
    {
        BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0, fd) == 0);
    }
    ~pair_fds()
    {
        if (fd[1] >= 0) ::close(fd[1]);
    }
    int fd[2] = {-1, -1};
};

bool is_open(int fd)
{
    return ::fcntl(fd, F_GETFD) != -1;
}

/// Reads once through Asio; "" if nothing came within the wait.
std::string read_some(asio::io_context& ioc, local::socket& sock, std::chrono::milliseconds wait)
{
    char buf[64];
    std::string got;
    bool done = false;
    sock.async_read_some(asio::buffer(buf), [&](tether::error_code ec, std::size_t n) {
        done = true;
        if (!ec) got.assign(buf, n);
    });
    ioc.restart();
    ioc.run_for(wait);
    if (!done) {
        sock.cancel();
        ioc.restart();
        ioc.run();
    }
    return got;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(own_socket_suite)

BOOST_AUTO_TEST_CASE(a_non_blocking_descriptor_is_taken_at_its_word_and_closed_with_the_socket)
{
    asio::io_context ioc;
    pair_fds p(SOCK_NONBLOCK);
    const int ours = p.fd[0];
    auto sock = net::adopt_own_socket(ioc.get_executor(), local(), ours, net::descriptor_mode::non_blocking);
    BOOST_REQUIRE(sock);
    BOOST_TEST(sock->native_handle() == ours);
    // Asio's own record of the mode: it will not set O_NONBLOCK again, and
    // a synchronous read with nothing there says so instead of waiting.
    BOOST_TEST(sock->native_non_blocking());
    BOOST_TEST(sock->non_blocking());
    char none[8];
    tether::error_code ec;
    BOOST_TEST(sock->read_some(asio::buffer(none), ec) == 0u);
    BOOST_TEST(ec == asio::error::would_block);

    BOOST_REQUIRE(::write(p.fd[1], "ping", 4) == 4);
    BOOST_TEST(read_some(ioc, *sock, std::chrono::seconds(5)) == "ping");

    sock->close();
    BOOST_TEST(!is_open(ours));
    // The peer sees the end of the stream: the close was a real one.
    char c = 0;
    BOOST_TEST(::read(p.fd[1], &c, 1) == 0);
}

BOOST_AUTO_TEST_CASE(a_blocking_descriptor_is_made_non_blocking_before_the_first_read_waits)
{
    asio::io_context ioc;
    pair_fds p(0);
    auto sock = net::adopt_own_socket(ioc.get_executor(), local(), p.fd[0], net::descriptor_mode::blocking);
    BOOST_REQUIRE(sock);
    BOOST_TEST(!sock->native_non_blocking());
    BOOST_TEST(!sock->non_blocking());
    // Nothing to read: were the socket left blocking, this read would hang
    // the loop instead of waiting in the reactor.
    BOOST_TEST(read_some(ioc, *sock, std::chrono::milliseconds(50)) == "");
    BOOST_TEST((::fcntl(p.fd[0], F_GETFL) & O_NONBLOCK) != 0);
    BOOST_REQUIRE(::write(p.fd[1], "pong", 4) == 4);
    BOOST_TEST(read_some(ioc, *sock, std::chrono::seconds(5)) == "pong");
}

BOOST_AUTO_TEST_CASE(a_descriptor_the_reactor_refuses_gives_no_socket)
{
    asio::io_context ioc;
    int gone = -1;
    {
        pair_fds p(SOCK_NONBLOCK);
        gone = p.fd[0];
        ::close(p.fd[0]);
    }
    auto sock = net::adopt_own_socket(ioc.get_executor(), local(), gone, net::descriptor_mode::non_blocking);
    BOOST_TEST(!sock);
}

BOOST_AUTO_TEST_SUITE_END()
