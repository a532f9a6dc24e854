#include "app/gateway/admin_token_watch.hpp"

#include "app/common/file_follow.hpp"
#include "app/gateway/admin_token.hpp"
#include "gateway/service.hpp"

#include <functional>
#include <string>
#include <utility>

namespace tether::app {

awaitable<void> follow_admin_token(std::filesystem::path file, gateway::service& svc,
                                   asio::any_io_executor blocking, const log::logger& log,
                                   std::chrono::milliseconds every)
{
    const auto shown = std::filesystem::absolute(file).string();
    std::function<file_look()> look = [file, shown, &svc, &log] {
        file_look found;
        found.use = [token = load_admin_token(file, false), shown, &svc, &log] {
            if (svc.replace_admin_token(token)) log.info("gateway.admin_token_replaced", {{"file", shown}});
        };
        return found;
    };
    co_await follow_files(std::move(look), std::move(blocking), log,
                          {"gateway.admin_token_unreadable", "the token in use", every});
}

}  // namespace tether::app
