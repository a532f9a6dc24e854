// Files others read, published whole: written under a name of their own,
// fsynced, then moved into place and the directory fsynced. A reader, or
// the next start after a crash or a full disk, finds the old file or the
// new one, never a part of one. Blocking: run it where blocking is allowed.
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>

namespace tether {

enum class if_exists {
    replace,  ///< rename(): the new file takes the name
    keep,     ///< link(): fails rather than replace, so of two writers one wins
};

/// Publishes `content` as `file` (0600 before the umask). With
/// if_exists::keep an existing file stays as it is and the answer is false.
/// Throws std::system_error ("cannot write F.tmp-X: No space left on
/// device") naming the path, with the errno as its code; the temporary
/// name is gone either way.
bool publish_whole_file(const std::filesystem::path& file, std::string_view content, if_exists mode);

/// The same, for content that something else writes: `fill` is given the
/// temporary file (created empty, 0600) by descriptor and by name, and may
/// write it either way (SQLite's `VACUUM INTO` opens the name itself). What
/// it throws is passed on, the temporary name gone.
bool publish_whole_file(const std::filesystem::path& file,
                        const std::function<void(int fd, const std::filesystem::path& tmp)>& fill,
                        if_exists mode);

/// open(file, O_RDONLY | O_CLOEXEC) that never waits for a writer: a named
/// pipe given where a file belongs (a CA bundle, a token file) opens at once
/// and, with nobody writing it, reads as empty, instead of holding the
/// thread (at start: the process) until something opens it to write.
/// Reads on the descriptor block as usual. -1 and errno as open() sets them.
int open_for_reading(const std::filesystem::path& file);

/// Reads `fd` until `limit` bytes or its end, again after EINTR and short
/// reads; a read error ends it like the end (what came before is kept). To
/// tell a file larger than N, ask for N + 1.
std::string read_up_to(int fd, std::size_t limit);

/// `text` without its trailing line ends and spaces: a one-line file as an
/// editor or `echo` leaves it.
void trim_line_end(std::string& text) noexcept;

/// Writes all of `data` to `fd`, again after EINTR and short writes; throws
/// std::system_error naming `what`.
void write_all(int fd, std::string_view data, const std::filesystem::path& what);

}  // namespace tether
