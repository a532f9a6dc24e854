#include "app/gateway/admin_token.hpp"

#include "base/random_bytes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tether::app {

namespace {

/// Nobody else may write it or read it, except a group we are in reading
/// it: a Kubernetes Secret volume with an fsGroup comes out 0440, group the
/// pod's own.
bool private_enough(const struct stat& st)
{
    if ((st.st_mode & (S_IRWXO | S_IWGRP | S_IXGRP)) != 0) return false;
    if ((st.st_mode & S_IRGRP) == 0) return true;
    if (st.st_gid == ::getegid()) return true;
    gid_t groups[256];
    const int n = ::getgroups(256, groups);
    for (int i = 0; i < n; ++i)
        if (groups[i] == st.st_gid) return true;
    return false;
}

std::string errno_text()
{
    return std::strerror(errno);
}

/// Writes a new token whole under a name of its own, then links it into
/// place: the file is never seen empty or half-written (a full disk, a
/// crash, a second gateway reading it as the first writes), and link()
/// fails with EEXIST rather than replace a token another gateway made.
/// False when another one did.
bool create_token_file(const std::filesystem::path& file)
{
    const auto tmp = file.string() + ".tmp-" + random_token(8);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        throw std::runtime_error("cannot create admin token file " + file.string() + ": " + errno_text());
    std::string token = random_token(32) + "\n";
    std::string_view rest = token;
    int failed = 0;
    while (!rest.empty() && failed == 0) {
        const ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n > 0)
            rest.remove_prefix(static_cast<std::size_t>(n));
        else if (n == 0 || errno != EINTR)
            failed = n == 0 ? EIO : errno;
    }
    if (failed == 0 && ::fsync(fd) != 0) failed = errno;
    ::explicit_bzero(token.data(), token.size());
    ::close(fd);
    bool ours = false;
    if (failed == 0) {
        if (::link(tmp.c_str(), file.c_str()) == 0)
            ours = true;
        else if (errno != EEXIST)
            failed = errno;
    }
    ::unlink(tmp.c_str());
    if (failed != 0)
        throw std::runtime_error("cannot write admin token file " + file.string() + ": " +
                                 std::strerror(failed));
    // The new name is durable only once the directory entry is.
    const auto dir = file.parent_path();
    if (const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return ours;
}

}  // namespace

secret load_admin_token(const std::filesystem::path& file, bool create, bool* created)
{
    if (created) *created = false;
    if (create && !std::filesystem::exists(std::filesystem::symlink_status(file))) {
        if (create_token_file(file) && created) *created = true;
    }
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw std::runtime_error("cannot read admin token file " + file.string() + ": " +
                                 std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !private_enough(st)) {
        ::close(fd);
        throw std::runtime_error(
            "admin token file " + file.string() +
            " is accessible by others, or by a group the gateway is not in; chmod 600 it "
            "(0640 with the gateway's own group, as a Kubernetes fsGroup gives)");
    }
    std::string buf(4096, '\0');
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    ::close(fd);
    if (n <= 0) throw std::runtime_error("admin token file " + file.string() + " is empty");
    buf.resize(static_cast<std::size_t>(n));
    while (!buf.empty() && (buf.back() == '\n' || buf.back() == '\r' || buf.back() == ' ')) buf.pop_back();
    if (buf.empty()) throw std::runtime_error("admin token file " + file.string() + " is empty");
    secret out(std::move(buf));
    return out;
}

}  // namespace tether::app
