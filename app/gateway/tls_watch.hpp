// The TLS certificate and key files, followed while the gateway serves: a
// renewed certificate (cert-manager updating a Secret, certbot, by hand)
// takes effect without a restart that would drop every event stream.
#pragma once

#include "base/asio.hpp"
#include "base/log.hpp"
#include "net/tls.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace tether::app {

struct tls_files {
    std::filesystem::path cert_chain;
    std::filesystem::path private_key;
};

/// What follow_tls_files compares: a SHA-256 of both files' text, so the
/// key itself is not kept to compare against.
std::string tls_digest(const net::server_tls_pem& pem);

/// Reads both files every `every` on `blocking`. When they hold something
/// other than `in_use` (a tls_digest) and make a usable context (the key is
/// the certificate's), new handshakes use it; established connections keep
/// the one they began with; `replaced` hears of the new certificate. Files
/// that cannot be used (gone, half written, a key of another certificate)
/// keep the context in use, logged once per reason. Runs until cancelled.
awaitable<void> follow_tls_files(tls_files files, std::string in_use, net::replaceable_tls& tls,
                                 std::function<void(const net::certificate_facts&)> replaced,
                                 asio::any_io_executor blocking, const log::logger& log,
                                 std::chrono::milliseconds every = std::chrono::seconds(2));

/// The fields the gateway logs for a certificate it serves.
log::fields certificate_fields(const net::certificate_facts& facts);

}  // namespace tether::app
