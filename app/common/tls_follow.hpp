// TLS material followed while a process runs: the gateway's certificate and
// key, the agent's CA bundle. Replaced files take effect for new
// connections, without a restart that would drop the open ones.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/tls.hpp"

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace tether::app {

/// A SHA-256 of `parts`, each with its length first: what files held is
/// compared without keeping it (a private key among them).
std::string digest_of(std::initializer_list<std::string_view> parts);

/// One look at the files, made on a thread that may block.
/// Files that cannot be used throw std::runtime_error (a path and OpenSSL's
/// reason, never the contents).
struct tls_reading {
    std::string digest;                              ///< of what was read
    std::shared_ptr<boost::asio::ssl::context> ctx;  ///< made from it; null: it is what is in use
};

struct tls_follow_options {
    std::string_view replaced_event;  ///< logged (info) with what `replaced` returns
    std::string_view unusable_event;  ///< logged (warn) once per reason
    std::string_view keeps;           ///< what stays when files cannot be used
    std::chrono::milliseconds every{2'000};
};

/// follow_files for a TLS context: every `every`, runs `read(in_use)` on
/// `blocking`. A new context goes to `tls` (new connections take it; open
/// ones keep theirs) and `replaced` tells what to log of it; a reading that
/// fails keeps the context in use. Runs until cancelled.
awaitable<void> follow_tls(std::function<tls_reading(const std::string& in_use)> read, std::string in_use,
                           net::replaceable_tls& tls,
                           std::function<log::fields(boost::asio::ssl::context&)> replaced,
                           asio::any_io_executor blocking, const log::logger& log, tls_follow_options opts);

}  // namespace tether::app
