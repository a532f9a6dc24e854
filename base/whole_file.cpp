#include "base/whole_file.hpp"

#include "base/random_bytes.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace tether {

namespace {

[[noreturn]] void fail(int err, const std::string& what)
{
    throw std::system_error(err, std::generic_category(), what);
}

}  // namespace

int open_for_reading(const std::filesystem::path& file)
{
    // O_NONBLOCK only for the open: a FIFO's open waits for a writer
    // without it, and a regular file ignores it.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

std::string read_up_to(int fd, std::size_t limit)
{
    std::string out(limit, '\0');
    std::size_t got = 0;
    while (got < out.size()) {
        const auto n = ::read(fd, out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return out;
}

void trim_line_end(std::string& text) noexcept
{
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
}

void write_all(int fd, std::string_view data, const std::filesystem::path& what)
{
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(n < 0 ? errno : EIO, "cannot write " + what.string());
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool publish_whole_file(const std::filesystem::path& file, std::string_view content, if_exists mode)
{
    return publish_whole_file(
        file, [content](int fd, const std::filesystem::path& tmp) { write_all(fd, content, tmp); }, mode);
}

bool publish_whole_file(const std::filesystem::path& file,
                        const std::function<void(int fd, const std::filesystem::path& tmp)>& fill,
                        if_exists mode)
{
    // A name no other writer picks (two containers' PID 1 share a volume).
    auto tmp = file;
    tmp += ".tmp-" + random_token(8);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) fail(errno, "cannot create " + tmp.string());
    try {
        fill(fd, tmp);
        // The file's data, by whichever descriptor it was written.
        if (::fsync(fd) != 0) fail(errno, "cannot fsync " + tmp.string());
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    bool published = true;
    if (mode == if_exists::replace) {
        if (::rename(tmp.c_str(), file.c_str()) != 0) {
            const int err = errno;
            ::unlink(tmp.c_str());
            fail(err, "cannot replace " + file.string());
        }
    } else {
        const int rc = ::link(tmp.c_str(), file.c_str());
        const int err = errno;
        ::unlink(tmp.c_str());
        if (rc != 0 && err != EEXIST) fail(err, "cannot create " + file.string());
        published = rc == 0;
    }
    // The new name is durable only once the directory entry is.
    const auto dir = file.parent_path();
    if (const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return published;
}

}  // namespace tether
