#include "base/exceptions.hpp"

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

namespace tether {

std::string describe(const std::exception_ptr& e)
{
    if (!e) return "no error";
    try {
        std::rethrow_exception(e);
    } catch (const boost::system::system_error& x) {
        return x.code().message() + " [" + x.code().to_string() + "]";
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown exception";
    }
}

bool is_cancellation(const std::exception_ptr& e)
{
    if (!e) return false;
    try {
        std::rethrow_exception(e);
    } catch (const boost::system::system_error& x) {
        return x.code() == boost::asio::error::operation_aborted;
    } catch (...) {
        return false;
    }
}

}  // namespace tether
