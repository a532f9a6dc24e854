// Cryptographically strong random bytes and tokens (OpenSSL RAND_bytes).
#pragma once

#include <cstddef>
#include <string>

namespace tether {

/// `n` random bytes. Throws std::runtime_error if the CSPRNG fails, which on
/// Linux means the process cannot be trusted to make secrets at all.
std::string random_bytes(std::size_t n);

/// URL-safe token: `n` random bytes as unpadded base64url.
std::string random_token(std::size_t n);

}  // namespace tether
