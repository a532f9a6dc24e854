// The broker's control channel, without coroutines: the SOCK_SEQPACKET
// pair, one non-blocking step of the request protocol (a datagram in, a
// refusal or a fresh stream socket out), and the process-tree check that
// decides who may ask. Testable alone; the broker's task only waits for
// readability and serves what this hands it.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace tether::auth {

/// A connected SOCK_SEQPACKET pair with SO_PASSCRED on the first (the
/// broker's) end. Throws std::system_error.
std::pair<int, int> make_control_pair();

/// `pid` is `root` or one of its descendants (walks /proc/PID/stat).
bool in_process_tree(pid_t pid, pid_t root);

struct control_step {
    enum class kind {
        again,     ///< nothing (more) to read now
        closed,    ///< the child closed its end (or exited)
        refused,   ///< a datagram that was not a valid request, or from outside the child's tree; answered
        accepted,  ///< new streams: ours went to `take_stream`'s owner, the peer ends to the child
        failed,    ///< no stream could be made, adopted or handed over; answered when possible
    } what = kind::again;
    std::size_t streams = 0;  ///< handed over when accepted: 1, or up to N for `0x02 N`
    // What a refusal saw, for the log line.
    std::size_t bytes = 0;
    bool descriptors = false;
    bool truncated = false;
    bool outside_child_tree = false;
    int error = 0;  ///< errno of a failed `take_stream` (socketpair), also when a batch was cut short
};

/// Reads one datagram from the control socket without blocking and answers
/// it: a refusal byte, or the accept byte with the peer ends of as many new
/// stream socket pairs as it asked for (1, or N for `0x02 N`), in one
/// datagram. `child` > 0 limits requests to its process tree. Descriptors
/// a datagram carried are closed here. `take_stream` provides each pair: it
/// puts our end where it will be served and returns the peer end (so the
/// child never holds a stream nobody serves), which is closed here once
/// sent; or it returns -1 with errno set (0 when it closed nothing but
/// failed anyway). The first failure ends the batch: the child gets the
/// streams made before it, or a refusal when there are none.
control_step next_control_step(int control_fd, pid_t child, const std::function<int()>& take_stream);

/// Sends one byte with `count` (at most 16) descriptors attached, in one
/// datagram, without blocking: the agent's answer to a stream request.
bool send_with_fds(int fd, char byte, const int* passed, std::size_t count);

/// A new stream socket pair, both ends close-on-exec and blocking (the
/// child's end must be), or {-1, -1} with errno set.
std::pair<int, int> make_stream_pair();

/// The opt-in second way in (`tether exec --broker-socket`): a listening
/// SOCK_STREAM socket at `path`, non-blocking, mode 0600. The caller puts it
/// in a directory only we can enter (0700) and removes both. Throws
/// std::system_error naming what failed.
int make_broker_listener(const std::string& path);

struct accept_step {
    enum class kind {
        again,     ///< no connection waiting
        accepted,  ///< `fd` is a stream from the child's tree, ours now
        refused,   ///< from outside the child's tree (or no credentials): closed unanswered
        failed,    ///< accept itself failed (`error`: EMFILE and the like)
    } what = kind::again;
    int fd = -1;
    pid_t peer = 0;
    int error = 0;
};

/// Accepts one waiting connection without blocking and checks its peer
/// (SO_PEERCRED, the process that connected) like a control datagram's
/// sender: `child` > 0 limits streams to its process tree.
accept_step next_accept(int listen_fd, pid_t child);

}  // namespace tether::auth
