#include "base/random_bytes.hpp"

#include <openssl/rand.h>

#include <stdexcept>

namespace tether {

std::string random_bytes(std::size_t n)
{
    std::string out(n, '\0');
    if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("OpenSSL RAND_bytes failed");
    return out;
}

std::string random_token(std::size_t n)
{
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const std::string raw = random_bytes(n);
    std::string out;
    out.reserve((n * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const auto v = (static_cast<unsigned>(static_cast<unsigned char>(raw[i])) << 16) |
                       (static_cast<unsigned>(static_cast<unsigned char>(raw[i + 1])) << 8) |
                       static_cast<unsigned char>(raw[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (n - i == 1) {
        const auto v = static_cast<unsigned>(static_cast<unsigned char>(raw[i])) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        const auto v = (static_cast<unsigned>(static_cast<unsigned char>(raw[i])) << 16) |
                       (static_cast<unsigned>(static_cast<unsigned char>(raw[i + 1])) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
    }
    return out;
}

}  // namespace tether
