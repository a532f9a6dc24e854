// One process at a time on a directory: an exclusive flock on a file in it
// that holds the owner's PID, released when the owner exits however it
// exits (the kernel drops the flock with the last descriptor).
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace tether {

class pid_lock {
public:
    /// Another process holds the lock; `holder` is the PID it wrote, or
    /// "unknown".
    struct held_elsewhere : std::runtime_error {
        explicit held_elsewhere(std::string pid)
            : std::runtime_error("held by PID " + pid), holder(std::move(pid))
        {
        }
        std::string holder;
    };

    /// Opens (creating 0600) and locks `file`, and writes our PID into it.
    /// Throws held_elsewhere, or std::system_error naming the file when it
    /// cannot be opened.
    explicit pid_lock(const std::filesystem::path& file);
    ~pid_lock();
    pid_lock(const pid_lock&) = delete;
    pid_lock& operator=(const pid_lock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace tether
