// The broker's TLS record loop against a hostile upstream's bytes. The first
// byte picks how the rest is cut (1 to 16 KiB pieces, the broker reads at
// most 16 KiB at a time); the pieces go to one session through push and
// handshake (the broker's handshake loop) and to another through receive
// alone (which drives the handshake inside SSL_read). Neither may crash,
// spin, or hand out plaintext: no server key ever answered the ClientHello.
#include "net/tls_records.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

SSL_CTX* client_context()
{
    static SSL_CTX* ctx = [] {
        SSL_CTX* c = SSL_CTX_new(TLS_client_method());
        if (c == nullptr) std::abort();
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);  // no CA: nothing verifies
        return c;
    }();
    return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0) return 0;
    const std::size_t cut = data[0] < 128 ? std::size_t{1} + data[0] : std::size_t{128} * (data[0] - 127);
    const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

    tether::net::tls_records stepped(client_context());
    std::string out;
    bool complete = false;
    if (stepped.handshake(out, complete) || complete || out.empty()) std::abort();  // a ClientHello, no error
    for (std::size_t at = 0; at < bytes.size(); at += cut) {
        if (!stepped.push(bytes.substr(at, cut))) break;  // more than it holds: the broker gives up too
        out.clear();
        if (stepped.handshake(out, complete)) break;
        if (complete) std::abort();  // no server key answered this ClientHello
    }

    tether::net::tls_records fed(client_context());
    out.clear();
    (void)fed.handshake(out, complete);
    std::string plain;
    bool closed = false;
    for (std::size_t at = 0; at < bytes.size(); at += cut) {
        if (fed.receive(bytes.substr(at, cut), plain, closed)) break;
        if (!plain.empty()) std::abort();
        if (closed) break;
        fed.take_output(out);
    }
    return 0;
}
