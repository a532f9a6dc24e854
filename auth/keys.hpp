// Ed25519 node keys and the login signature (OpenSSL EVP), plus SHA-256.
#pragma once

#include "base/secret.hpp"

#include <string>
#include <string_view>

namespace tether::auth {

struct key_pair {
    secret private_pem;      ///< PKCS#8 PEM
    std::string public_raw;  ///< 32 bytes, as the wire contract sends it
};

/// Throws std::runtime_error if OpenSSL cannot make a key.
key_pair generate_key();

/// The raw public key of a PEM private key. Throws on a malformed key.
std::string public_key_of(const secret& private_pem);

/// The bytes a node signs to log in: "tether-auth-v1\n" + nodeId + "\n" + challenge.
std::string login_message(std::string_view node_id, std::string_view challenge);

/// 64-byte Ed25519 signature. Throws on a malformed key.
std::string sign(const secret& private_pem, std::string_view message);

/// False for a bad signature, a public key that is not 32 bytes, or any
/// other malformed input; never throws.
bool verify(std::string_view public_raw, std::string_view message, std::string_view signature) noexcept;

/// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view data);

}  // namespace tether::auth
