#include "net/tls_records.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <climits>
#include <new>

namespace tether::net {

namespace {

using boost::system::error_code;

/// Room for what arrives: a whole record left over (16 KiB and its
/// overhead) plus one 16 KiB read, so a push or receive never has to wait
/// for OpenSSL to make room.
constexpr std::size_t incoming_room = std::size_t{34} * 1024;
constexpr std::size_t outgoing_room = std::size_t{17} * 1024;
constexpr int record_plain = 16 * 1024;

error_code last_error(int fallback = 0)
{
    const unsigned long e = ::ERR_get_error();
    ::ERR_clear_error();
    if (e != 0) return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
    if (fallback != 0) return {fallback, boost::asio::error::get_ssl_category()};
    return boost::asio::ssl::error::unspecified_system_error;
}

int clamp_int(std::size_t n)
{
    return static_cast<int>(std::min<std::size_t>(n, INT_MAX));
}

}  // namespace

tls_records::tls_records(SSL_CTX* ctx)
{
    ssl_ = ::SSL_new(ctx);
    if (ssl_ == nullptr) throw std::bad_alloc();
    BIO* inner = nullptr;
    // The inner end writes outgoing records, ours writes incoming ones.
    if (::BIO_new_bio_pair(&inner, outgoing_room, &ext_, incoming_room) != 1) {
        ::SSL_free(ssl_);
        throw std::bad_alloc();
    }
    ::SSL_set_bio(ssl_, inner, inner);  // the session owns the inner end now
    ::SSL_set_connect_state(ssl_);
    ::SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

tls_records::~tls_records()
{
    ::SSL_free(ssl_);
    ::BIO_free(ext_);
}

void tls_records::take_output(std::string& out)
{
    for (;;) {
        const std::size_t pending = ::BIO_ctrl_pending(ext_);
        if (pending == 0) return;
        const std::size_t at = out.size();
        out.resize(at + pending);
        const int n = ::BIO_read(ext_, out.data() + at, clamp_int(pending));
        out.resize(at + static_cast<std::size_t>(std::max(n, 0)));
        if (n <= 0) return;
    }
}

error_code tls_records::handshake(std::string& out, bool& complete)
{
    ::ERR_clear_error();
    const int r = ::SSL_do_handshake(ssl_);
    take_output(out);
    complete = r == 1;
    if (complete) return {};
    const int why = ::SSL_get_error(ssl_, r);
    if (why == SSL_ERROR_WANT_READ) return {};
    return last_error(why);
}

bool tls_records::push(std::string_view cipher)
{
    while (!cipher.empty()) {
        const int n = ::BIO_write(ext_, cipher.data(), clamp_int(cipher.size()));
        if (n <= 0) return false;
        cipher.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

error_code tls_records::receive(std::string_view cipher, std::string& plain, bool& closed)
{
    ::ERR_clear_error();
    closed = false;
    char scratch[record_plain];
    for (;;) {
        int w = 0;
        if (!cipher.empty()) {
            w = ::BIO_write(ext_, cipher.data(), clamp_int(cipher.size()));
            if (w > 0) cipher.remove_prefix(static_cast<std::size_t>(w));
        }
        bool progressed = false;
        for (;;) {
            const int n = ::SSL_read(ssl_, scratch, sizeof scratch);
            if (n > 0) {
                plain.append(scratch, static_cast<std::size_t>(n));
                progressed = true;
                continue;
            }
            const int why = ::SSL_get_error(ssl_, n);
            if (why == SSL_ERROR_WANT_READ) break;
            if (why == SSL_ERROR_ZERO_RETURN) {
                closed = true;
                return {};
            }
            return last_error(why);
        }
        if (cipher.empty()) return {};
        // The room above makes this unreachable for records of legal size;
        // a peer that gets here anyway is not waited for.
        if (!progressed && w <= 0) return boost::asio::ssl::error::unspecified_system_error;
    }
}

error_code tls_records::write(std::string_view plain, std::string& out)
{
    ::ERR_clear_error();
    while (!plain.empty()) {
        const int n = ::SSL_write(ssl_, plain.data(), std::min(clamp_int(plain.size()), record_plain));
        if (n > 0) {
            plain.remove_prefix(static_cast<std::size_t>(n));
            take_output(out);
            continue;
        }
        const int why = ::SSL_get_error(ssl_, n);
        if (why != SSL_ERROR_WANT_WRITE) return last_error(why);
        const std::size_t before = out.size();
        take_output(out);
        if (out.size() == before) return last_error(why);  // no room made: do not spin
    }
    take_output(out);
    return {};
}

}  // namespace tether::net
