#include "app/agent/tasks/config_follow_task.hpp"

#include "base/blocking_call.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

namespace tether::app {

namespace {

/// Whether any event in buf[0, n) names `file`. Not in the coroutine:
/// inotify_event ends in a flexible array, which a frame cannot hold.
bool names(const char* buf, ssize_t n, std::string_view file)
{
    bool found = false;
    for (const char* p = buf; p < buf + n;) {
        inotify_event e{};
        std::memcpy(&e, p, sizeof e);
        const std::string_view name(p + sizeof e, ::strnlen(p + sizeof e, e.len));
        found = found || name == file;
        p += sizeof e + e.len;
    }
    return found;
}

}  // namespace

awaitable<void> config_follow_task::run()
{
    const auto ex = co_await asio::this_coro::executor;
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "inotify_init1");
    asio::posix::stream_descriptor events(ex, fd);
    if (::inotify_add_watch(fd, d_.paths.dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
        throw std::system_error(errno, std::generic_category(), "inotify_add_watch " + d_.paths.dir.string());
    d_.log.info("config.following", {{"file", d_.paths.config_file().string()}});
    // A change that landed before the watch: read once now.
    bool look = true;
    std::vector<char> buf(4096);
    for (;;) {
        if (look) {
            std::function<settings::config_ptr()> load = [this] {
                return settings::load_config_file(d_.paths.config_file(), d_.log);
            };
            auto next = co_await blocking_call(d_.blocking, std::move(load));
            const auto at = next->updated_at;
            const bool applied = co_await d_.store.update(std::move(next));
            if (applied) {
                d_.metrics.config_updated_at = at;
                d_.metrics.config_applied_at_ms = wall_ms();
                ++d_.metrics.config_applies;
                d_.log.info("config.followed", {{"configUpdatedAt", at}});
            }
        }
        auto [ec] = co_await events.async_wait(asio::posix::stream_descriptor::wait_read, nothrow);
        if (ec) co_return;  // cancelled
        look = false;
        const auto file = d_.paths.config_file().filename().string();
        for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;)
            look = names(buf.data(), n, file) || look;
    }
}

}  // namespace tether::app
