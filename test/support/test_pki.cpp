#include "support/test_pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace tether::test {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const { X509_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

void check(bool ok, const char* what)
{
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

pkey_ptr new_key()
{
    pkey_ptr k(EVP_EC_gen("P-256"));
    check(k != nullptr, "EVP_EC_gen");
    return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

x509_ptr new_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, long serial)
{
    x509_ptr c(X509_new());
    X509_set_version(c.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 7L * 24 * 3600);
    X509_set_pubkey(c.get(), key);
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    (void)issuer_key;
    return c;
}

void write_pem(const std::filesystem::path& p, X509* cert)
{
    FILE* f = std::fopen(p.c_str(), "w");
    check(f != nullptr, "fopen");
    PEM_write_X509(f, cert);
    std::fclose(f);
}

void write_key(const std::filesystem::path& p, EVP_PKEY* key)
{
    FILE* f = std::fopen(p.c_str(), "w");
    check(f != nullptr, "fopen");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
}

pkey_ptr read_key(const std::filesystem::path& p)
{
    FILE* f = std::fopen(p.c_str(), "r");
    check(f != nullptr, "fopen key");
    pkey_ptr k(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    check(k != nullptr, "read key");
    return k;
}

x509_ptr read_cert(const std::filesystem::path& p)
{
    FILE* f = std::fopen(p.c_str(), "r");
    check(f != nullptr, "fopen cert");
    x509_ptr c(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    check(c != nullptr, "read cert");
    return c;
}

}  // namespace

pki_files make_pki(const std::filesystem::path& dir, const std::string& leaf_name,
                   const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses,
                   bool expired)
{
    std::filesystem::create_directories(dir);
    const auto ca_cert_path = dir / "ca.pem";
    const auto ca_key_path = dir / "ca.key";
    if (!std::filesystem::exists(ca_cert_path)) {
        auto key = new_key();
        auto ca = new_cert(key.get(), "tether test CA", nullptr, nullptr, 1);
        add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
        add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
        check(X509_sign(ca.get(), key.get(), EVP_sha256()) > 0, "sign CA");
        write_pem(ca_cert_path, ca.get());
        write_key(ca_key_path, key.get());
    }
    auto ca_key = read_key(ca_key_path);
    auto ca = read_cert(ca_cert_path);

    auto key = new_key();
    auto leaf = new_cert(key.get(), dns_names.empty() ? leaf_name : dns_names.front(), ca.get(), ca_key.get(),
                         static_cast<long>(std::hash<std::string>{}(leaf_name)&0x7fffffff));
    if (expired) {
        X509_gmtime_adj(X509_getm_notBefore(leaf.get()), -7L * 24 * 3600);
        X509_gmtime_adj(X509_getm_notAfter(leaf.get()), -3600);
    }
    std::string san;
    for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
    for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
    if (!san.empty()) add_ext(leaf.get(), ca.get(), NID_subject_alt_name, san);
    add_ext(leaf.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    // As every real issuer does: with two CAs of one name in a trust store
    // (a rotation), it is what tells OpenSSL which one signed.
    add_ext(leaf.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    add_ext(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth");
    check(X509_sign(leaf.get(), ca_key.get(), EVP_sha256()) > 0, "sign leaf");
    pki_files out{ca_cert_path, dir / (leaf_name + ".pem"), dir / (leaf_name + ".key")};
    write_pem(out.cert, leaf.get());
    write_key(out.key, key.get());
    return out;
}

std::filesystem::path make_crl(const std::filesystem::path& dir,
                               const std::vector<std::filesystem::path>& revoked)
{
    auto ca_key = read_key(dir / "ca.key");
    auto ca = read_cert(dir / "ca.pem");
    const std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), &X509_CRL_free);
    const std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> now(X509_gmtime_adj(nullptr, -60),
                                                                    &ASN1_TIME_free);
    const std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(X509_gmtime_adj(nullptr, 24L * 3600),
                                                                     &ASN1_TIME_free);
    check(crl && now && next, "X509_CRL_new");
    X509_CRL_set_version(crl.get(), 1);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get()));
    X509_CRL_set1_lastUpdate(crl.get(), now.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const auto& file : revoked) {
        auto leaf = read_cert(file);
        X509_REVOKED* r = X509_REVOKED_new();
        check(r != nullptr, "X509_REVOKED_new");
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(leaf.get()));
        X509_REVOKED_set_revocationDate(r, now.get());
        X509_CRL_add0_revoked(crl.get(), r);
    }
    X509_CRL_sort(crl.get());
    check(X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) > 0, "sign CRL");
    const auto path = dir / "ca.crl.pem";
    FILE* f = std::fopen(path.c_str(), "w");
    check(f != nullptr, "fopen CRL");
    PEM_write_X509_CRL(f, crl.get());
    std::fclose(f);
    return path;
}

}  // namespace tether::test
