#include "base/pid_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace tether {

pid_lock::pid_lock(const std::filesystem::path& file)
{
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0)
        throw std::system_error(errno, std::generic_category(), "cannot open lock file " + file.string());
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = {};
        const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
        ::close(fd_);
        fd_ = -1;
        std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
        while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
        throw held_elsewhere(pid.empty() ? "unknown" : pid);
    }
    // For the message a second process gives; the lock is the flock, so a
    // PID that cannot be written (a full disk) changes nothing.
    const std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) (void)::pwrite(fd_, me.data(), me.size(), 0);
}

pid_lock::~pid_lock()
{
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace tether
