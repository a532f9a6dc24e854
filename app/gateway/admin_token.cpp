#include "app/gateway/admin_token.hpp"

#include "base/random_bytes.hpp"
#include "base/whole_file.hpp"
#include "net/http_writer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

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

/// 16 characters of base64 carry 96 bits; the gateway makes 43.
constexpr std::size_t min_admin_token_size = 16;

}  // namespace

secret load_admin_token(const std::filesystem::path& file, bool create, bool* created)
{
    if (created) *created = false;
    if (create && !std::filesystem::exists(std::filesystem::symlink_status(file))) {
        // Published whole: an empty or half-written token (a full disk, a
        // crash, a second gateway reading as the first writes) would refuse
        // every start after it. Of two gateways starting at once, one wins.
        std::string token = random_token(32) + "\n";
        try {
            const bool ours = publish_whole_file(file, token, if_exists::keep);
            if (created) *created = ours;
        } catch (const std::system_error& e) {
            ::explicit_bzero(token.data(), token.size());
            throw std::runtime_error("cannot write admin token file " + file.string() + ": " +
                                     e.code().message());
        }
        ::explicit_bzero(token.data(), token.size());
    }
    const int fd = open_for_reading(file);
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
    std::string buf = read_up_to(fd, 4096);
    ::close(fd);
    trim_line_end(buf);
    if (buf.empty()) throw std::runtime_error("admin token file " + file.string() + " is empty");
    // A token guessed by trying is no token: wrong ones are counted but
    // never throttled (operators and nodes may share an address).
    if (buf.size() < min_admin_token_size || !net::http::usable_bearer_token(buf)) {
        ::explicit_bzero(buf.data(), buf.size());
        throw std::runtime_error("admin token file " + file.string() + " must hold one token of " +
                                 std::to_string(min_admin_token_size) +
                                 " to 4096 visible ASCII characters, no spaces (say, head -c 32 /dev/urandom "
                                 "| base64)");
    }
    secret out(std::move(buf));
    return out;
}

}  // namespace tether::app
