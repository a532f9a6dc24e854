// The agent's trust: a CA bundle (--ca-file) made into a client context,
// checked against OpenSSL's own chain verification with the context's store,
// the store every handshake of that context uses.
#include "net/tls.hpp"
#include "support/child_process.hpp"
#include "support/test_pki.hpp"
#include "support/thrown.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/test/unit_test.hpp>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>

namespace net = tether::net;
using tether::test::read_file;
using tether::test::temp_dir;
using tether::test::what_thrown;
using tether::test::write_file;

namespace {

/// OpenSSL's verdict on `leaf` with the context's trust (X509_V_OK: trusted).
int verify(boost::asio::ssl::context& ctx, const std::filesystem::path& leaf_file, unsigned long flags = 0)
{
    const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(leaf_file.c_str(), "r"), &BIO_free);
    BOOST_TEST_REQUIRE(bool(bio));
    const std::unique_ptr<X509, decltype(&X509_free)> leaf(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
    BOOST_TEST_REQUIRE(bool(leaf));
    const std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> vc(X509_STORE_CTX_new(),
                                                                             &X509_STORE_CTX_free);
    BOOST_TEST_REQUIRE(
        X509_STORE_CTX_init(vc.get(), SSL_CTX_get_cert_store(ctx.native_handle()), leaf.get(), nullptr) == 1);
    if (flags != 0) X509_STORE_CTX_set_flags(vc.get(), flags);
    (void)X509_verify_cert(vc.get());
    return X509_STORE_CTX_get_error(vc.get());
}

std::size_t count_of(const std::string& text, const std::string& what)
{
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

/// Two CAs of one name, as a CA rotation has them, each with a leaf.
struct two_cas {
    temp_dir dir;
    tether::test::pki_files old_ca =
        tether::test::make_pki(dir.path() / "old", "localhost", {"localhost"}, {"127.0.0.1"});
    tether::test::pki_files new_ca =
        tether::test::make_pki(dir.path() / "new", "localhost", {"localhost"}, {"127.0.0.1"});
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(client_tls, two_cas)

BOOST_AUTO_TEST_CASE(a_bundle_trusts_every_certificate_in_it_and_nothing_else)
{
    const auto both = dir.path() / "both.pem";
    write_file(both, read_file(old_ca.ca_cert) + read_file(new_ca.ca_cert));
    const auto trust_both = net::make_client_tls(both);
    BOOST_TEST(verify(*trust_both, old_ca.cert) == X509_V_OK);
    BOOST_TEST(verify(*trust_both, new_ca.cert) == X509_V_OK);

    const auto trust_old = net::make_client_tls(old_ca.ca_cert);
    BOOST_TEST(verify(*trust_old, old_ca.cert) == X509_V_OK);
    BOOST_TEST(verify(*trust_old, new_ca.cert) != X509_V_OK);

    // From the text already read, as the ca-file task makes it.
    const auto from_text = net::make_client_tls_from(read_file(new_ca.ca_cert), new_ca.ca_cert);
    BOOST_TEST(verify(*from_text, new_ca.cert) == X509_V_OK);
    BOOST_TEST(verify(*from_text, old_ca.cert) != X509_V_OK);

    // The system store is not the test CA's.
    const auto system = net::make_client_tls(std::nullopt);
    BOOST_TEST(verify(*system, old_ca.cert) != X509_V_OK);
}

BOOST_AUTO_TEST_CASE(a_bundle_larger_than_1_mib_is_refused_and_never_read_whole)
{
    // PEM readers skip text between blocks, so OpenSSL's own file loader
    // took a bundle of any size; this one reads at most 1 MiB of it.
    const auto padded = dir.path() / "padded.pem";
    const std::string ca = read_file(old_ca.ca_cert);
    std::string text = ca;
    while (text.size() <= (std::size_t{1} << 20)) text += "# a comment line between the blocks\n";
    write_file(padded, text);
    const auto from_file = what_thrown([&] { net::make_client_tls(padded); });
    BOOST_TEST(from_file == "cannot load CA file " + padded.string() + ": larger than 1 MiB");
    const auto from_text = what_thrown([&] { net::make_client_tls_from(text, padded); });
    BOOST_TEST(from_text == "cannot load CA file " + padded.string() + ": larger than 1 MiB");

    // Just under the bound it is a bundle like any other.
    text.resize((std::size_t{1} << 20) - 64);
    text.resize(text.rfind('\n') + 1);
    write_file(padded, text);
    BOOST_TEST(verify(*net::make_client_tls(padded), old_ca.cert) == X509_V_OK);
}

BOOST_AUTO_TEST_CASE(bundles_that_would_fail_every_handshake_are_refused_with_their_path_only)
{
    const std::string ca = read_file(old_ca.ca_cert);
    const std::string body = ca.substr(ca.find('\n') + 1, 64);
    const struct {
        const char* name;
        std::string text;
        const char* why;  ///< in the refusal
    } cases[] = {
        {"empty", "", "no certificate in it"},
        {"prose", "not a certificate\n", "no certificate in it"},
        {"key only", read_file(old_ca.key), "no certificate in it"},
        {"garbled block", "-----BEGIN CERTIFICATE-----\n" + body + "!!\n-----END CERTIFICATE-----\n", ""},
        {"good then cut short", ca + ca.substr(0, ca.size() / 2), ""},
        // A passphrase is never asked for (on a terminal, that was a start
        // that waits for a typed answer): the empty one is tried, and fails.
        {"encrypted block",
         "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n"
         "DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n" +
             ca.substr(ca.find('\n') + 1),
         ""},
    };
    for (const auto& c : cases) {
        const auto file = dir.path() / "bundle.pem";
        write_file(file, c.text);
        const auto why = what_thrown([&] { net::make_client_tls(file); });
        BOOST_TEST_CONTEXT(c.name << ": " << why)
        {
            BOOST_TEST(why.rfind("cannot load CA file " + file.string() + ": ", 0) == 0u);
            BOOST_TEST(why.find(c.why) != std::string::npos);
            BOOST_TEST(why.find("MII") == std::string::npos, "no PEM text in the message");
            BOOST_TEST(count_of(why, "\n") == 0u);
            BOOST_TEST(why.find("password") == std::string::npos);
        }
    }
    BOOST_TEST(what_thrown([&] { net::make_client_tls_from(std::string_view(), dir.path() / "none.pem"); }) ==
               "cannot load CA file " + (dir.path() / "none.pem").string() + ": no certificate in it");
    const auto gone = dir.path() / "gone.pem";
    BOOST_TEST(what_thrown([&] { net::make_client_tls(gone); }) ==
               "cannot load CA file " + gone.string() + ": No such file or directory");
}

BOOST_AUTO_TEST_CASE(a_named_pipe_for_a_bundle_is_refused_without_waiting_for_a_writer)
{
    // Its open() waited for a writer: `tether run` hung at start, without a
    // word, and the follower held the blocking pool's thread.
    const auto fifo = dir.path() / "bundle.fifo";
    BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto made =
        std::async(std::launch::async, [&] { return what_thrown([&] { net::make_client_tls(fifo); }); });
    if (made.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        // A writer lets the waiting open() return, so the case can end.
        ::close(::open(fifo.c_str(), O_WRONLY));
        BOOST_FAIL("make_client_tls waited for a writer on a named pipe");
    }
    BOOST_TEST(made.get() == "cannot load CA file " + fifo.string() + ": no certificate in it");
}

BOOST_AUTO_TEST_CASE(crls_in_a_bundle_are_kept_and_a_bundle_of_crls_alone_is_refused)
{
    const auto crl = tether::test::make_crl(old_ca.ca_cert.parent_path(), {old_ca.cert});
    const auto with_crl = dir.path() / "with-crl.pem";
    write_file(with_crl, read_file(old_ca.ca_cert) + read_file(crl));
    const auto ctx = net::make_client_tls(with_crl);
    // Nothing checks revocation by default (as before: OpenSSL's own
    // loader kept CRLs the same way), but the CRL is in the store: asked to
    // check, the store finds the leaf revoked.
    BOOST_TEST(verify(*ctx, old_ca.cert) == X509_V_OK);
    BOOST_TEST(verify(*ctx, old_ca.cert, X509_V_FLAG_CRL_CHECK) == X509_V_ERR_CERT_REVOKED);

    const auto crl_only = dir.path() / "crl-only.pem";
    write_file(crl_only, read_file(crl));
    BOOST_TEST(what_thrown([&] { net::make_client_tls(crl_only); }) ==
               "cannot load CA file " + crl_only.string() + ": no certificate in it");
}

BOOST_AUTO_TEST_SUITE_END()
