// The control channel's request for several streams (0x02 N) between
// next_control_step and the child's side (auth/broker_client.hpp), over a
// real SOCK_SEQPACKET pair, without an agent: batches cut short by the
// system, a broker that predates the request, spares that grew old.
#include "auth/broker_control.hpp"

#include "auth/broker_client.hpp"

#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using tether::auth::control_step;
namespace client = tether::broker_client;

/// Both ends of a control pair, closed at the end.
struct channel {
    channel()
    {
        const auto [a, b] = tether::auth::make_control_pair();
        broker = a;
        child = b;
    }
    ~channel()
    {
        for (const int fd : ours) ::close(fd);
        if (broker >= 0) ::close(broker);
        if (child >= 0) ::close(child);
    }
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;

    /// The broker's step, taking real stream pairs; the `fail_at`th
    /// (from 1) fails with EMFILE.
    control_step step(int fail_at = 0)
    {
        int calls = 0;
        return tether::auth::next_control_step(broker, -1, [&]() -> int {
            if (++calls == fail_at) {
                errno = EMFILE;
                return -1;
            }
            const auto [o, t] = tether::auth::make_stream_pair();
            if (o >= 0) ours.push_back(o);
            return t;
        });
    }

    int broker = -1;
    int child = -1;
    std::vector<int> ours;  ///< the broker's ends, in hand-over order
};

/// A byte written on `theirs` arrives on one of the broker's ends.
bool served_by_one_of(int theirs, const std::vector<int>& ours)
{
    const char b = 'x';
    if (::write(theirs, &b, 1) != 1) return false;
    for (const int o : ours) {
        char got = 0;
        if (::recv(o, &got, 1, MSG_DONTWAIT) == 1) return got == 'x';
    }
    return false;
}

/// next_control_step on its own thread, for a child side that blocks.
struct answering_broker {
    explicit answering_broker(channel& c)
        : thread([this, &c] {
              while (!stopping) {
                  pollfd p{c.broker, POLLIN, 0};
                  if (::poll(&p, 1, 20) == 1 && c.step().what == control_step::kind::accepted) ++answered;
              }
          })
    {
    }
    ~answering_broker() { stop(); }
    answering_broker(const answering_broker&) = delete;
    answering_broker& operator=(const answering_broker&) = delete;

    void stop()
    {
        stopping = true;
        if (thread.joinable()) thread.join();
    }

    std::atomic<bool> stopping{false};
    std::atomic<int> answered{0};
    std::thread thread;
};

