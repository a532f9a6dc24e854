// A TLS client session whose records the caller carries. OpenSSL works on a
// memory BIO pair and never touches a socket: the caller reads ciphertext
// with its own (Asio) reads, which keep the reactor's readiness bookkeeping,
// and writes records straight to the socket without a composed operation.
// The credential broker's upstream connections use it; nothing here blocks.
#pragma once

#include <boost/system/error_code.hpp>

#include <string>
#include <string_view>

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st;
using BIO = struct bio_st;

namespace tether::net {

class tls_records {
public:
    /// A client session on `ctx`; verification and names are the caller's
    /// to set on native_handle() (see prepare_client_session). Throws
    /// std::bad_alloc when OpenSSL cannot allocate one.
    explicit tls_records(SSL_CTX* ctx);
    ~tls_records();
    tls_records(const tls_records&) = delete;
    tls_records& operator=(const tls_records&) = delete;

    [[nodiscard]] SSL* native_handle() const noexcept { return ssl_; }

    /// Advances the handshake: records to send are appended to `out`. True
    /// once it is complete; false while it needs more from the peer (push).
    /// An error for a failed handshake (a verification failure leaves its
    /// reason in SSL_get_verify_result).
    [[nodiscard]] boost::system::error_code handshake(std::string& out, bool& complete);

    /// Ciphertext from the peer for the handshake. False: more than the
    /// session can hold before it has been handshaken (a hostile peer).
    [[nodiscard]] bool push(std::string_view cipher);

    /// Ciphertext from the peer; the plaintext it completes is appended to
    /// `plain`. `closed` is set at the peer's close_notify. Records the
    /// session must answer (alerts, key updates) wait in take_output.
    [[nodiscard]] boost::system::error_code receive(std::string_view cipher, std::string& plain,
                                                    bool& closed);

    /// Encrypts all of `plain` into records appended to `out`.
    [[nodiscard]] boost::system::error_code write(std::string_view plain, std::string& out);

    /// Records waiting to be sent (after receive), appended to `out`.
    void take_output(std::string& out);

private:
    SSL* ssl_ = nullptr;
    BIO* ext_ = nullptr;  ///< our end of the pair: records in and out
};

}  // namespace tether::net
