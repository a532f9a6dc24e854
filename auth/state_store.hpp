// The node's identity on disk: state.json and node.key in a 0700 directory,
// written atomically, guarded by a lock file for the life of the process.
#pragma once

#include "auth/state_paths.hpp"
#include "base/pid_lock.hpp"
#include "base/secret.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace tether::auth {

struct node_state {
    std::string server_url;
    std::string node_id;
    std::string org_id;
    std::string node_name;
    secret api_key;
    secret session_token;
    std::int64_t session_expires_ms = 0;  ///< wall clock, as granted by the server
    std::int64_t server_offset_ms = 0;    ///< server time minus our time at login
};

/// A state problem the operator must fix (missing, unreadable, locked):
/// exit status 2 with this message.
struct state_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Writes `content` to `file` so that a crash at any moment leaves either
/// the old or the new file: temp file (0600) + fsync + rename + fsync(dir).
void write_atomically(const std::filesystem::path& file, std::string_view content);

/// `bytes` of disk space held in `file` (written and fsynced, so the file
/// system has allocated them) until release() or destruction, which remove
/// the file: room for writes that must not fail for want of it later.
class space_reservation {
public:
    /// Throws std::runtime_error naming the file and the system's reason
    /// (a full disk) when the room is not there, leaving no file behind.
    space_reservation(std::filesystem::path file, std::size_t bytes);
    ~space_reservation();
    space_reservation(const space_reservation&) = delete;
    space_reservation& operator=(const space_reservation&) = delete;
    void release() noexcept;

private:
    std::filesystem::path file_;
    bool held_ = false;
};

/// Reads state.json. Throws state_error naming the file when it is missing
/// or malformed, or when it holds no api key.
node_state load_state(const state_paths& p);
void save_state(const state_paths& p, const node_state& s);

secret load_key(const state_paths& p);
void save_key(const state_paths& p, const secret& pem);

/// Holds `flock` on the lock file (with our PID in it) until destroyed.
class state_lock {
public:
    /// Creates the directory (0700) when `create_dir`. Throws state_error
    /// naming the PID that holds the lock.
    explicit state_lock(const state_paths& p, bool create_dir);
    ~state_lock();
    state_lock(const state_lock&) = delete;
    state_lock& operator=(const state_lock&) = delete;

private:
    std::optional<pid_lock> lock_;
};

}  // namespace tether::auth
