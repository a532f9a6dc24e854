#include "app/gateway/data_dir.hpp"

#include "app/common/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace tether::app {

namespace {

std::string octal(mode_t m)
{
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
}

}  // namespace

void prepare_data_dir(const std::filesystem::path& dir, const log::logger& log)
{
    const std::string name = dir.string();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw cli::usage_error("--data-dir " + name + ": cannot create it: " + ec.message());
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        throw cli::usage_error("--data-dir " + name + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) throw cli::usage_error("--data-dir " + name + " is not a directory");

    const uid_t me = ::geteuid();
    const std::string who = "uid " + std::to_string(me);
    const std::string owner = "uid " + std::to_string(st.st_uid) + ", group " + std::to_string(st.st_gid) +
                              ", mode " + octal(st.st_mode);
    if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) == 0) return;
    const int chmod_errno = (st.st_mode & 077) != 0 ? errno : 0;
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        // No owner or mode fixes this one; saying chown would send the
        // operator the wrong way.
        if (errno == EROFS)
            throw cli::usage_error("--data-dir " + name +
                                   " is on a read-only file system: give a directory on a writable volume");
        throw cli::usage_error("--data-dir " + name + " (" + owner + ") is not writable by the gateway (" +
                               who + "): chown " + std::to_string(me) + " " + name +
                               ", or run the gateway as the directory's owner");
    }
    if ((st.st_mode & 007) != 0)
        throw cli::usage_error("--data-dir " + name + " (" + owner +
                               ") is open to every user, and the gateway (" + who + ") cannot narrow it (" +
                               std::strerror(chmod_errno) + "): run chmod 0700 " + name +
                               " (or 0770 for a group the gateway is in) as its owner, or chown " +
                               std::to_string(me) + " " + name);
    // Ours and already 0700, or a group directory we cannot narrow: files
    // are created 0600 all the same (umask 077), but the group can still
    // rename or delete them; say so once.
    if ((st.st_mode & 070) != 0)
        log.warn("gateway.data_dir_shared",
                 {{"dir", std::filesystem::absolute(dir).string()},
                  {"mode", octal(st.st_mode)},
                  {"owner_uid", static_cast<std::int64_t>(st.st_uid)},
                  {"gid", static_cast<std::int64_t>(st.st_gid)},
                  {"why", "the directory's group can rename or delete the database and token files"}});
}

}  // namespace tether::app
