#include "app/agent/credentials.hpp"

#include "app/common/cli.hpp"
#include "base/whole_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <system_error>

namespace tether::app {

secret read_credential_file(const std::string& path, const std::string& origin)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw cli::usage_error(origin + ": cannot read " + path + ": " +
                               std::generic_category().message(errno));
    if (!S_ISREG(st.st_mode)) throw cli::usage_error(origin + ": " + path + " is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw cli::usage_error(origin + ": " + path + " is readable by group or others (mode " + mode +
                               "); a credential file must be private: chmod 600 " + path);
    }
    if (st.st_uid != ::geteuid()) throw cli::usage_error(origin + ": " + path + " belongs to another user");
    // It goes in a request header: one far larger is a wrong file (a log,
    // a bundle), not a credential, and is not read whole first.
    constexpr std::size_t cap = 16 * 1024;
    const int fd = open_for_reading(path);
    if (fd < 0)
        throw cli::usage_error(origin + ": cannot read " + path + ": " +
                               std::generic_category().message(errno));
    std::string text = read_up_to(fd, cap + 1);
    ::close(fd);
    if (text.size() > cap)
        throw cli::usage_error(origin + ": " + path +
                               " is larger than 16 KiB; a credential goes in a header");
    trim_line_end(text);
    if (text.empty()) throw cli::usage_error(origin + ": " + path + " is empty");
    if (text.find_first_of("\r\n") != std::string::npos)
        throw cli::usage_error(origin + ": " + path + " holds more than one line");
    if (std::any_of(text.begin(), text.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return (u < 0x20 && c != '\t') || u == 0x7f;
        }))
        throw cli::usage_error(origin + ": " + path + " holds a control character; a header cannot carry it");
    return secret(std::move(text));
}

awaitable<result<secret>> file_credential::get()
{
    result<secret> out = s_;
    co_return out;
}

awaitable<result<secret>> file_credential::refresh(secret)
{
    result<secret> out = s_;
    co_return out;
}

awaitable<result<secret>> session_credential::get()
{
    auto r = co_await s_.token();
    result<secret> out = r ? result<secret>(*r) : failed(r.error());
    co_return out;
}

awaitable<result<secret>> session_credential::refresh(secret rejected)
{
    auto r = co_await s_.refresh(std::move(rejected));
    result<secret> out = r ? result<secret>(*r) : failed(r.error());
    co_return out;
}

result<secret> session_credential::failed(const auth::session_error& e) const
{
    log_.warn("broker.login_failed", {{"code", net::connect::to_string(e.error.c)},
                                      {"message", e.error.message},
                                      {"permanent", e.permanent}});
    return net::connect::make_error_code(e.error.c);
}

}  // namespace tether::app
