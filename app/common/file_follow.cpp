#include "app/common/file_follow.hpp"

#include "base/blocking_call.hpp"

#include <stdexcept>
#include <utility>

namespace tether::app {

awaitable<void> follow_files(std::function<file_look()> look, asio::any_io_executor blocking,
                             const log::logger& log, file_follow_options opts)
{
    const auto ex = co_await asio::this_coro::executor;
    std::string last_error;
    for (;;) {
        timer t{ex, opts.every};
        co_await t.async_wait(use_awaitable);
        std::function<file_look()> guarded = [&look] {
            try {
                return look();
            } catch (const std::runtime_error& e) {
                file_look failed;
                failed.error = e.what();
                return failed;
            }
        };
        auto found = co_await blocking_call(blocking, std::move(guarded));
        if (!found.error.empty()) {
            if (found.error != last_error)
                log.warn(opts.unusable_event, {{"error", found.error}, {"keeps", opts.keeps}});
            last_error = std::move(found.error);
            continue;
        }
        last_error.clear();
        if (found.use) found.use();
    }
}

}  // namespace tether::app
