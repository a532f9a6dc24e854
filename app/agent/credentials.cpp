#include "app/agent/credentials.hpp"

#include "app/common/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
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
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
    if (text.empty()) throw cli::usage_error(origin + ": " + path + " is empty");
    if (text.find_first_of("\r\n") != std::string::npos)
        throw cli::usage_error(origin + ": " + path + " holds more than one line");
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
