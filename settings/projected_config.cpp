#include "settings/projected_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace tether::settings {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view data_link = "..data";
constexpr std::string_view data_link_tmp = "..data.tmp";
constexpr std::string_view visible = "config.json";
constexpr std::string_view visible_tmp = ".config.json.tmp";

[[noreturn]] void fail(std::string_view what, const fs::path& p, int err = errno)
{
    throw std::runtime_error(std::string(what) + " " + p.string() + ": " + std::strerror(err));
}

void fsync_dir(const fs::path& dir)
{
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot open", dir);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) fail("cannot fsync", dir, err);
}

std::optional<std::string> read_link(const fs::path& p)
{
    std::error_code ec;
    auto target = fs::read_symlink(p, ec);
    if (ec) return std::nullopt;
    return target.string();
}

/// A symlink `name` -> `target` in `dir`, replacing what is there with one
/// rename (never a moment without it).
void swap_link(const fs::path& dir, std::string_view name, std::string_view tmp_name,
               const std::string& target)
{
    const auto tmp = dir / tmp_name;
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) fail("cannot remove", tmp);
    if (::symlink(target.c_str(), tmp.c_str()) != 0) fail("cannot create symlink", tmp);
    const auto to = dir / name;
    if (::rename(tmp.c_str(), to.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail("cannot replace", to, err);
    }
}

void write_payload(const fs::path& file, std::string_view bytes, const projection_options& o)
{
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) fail("cannot create", file);
    const auto close_and_fail = [&](std::string_view what) {
        const int err = errno;
        ::close(fd);
        fail(what, file, err);
    };
    // Mode and group before the first byte: the umask must not widen or
    // narrow what the operator asked for, and no one else reads it early.
    if (o.group && ::fchown(fd, static_cast<uid_t>(-1), *o.group) != 0)
        close_and_fail("cannot set the group of");
    if (::fchmod(fd, o.mode) != 0) close_and_fail("cannot set the mode of");
    for (std::size_t done = 0; done < bytes.size();) {
        const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) close_and_fail("cannot write");
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) close_and_fail("cannot fsync");
    if (::close(fd) != 0) fail("cannot close", file);
}

}  // namespace

std::optional<std::string> projected_version_dir(const fs::path& dir)
{
    return read_link(dir / data_link);
}

std::optional<std::string> projected_document(const fs::path& dir)
{
    const int fd = ::open((dir / visible).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string out;
    char buf[8192];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

void prepare_projection_dir(const projection_options& o)
{
    std::error_code ec;
    fs::create_directories(o.dir, ec);
    if (ec) throw std::runtime_error("cannot create " + o.dir.string() + ": " + ec.message());
    if (!fs::is_directory(o.dir, ec)) throw std::runtime_error(o.dir.string() + " is not a directory");
    if (::access(o.dir.c_str(), W_OK | X_OK) != 0) fail("cannot write in", o.dir);
}

bool project_config(const projection_options& o, std::int64_t version, std::string_view document)
{
    const auto& dir = o.dir;
    prepare_projection_dir(o);
    std::error_code ec;

    const auto current = projected_version_dir(dir);
    const bool linked = read_link(dir / visible) == std::string(data_link) + "/" + std::string(visible);
    if (current && linked && projected_document(dir) == document) return false;

    // A fresh directory name: an interrupted run may have left this
    // version's name half-written (it goes), and the current one must stay
    // whole (a suffix then: the same version with other bytes).
    const std::string base = ".." + std::to_string(version);
    std::string name = base;
    for (int n = 1;; ++n) {
        if (name != current) {
            fs::remove_all(dir / name, ec);
            if (!ec) break;
        }
        name = base + "." + std::to_string(n);
    }
    const auto payload_dir = dir / name;
    if (::mkdir(payload_dir.c_str(), 0755) != 0) fail("cannot create", payload_dir);
    // mkdir's mode passes through the umask; readers need to traverse it.
    if (::chmod(payload_dir.c_str(), 0755) != 0) fail("cannot set the mode of", payload_dir);
    write_payload(payload_dir / visible, document, o);
    fsync_dir(payload_dir);
    fsync_dir(dir);

    swap_link(dir, data_link, data_link_tmp, name);
    if (!linked) swap_link(dir, visible, visible_tmp, std::string(data_link) + "/" + std::string(visible));
    fsync_dir(dir);

    // Older versions go; the one just replaced stays for a reader that was
    // resolving the old link while it swapped.
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const auto entry = e.path().filename().string();
        if (!entry.starts_with("..") || entry == data_link || entry == name || entry == current) continue;
        std::error_code rm;
        fs::remove_all(e.path(), rm);
    }
    return true;
}

std::optional<mode_t> parse_file_mode(std::string_view text)
{
    if (text.empty() || text.size() > 4) return std::nullopt;
    mode_t m = 0;
    for (const char c : text) {
        if (c < '0' || c > '7') return std::nullopt;
        m = static_cast<mode_t>(m * 8 + static_cast<mode_t>(c - '0'));
    }
    if (m > 0777) return std::nullopt;
    return m;
}

}  // namespace tether::settings
