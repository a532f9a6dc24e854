#include "app/common/tls_follow.hpp"

#include "app/common/file_follow.hpp"

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
    // Read by each look on the blocking thread and written by its `use`
    // here: never at once, since a look starts after the last use ended.
    auto current = std::make_shared<std::string>(std::move(in_use));
    const auto replaced_event = opts.replaced_event;
    std::function<file_look()> look = [read = std::move(read), replaced = std::move(replaced), current, &tls,
                                       &log, replaced_event] {
        auto r = read(*current);
        file_look found;
        if (!r.ctx) return found;
        found.use = [ctx = std::move(r.ctx), digest = std::move(r.digest), replaced, current, &tls, &log,
                     replaced_event] {
            auto fields = replaced ? replaced(*ctx) : log::fields{};
            tls.replace(ctx);
            *current = digest;
            log.info(replaced_event, std::move(fields));
        };
        return found;
    };
    co_await follow_files(std::move(look), std::move(blocking), log,
                          {opts.unusable_event, opts.keeps, opts.every});
}

}  // namespace tether::app
