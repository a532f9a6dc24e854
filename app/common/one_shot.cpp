#include "app/common/one_shot.hpp"

#include <boost/asio/co_spawn.hpp>

namespace tether::app {

void run_to_completion(asio::io_context& ioc, awaitable<void> op)
{
    std::exception_ptr failure;
    asio::co_spawn(ioc, std::move(op), [&failure](std::exception_ptr e) { failure = e; });
    ioc.run();
    if (failure) std::rethrow_exception(failure);
}

}  // namespace tether::app
