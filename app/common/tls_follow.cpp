#include "app/common/tls_follow.hpp"

#include "base/blocking_call.hpp"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>
#include <utility>

namespace tether::app {

std::string digest_of(std::initializer_list<std::string_view> parts)
{
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    bool ok = md && EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) == 1;
    for (const auto part : parts) {
        // The length first: no two different sets of files hash the same text.
        const std::size_t size = part.size();
        ok = ok && EVP_DigestUpdate(md.get(), &size, sizeof size) == 1 &&
             EVP_DigestUpdate(md.get(), part.data(), part.size()) == 1;
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int n = 0;
    if (!ok || EVP_DigestFinal_ex(md.get(), out.data(), &n) != 1) throw std::runtime_error("SHA-256 failed");
    return {reinterpret_cast<const char*>(out.data()), n};
}

awaitable<void> follow_tls(std::function<tls_reading(const std::string& in_use)> read, std::string in_use,
                           net::replaceable_tls& tls,
                           std::function<log::fields(boost::asio::ssl::context&)> replaced,
                           asio::any_io_executor blocking, const log::logger& log, tls_follow_options opts)
{
    const auto ex = co_await asio::this_coro::executor;
    std::string last_error;
    for (;;) {
        timer t{ex, opts.every};
        co_await t.async_wait(use_awaitable);
        std::function<tls_reading()> look = [&read, in_use] {
            try {
                return read(in_use);
            } catch (const std::runtime_error& e) {
                tls_reading r;
                r.error = e.what();
                return r;
            }
        };
        auto r = co_await blocking_call(blocking, std::move(look));
        if (r.unchanged) {
            last_error.clear();
            continue;
        }
        if (!r.ctx) {
            // A renewal half done (a certificate written, its key not yet) or
            // a mistake: what is in use beats refusing every handshake, and
            // the next look tries again.
            if (r.error != last_error)
                log.warn(opts.unusable_event, {{"error", r.error}, {"keeps", opts.keeps}});
            last_error = std::move(r.error);
            continue;
        }
        last_error.clear();
        auto fields = replaced ? replaced(*r.ctx) : log::fields{};
        tls.replace(std::move(r.ctx));
        in_use = std::move(r.digest);
        log.info(opts.replaced_event, std::move(fields));
    }
}

}  // namespace tether::app
