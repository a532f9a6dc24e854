#include "app/gateway/admin_token_watch.hpp"

#include "app/gateway/admin_token.hpp"
#include "base/blocking_call.hpp"
#include "gateway/service.hpp"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace tether::app {

namespace {

struct reading {
    std::optional<secret> token;
    std::string error;  ///< why there is none; never holds the token
};

}  // namespace

awaitable<void> follow_admin_token(std::filesystem::path file, gateway::service& svc,
                                   asio::any_io_executor blocking, const log::logger& log,
                                   std::chrono::milliseconds every)
{
    const auto ex = co_await asio::this_coro::executor;
    const auto shown = std::filesystem::absolute(file).string();
    std::string last_error;
    for (;;) {
        timer t{ex, every};
        co_await t.async_wait(use_awaitable);
        std::function<reading()> read = [file] {
            reading r;
            try {
                r.token = load_admin_token(file, false);
            } catch (const std::runtime_error& e) {
                r.error = e.what();
            }
            return r;
        };
        auto r = co_await blocking_call(blocking, std::move(read));
        if (!r.token) {
            // A rotation half done, or a mistake: the token in use stays,
            // since refusing every admin request helps nobody.
            if (r.error != last_error)
                log.warn("gateway.admin_token_unreadable",
                         {{"error", r.error}, {"keeps", "the token in use"}});
            last_error = std::move(r.error);
            continue;
        }
        last_error.clear();
        if (svc.replace_admin_token(std::move(*r.token)))
            log.info("gateway.admin_token_replaced", {{"file", shown}});
    }
}

}  // namespace tether::app
