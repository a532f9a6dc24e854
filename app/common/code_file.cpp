#include "app/common/code_file.hpp"

#include "app/common/cli.hpp"
#include "base/whole_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace tether::app {

secret read_code_file(const invocation& inv, const std::string& flag)
{
    const auto file = inv.args.value(flag).value_or("");
    const auto where = inv.args.origin(flag);
    if (file.empty()) throw cli::usage_error(where + " is empty");
    constexpr std::size_t cap = 4096;
    std::string text;
    if (file == "-") {
        text = read_up_to(STDIN_FILENO, cap + 1);
    } else {
        const int fd = open_for_reading(file);
        if (fd < 0)
            throw cli::usage_error(where + ": cannot read " + file + ": " +
                                   std::generic_category().message(errno));
        text = read_up_to(fd, cap + 1);
        ::close(fd);
    }
    if (text.size() > cap)
        throw cli::usage_error(where + ": " + file +
                               " is larger than 4 KiB; an enrollment code is one short line");
    trim_line_end(text);
    if (text.empty()) throw cli::usage_error(where + ": " + file + " holds no code");
    if (text.find_first_of("\r\n") != std::string::npos)
        throw cli::usage_error(where + ": " + file + " holds more than one line");
    return secret(std::move(text));
}

}  // namespace tether::app
