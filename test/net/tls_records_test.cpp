// net::tls_records against a real OpenSSL server session: the records go
// between the two by hand, in whole flights or byte by byte, so every path
// (handshake, large answers, close_notify, a broken peer) is driven on
// purpose rather than by a socket's timing.
#include "net/tls_records.hpp"

#include "net/errc.hpp"
#include "net/tls.hpp"
#include "support/child_process.hpp"
#include "support/test_pki.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/test/unit_test.hpp>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace net = tether::net;

namespace {

/// The peer: an OpenSSL server on a memory BIO pair of its own.
class server_side {
public:
    explicit server_side(const tether::test::pki_files& pki)
        : ctx_(net::make_server_tls(pki.cert, pki.key)), ssl_(SSL_new(ctx_->native_handle()))
    {
        BIO* inner = nullptr;
        BIO_new_bio_pair(&inner, 64 * 1024, &ext_, 64 * 1024);
        SSL_set_bio(ssl_, inner, inner);
        SSL_set_accept_state(ssl_);
    }
    ~server_side()
    {
        SSL_free(ssl_);
        BIO_free(ext_);
    }
    server_side(const server_side&) = delete;
    server_side& operator=(const server_side&) = delete;

    void take(const std::string& records)
    {
        BIO_write(ext_, records.data(), static_cast<int>(records.size()));
    }
    std::string give()
    {
        return drain([this](char* buf, int cap) { return BIO_read(ext_, buf, cap); });
    }
    void step() { (void)SSL_do_handshake(ssl_); }
    std::string read_all()
    {
        return drain([this](char* buf, int cap) { return SSL_read(ssl_, buf, cap); });
    }
    void write(const std::string& s) { (void)SSL_write(ssl_, s.data(), static_cast<int>(s.size())); }
    void close() { (void)SSL_shutdown(ssl_); }

private:
    /// Whatever `read` hands out until it has nothing more.
    template <class Read>
    static std::string drain(Read read)
    {
        std::string out;
        char buf[4096];
        for (int n = 0; (n = read(buf, static_cast<int>(sizeof buf))) > 0;)
            out.append(buf, static_cast<std::size_t>(n));
        return out;
    }

    std::shared_ptr<boost::asio::ssl::context> ctx_;
    SSL* ssl_;
    BIO* ext_ = nullptr;
};

struct pair_fixture {
    tether::test::temp_dir dir;
    tether::test::pki_files pki =
        tether::test::make_pki(dir.path(), "localhost", {"localhost"}, {"127.0.0.1"});
    std::shared_ptr<boost::asio::ssl::context> client_ctx = net::make_client_tls(pki.ca_cert);

    std::unique_ptr<net::tls_records> client(const std::string& host)
    {
        auto c = std::make_unique<net::tls_records>(client_ctx->native_handle());
        BOOST_TEST_REQUIRE(!net::prepare_client_session(c->native_handle(), host));
        SSL_set_verify(c->native_handle(), SSL_VERIFY_PEER, nullptr);
        return c;
    }

    /// Runs the handshake to its end; the last error (none on success).
    boost::system::error_code handshake(net::tls_records& c, server_side& s, bool byte_by_byte = false)
    {
        for (int round = 0; round < 10; ++round) {
            std::string out;
            bool complete = false;
            const auto ec = c.handshake(out, complete);
            s.take(out);
            if (ec || complete) return ec;
            s.step();
            const std::string back = s.give();
            if (byte_by_byte) {
                for (const char ch : back) BOOST_TEST_REQUIRE(c.push(std::string_view(&ch, 1)));
            } else {
                BOOST_TEST_REQUIRE(c.push(back));
            }
        }
        BOOST_FAIL("the handshake did not end");
        return {};
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(tls_records, pair_fixture)

BOOST_AUTO_TEST_CASE(a_request_and_a_large_answer_cross_in_records)
{
    server_side s(pki);
    auto c = client("localhost");
    BOOST_TEST_REQUIRE(!handshake(*c, s));

    std::string wire;
    BOOST_TEST_REQUIRE(!c->write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", wire));
    s.take(wire);
    BOOST_TEST(s.read_all() == "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");

    // More than one record, and more than the session buffers at once.
    std::string big(200 * 1024, 'x');
    for (std::size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + (i % 26));
    std::string records;
    for (std::size_t at = 0; at < big.size(); at += 16 * 1024) {
        s.write(big.substr(at, 16 * 1024));
        records += s.give();
    }
    std::string plain;
    bool closed = false;
    // Fed in 16 KiB reads, the way the broker's socket reads arrive.
    for (std::size_t at = 0; at < records.size(); at += 16 * 1024) {
        BOOST_TEST_REQUIRE(!c->receive(std::string_view(records).substr(at, 16 * 1024), plain, closed));
        BOOST_TEST(!closed);
    }
    BOOST_TEST((plain == big));

    s.close();
    plain.clear();
    BOOST_TEST_REQUIRE(!c->receive(s.give(), plain, closed));
    BOOST_TEST(closed);
    BOOST_TEST(plain.empty());
}

BOOST_AUTO_TEST_CASE(records_split_anywhere_still_decrypt)
{
    server_side s(pki);
    auto c = client("localhost");
    BOOST_TEST_REQUIRE(!handshake(*c, s, true));
    s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const std::string records = s.give();
    std::string plain;
    bool closed = false;
    for (const char ch : records) BOOST_TEST_REQUIRE(!c->receive(std::string_view(&ch, 1), plain, closed));
    BOOST_TEST(plain == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
}

BOOST_AUTO_TEST_CASE(a_certificate_for_another_name_fails_the_handshake_with_its_reason)
{
    server_side s(pki);
    auto c = client("api.example.com");
    const auto ec = handshake(*c, s);
    BOOST_TEST(ec.failed());
    BOOST_TEST((net::verify_failure(SSL_get_verify_result(c->native_handle())) == net::errc::tls_wrong_host));
}

BOOST_AUTO_TEST_CASE(garbage_from_the_peer_is_an_error_not_a_crash)
{
    server_side s(pki);
    auto c = client("localhost");
    std::string out;
    bool complete = false;
    BOOST_TEST_REQUIRE(!c->handshake(out, complete));
    BOOST_TEST_REQUIRE(c->push("HTTP/1.1 400 Bad Request\r\n\r\n"));  // not TLS at all
    BOOST_TEST(c->handshake(out, complete).failed());

    // After a good handshake: a record with a broken MAC.
    server_side s2(pki);
    auto c2 = client("localhost");
    BOOST_TEST_REQUIRE(!handshake(*c2, s2));
    s2.write("hello");
    std::string records = s2.give();
    records.back() = static_cast<char>(records.back() ^ 0x55);
    std::string plain;
    bool closed = false;
    BOOST_TEST(c2->receive(records, plain, closed).failed());
    BOOST_TEST(plain.empty());
}

BOOST_AUTO_TEST_SUITE_END()