void close_all(const int* fds, int n)
{
    for (int i = 0; i < n; ++i) ::close(fds[i]);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(broker_control)

BOOST_AUTO_TEST_CASE(sixteen_streams_come_in_one_answer_each_its_own)
{
    channel c;
    BOOST_TEST_REQUIRE(client::request_streams(c.child, 16));
    const auto s = c.step();
    BOOST_TEST((s.what == control_step::kind::accepted));
    BOOST_TEST(s.streams == 16u);
    int fds[16];
    BOOST_TEST_REQUIRE(client::receive_streams(c.child, fds, 16) == 16);
    for (const int fd : fds) BOOST_TEST(served_by_one_of(fd, c.ours));
    close_all(fds, 16);
    // Nothing else was sent: the next read finds nothing.
    pollfd p{c.child, POLLIN, 0};
    BOOST_TEST(::poll(&p, 1, 0) == 0);
}

BOOST_AUTO_TEST_CASE(a_batch_the_system_cuts_short_hands_over_what_was_made)
{
    channel c;
    BOOST_TEST_REQUIRE(client::request_streams(c.child, 8));
    const auto s = c.step(4);
    BOOST_TEST((s.what == control_step::kind::accepted));
    BOOST_TEST(s.streams == 3u);
    BOOST_TEST(s.error == EMFILE);
    int fds[16];
    BOOST_TEST_REQUIRE(client::receive_streams(c.child, fds, 16) == 3);
    for (int i = 0; i < 3; ++i) BOOST_TEST(served_by_one_of(fds[i], c.ours));
    close_all(fds, 3);
}

BOOST_AUTO_TEST_CASE(a_batch_with_no_stream_made_is_refused_and_retrying_is_safe)
{
    channel c;
    BOOST_TEST_REQUIRE(client::request_streams(c.child, 8));
    const auto s = c.step(1);
    BOOST_TEST((s.what == control_step::kind::failed));
    BOOST_TEST(s.error == EMFILE);
    int fds[16];
    errno = 0;
    BOOST_TEST(client::receive_streams(c.child, fds, 16) == 0);
    BOOST_TEST(errno == EAGAIN);
}

BOOST_AUTO_TEST_CASE(counts_out_of_range_are_refused_by_both_sides)
{
    channel c;
    errno = 0;
    BOOST_TEST(!client::request_streams(c.child, 0));
    BOOST_TEST(errno == EINVAL);
    BOOST_TEST(!client::request_streams(c.child, 17));
    const char too_many[2] = {0x02, 17};
    BOOST_TEST_REQUIRE(::send(c.child, too_many, 2, 0) == 2);
    BOOST_TEST((c.step().what == control_step::kind::refused));
    BOOST_TEST(c.ours.empty());
    int fd = -1;
    BOOST_TEST(client::receive_streams(c.child, &fd, 1) == 0);
}

BOOST_AUTO_TEST_CASE(a_single_receiver_closes_what_it_has_no_room_for)
{
    // An answer to another thread's batch may reach a connect_stream() on
    // the same channel: it keeps one and closes the rest, leaking nothing.
    channel c;
    BOOST_TEST_REQUIRE(client::request_streams(c.child, 4));
    BOOST_TEST(c.step().streams == 4u);
    const int fd = client::receive_stream(c.child);
    BOOST_TEST_REQUIRE(fd >= 0);
    BOOST_TEST(served_by_one_of(fd, c.ours));
    ::close(fd);
    std::size_t closed = 0;
    for (const int o : c.ours) {
        char b = 0;
        if (::recv(o, &b, 1, MSG_DONTWAIT) == 0) ++closed;  // end of file: the child's end is gone
    }
    BOOST_TEST(closed == 4u);  // three never kept, and the one used and closed
}

BOOST_AUTO_TEST_CASE(stream_batch_serves_from_spares_and_asks_again_when_they_are_gone)
{
    channel c;
    answering_broker broker(c);
    {
        client::stream_batch b(c.child, 4);
        for (int i = 0; i < 6; ++i) {
            const int fd = b.take();
            BOOST_TEST(fd >= 0);
            if (fd >= 0) ::close(fd);
        }
        BOOST_TEST(b.spares() == 2u);  // 4 + 4 handed over, 6 taken
    }
    broker.stop();
    BOOST_TEST(broker.answered == 2);
    BOOST_TEST(c.ours.size() == 8u);
    // The two spares closed with the batch: every child end is gone.
    for (const int o : c.ours) {
        char b = 0;
        BOOST_TEST(::recv(o, &b, 1, MSG_DONTWAIT) == 0);
    }
}

BOOST_AUTO_TEST_CASE(the_next_batch_is_asked_for_with_the_last_spare_and_closed_if_unused)
{
    channel c;
    answering_broker broker(c);
    {
        client::stream_batch b(c.child, 4);
        for (int i = 0; i < 4; ++i) {
            const int fd = b.take();
            BOOST_TEST(fd >= 0);
            if (fd >= 0) ::close(fd);
        }
        BOOST_TEST(b.spares() == 0u);
        for (int i = 0; i < 1000 && broker.answered < 2; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        BOOST_TEST(broker.answered == 2);  // asked ahead, with the fourth stream taken
    }
    broker.stop();
    // The answer on its way was taken and closed with the batch.
    BOOST_TEST_REQUIRE(c.ours.size() == 8u);
    for (const int o : c.ours) {
        char b = 0;
        BOOST_TEST(::recv(o, &b, 1, MSG_DONTWAIT) == 0);
    }
    pollfd p{c.child, POLLIN, 0};
    BOOST_TEST(::poll(&p, 1, 0) == 0);
}

BOOST_AUTO_TEST_CASE(stream_batch_closes_spares_that_grew_old_unused)
{
    channel c;
    answering_broker broker(c);
    client::stream_batch b(c.child, 4, std::chrono::milliseconds(50));
    const int first = b.take();
    BOOST_TEST(b.spares() == 3u);
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    const int second = b.take();  // the three spares are too old: a new batch
    BOOST_TEST(b.spares() == 3u);
    broker.stop();
    BOOST_TEST_REQUIRE(c.ours.size() == 8u);
    std::size_t gone = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        char x = 0;
        if (::recv(c.ours[i], &x, 1, MSG_DONTWAIT) == 0) ++gone;
    }
    BOOST_TEST(gone == 3u);  // the old batch but for the stream still in use
    ::close(first);
    ::close(second);
}

BOOST_AUTO_TEST_CASE(a_forked_process_never_writes_to_its_parents_spares)
{
    // Both processes hold the same spare descriptors after fork(): a
    // stream written by two processes would mix their requests.
    channel c;
    answering_broker broker(c);
    client::stream_batch b(c.child, 4);
    const int first = b.take();
    BOOST_TEST_REQUIRE(first >= 0);
    BOOST_TEST_REQUIRE(b.spares() == 3u);
    const pid_t pid = ::fork();
    if (pid == 0) {
        // Only calls that are safe after fork() in a threaded process.
        const int fd = b.take();
        const char x = 'c';
        ::_exit(fd >= 0 && ::write(fd, &x, 1) == 1 ? 0 : 1);
    }
    BOOST_TEST_REQUIRE(pid > 0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    broker.stop();
    BOOST_TEST_REQUIRE(c.ours.size() == 8u);  // the child asked for a batch of its own
    std::vector<std::size_t> wrote_to;
    for (std::size_t i = 0; i < c.ours.size(); ++i) {
        char got = 0;
        if (::recv(c.ours[i], &got, 1, MSG_DONTWAIT) == 1 && got == 'c') wrote_to.push_back(i);
    }
    BOOST_TEST_REQUIRE(wrote_to.size() == 1u);
    BOOST_TEST(wrote_to[0] >= 4u);  // from the child's batch, not the parent's
    // The parent's spares are still its own and still work.
    const int mine = b.take();
    BOOST_TEST(served_by_one_of(mine, std::vector<int>(c.ours.begin(), c.ours.begin() + 4)));
    ::close(mine);
    ::close(first);
}

BOOST_AUTO_TEST_CASE(stream_batch_asks_one_at_a_time_of_a_broker_that_predates_batches)
{
    // A broker that knows only 0x01 refuses 0x02 N as any other byte.
    channel c;
    std::atomic<bool> stop{false};
    std::vector<std::size_t> sizes;
    std::thread old_broker([&] {
        while (!stop) {
            pollfd p{c.broker, POLLIN, 20};
            if (::poll(&p, 1, 20) != 1) continue;
            char buf[4];
            const ssize_t n = ::recv(c.broker, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) continue;
            sizes.push_back(static_cast<std::size_t>(n));
            if (n == 1 && buf[0] == 0x01) {
                const auto [o, t] = tether::auth::make_stream_pair();
                c.ours.push_back(o);
                (void)tether::auth::send_with_fds(c.broker, 0x01, &t, 1);
                ::close(t);
            } else {
                const char no = '\xFF';
                (void)::send(c.broker, &no, 1, MSG_NOSIGNAL);
            }
        }
    });
    client::stream_batch b(c.child, 8);
    for (int i = 0; i < 3; ++i) {
        const int fd = b.take();
        BOOST_TEST(fd >= 0);
        BOOST_TEST(b.spares() == 0u);
        if (fd >= 0) ::close(fd);
    }
    stop = true;
    old_broker.join();
    // One batch request, refused; then one stream at a time.
    BOOST_TEST((sizes == std::vector<std::size_t>{2, 1, 1, 1}));
}

BOOST_AUTO_TEST_SUITE_END()
