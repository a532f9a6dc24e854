// A disk that fills: a small tmpfs (root only), and a file written until
// the disk has no space left.
#pragma once

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace tether::test {

/// Mounting needs root: without it a test that needs a small disk says so
/// and ends early (`if (!can_mount()) return;`), as the drills that need
/// `unshare` would fail.
inline bool can_mount()
{
    if (::geteuid() == 0) return true;
    BOOST_TEST_MESSAGE("skipped: needs root to mount a small tmpfs");
    return false;
}

/// A tmpfs of `size` ("256k") mounted on `where`, unmounted when destroyed
/// (lazily: a process under test may still hold a descriptor in it).
struct small_disk {
    std::filesystem::path at;
    small_disk(std::filesystem::path where, const std::string& size) : at(std::move(where))
    {
        std::filesystem::create_directories(at);
        const std::string opts = "size=" + size + ",mode=0755";
        if (::mount("tmpfs", at.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
            throw std::runtime_error("cannot mount a tmpfs on " + at.string() + ": " + std::strerror(errno));
    }
    ~small_disk() { ::umount2(at.c_str(), MNT_DETACH); }
    small_disk(const small_disk&) = delete;
    small_disk& operator=(const small_disk&) = delete;
};

/// Writes `file` until its file system has no space left; the errno that
/// stopped it (ENOSPC when it filled).
inline int fill_up(const std::filesystem::path& file)
{
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    const std::string block(4096, 'x');
    while (::write(fd, block.data(), block.size()) > 0) {}
    const int why = errno;
    ::close(fd);
    return why;
}

}  // namespace tether::test
