#include "auth/state_store.hpp"

#include "base/whole_file.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace tether::auth {

namespace json = boost::json;

namespace {

std::string errno_text()
{
    return std::strerror(errno);
}

std::string read_private_file(const std::filesystem::path& file)
{
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) throw state_error("no enrolled identity: " + file.string() + " does not exist");
        throw state_error("cannot read " + file.string() + ": " + errno_text());
    }
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

}  // namespace

void write_atomically(const std::filesystem::path& file, std::string_view content)
{
    (void)publish_whole_file(file, content, if_exists::replace);
}

space_reservation::space_reservation(std::filesystem::path file, std::size_t bytes) : file_(std::move(file))
{
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + file_.string() + ": " + errno_text());
    held_ = true;
    try {
        // Written, not fallocated: every file system takes a write, and the
        // blocks then exist whatever the file system does with holes.
        write_all(fd, std::string(bytes, '\0'), file_);
        if (::fsync(fd) != 0)
            throw std::runtime_error("cannot fsync " + file_.string() + ": " + errno_text());
    } catch (...) {
        ::close(fd);
        release();
        throw;
    }
    ::close(fd);
}

space_reservation::~space_reservation()
{
    release();
}

void space_reservation::release() noexcept
{
    if (std::exchange(held_, false)) ::unlink(file_.c_str());
}

node_state load_state(const state_paths& p)
{
    const auto file = p.state_file();
    const auto text = read_private_file(file);
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) throw state_error(file.string() + " is not valid JSON; re-enroll with --force");
    const auto& o = v.get_object();
    const auto str = [&](const char* k) {
        const auto* x = o.if_contains(k);
        return x && x->is_string() ? std::string(x->get_string()) : std::string();
    };
    const auto num = [&](const char* k) -> std::int64_t {
        const auto* x = o.if_contains(k);
        return x && x->is_int64() ? x->get_int64() : 0;
    };
    node_state s;
    s.server_url = str("serverUrl");
    s.node_id = str("nodeId");
    s.org_id = str("orgId");
    s.node_name = str("nodeName");
    s.api_key = secret(str("apiKey"));
    s.session_token = secret(str("sessionToken"));
    s.session_expires_ms = num("sessionExpiresMs");
    s.server_offset_ms = num("serverOffsetMs");
    if (s.api_key.empty() || s.node_id.empty() || s.server_url.empty())
        throw state_error(file.string() +
                          " holds no enrolled identity (no api key); enroll with tether enroll");
    return s;
}

void save_state(const state_paths& p, const node_state& s)
{
    json::object o{{"serverUrl", s.server_url},
                   {"nodeId", s.node_id},
                   {"orgId", s.org_id},
                   {"nodeName", s.node_name},
                   {"apiKey", s.api_key.reveal()},
                   {"sessionToken", s.session_token.reveal()},
                   {"sessionExpiresMs", s.session_expires_ms},
                   {"serverOffsetMs", s.server_offset_ms}};
    std::string text = json::serialize(o);
    write_atomically(p.state_file(), text + "\n");
    explicit_bzero(text.data(), text.size());
}

secret load_key(const state_paths& p)
{
    return secret(read_private_file(p.key_file()));
}

void save_key(const state_paths& p, const secret& pem)
{
    write_atomically(p.key_file(), pem.reveal());
}

state_lock::state_lock(const state_paths& p, bool create_dir)
{
    if (create_dir) {
        std::error_code ec;
        std::filesystem::create_directories(p.dir, ec);
        if (ec) throw state_error("cannot create state directory " + p.dir.string() + ": " + ec.message());
        ::chmod(p.dir.c_str(), 0700);
    }
    try {
        lock_.emplace(p.lock_file());
    } catch (const pid_lock::held_elsewhere& e) {
        throw state_error("state directory " + p.dir.string() + " is in use by another tether process (PID " +
                          e.holder + "); two agents must never share one identity");
    } catch (const std::system_error& e) {
        throw state_error("cannot open lock file " + p.lock_file().string() + ": " + e.code().message());
    }
}

state_lock::~state_lock() = default;

}  // namespace tether::auth
