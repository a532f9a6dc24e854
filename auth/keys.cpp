#include "auth/keys.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>

namespace tether::auth {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

pkey_ptr load_private(const secret& pem)
{
    std::unique_ptr<BIO, bio_free> bio(BIO_new_mem_buf(pem.reveal().data(), static_cast<int>(pem.size())));
    if (!bio) throw std::runtime_error("out of memory");
    pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
        throw std::runtime_error("the node key is not an Ed25519 private key in PEM form");
    return key;
}

std::string raw_public(EVP_PKEY* key)
{
    std::string out(32, '\0');
    std::size_t len = out.size();
    if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
        len != 32)
        throw std::runtime_error("cannot read the Ed25519 public key");
    return out;
}

}  // namespace

key_pair generate_key()
{
    pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!key) throw std::runtime_error("cannot generate an Ed25519 key");
    std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        throw std::runtime_error("cannot encode the Ed25519 key");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    key_pair out{secret(std::string(data, static_cast<std::size_t>(n))), raw_public(key.get())};
    // The PEM passed through a BIO buffer; clear it before BIO_free returns it.
    OPENSSL_cleanse(data, static_cast<std::size_t>(n));
    return out;
}

std::string public_key_of(const secret& private_pem)
{
    return raw_public(load_private(private_pem).get());
}

std::string login_message(std::string_view node_id, std::string_view challenge)
{
    std::string m = "tether-auth-v1\n";
    m.append(node_id).push_back('\n');
    m.append(challenge);
    return m;
}

std::string sign(const secret& private_pem, std::string_view message)
{
    auto key = load_private(private_pem);
    std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
    std::string sig(64, '\0');
    std::size_t len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
        throw std::runtime_error("Ed25519 signing failed");
    sig.resize(len);
    return sig;
}

bool verify(std::string_view public_raw, std::string_view message, std::string_view signature) noexcept
{
    if (public_raw.size() != 32 || signature.size() != 64) return false;
    pkey_ptr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(public_raw.data()), 32));
    if (!key) return false;
    std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                            message.size()) == 1;
}

std::string sha256_hex(std::string_view data)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned i = 0; i < len; ++i) {
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 15]);
    }
    return out;
}

}  // namespace tether::auth
