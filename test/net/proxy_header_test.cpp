// The PROXY protocol header, both versions, against the format's own
// examples and what a hostile peer (or HTTP, or TLS) would send instead.
#include "net/proxy_header.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace ph = tether::net::proxy_header;
using ph::status;

namespace {

std::string v2(unsigned char version_command, unsigned char family, const std::string& block)
{
    std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
    h.push_back(static_cast<char>(version_command));
    h.push_back(static_cast<char>(family));
    h.push_back(static_cast<char>(block.size() >> 8));
    h.push_back(static_cast<char>(block.size() & 0xFF));
    return h + block;
}

/// 198.51.100.7:4242 -> 10.0.0.1:443, then `tlvs`.
std::string tcp4_block(const std::string& tlvs = {})
{
    return std::string("\xC6\x33\x64\x07\x0A\x00\x00\x01\x10\x92\x01\xBB", 12) + tlvs;
}

std::string text_of(status s)
{
    switch (s) {
        case status::need_more:
            return "need_more";
        case status::absent:
            return "absent";
        case status::complete:
            return "complete";
        case status::invalid:
            return "invalid";
    }
    return "?";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(proxy_header_suite)

BOOST_AUTO_TEST_CASE(version_1_names_the_client_and_takes_only_its_line)
{
    const std::string line = "PROXY TCP4 198.51.100.7 10.0.0.1 4242 443\r\n";
    const auto p = ph::parse(line + "GET / HTTP/1.1\r\n");
    BOOST_TEST(text_of(p.what) == "complete");
    BOOST_TEST(p.length == line.size());
    BOOST_TEST(p.address == "198.51.100.7");
    BOOST_TEST(p.port == 4242);

    const auto six = ph::parse("PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 65535 443\r\n\x16\x03\x01");
    BOOST_TEST(text_of(six.what) == "complete");
    BOOST_TEST(six.address == "2001:db8::1", "as inet_ntop writes it, as the accept path does");
    BOOST_TEST(six.port == 65535);

    const auto unknown = ph::parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
    BOOST_TEST(text_of(unknown.what) == "complete");
    BOOST_TEST(unknown.address.empty(), "the balancer's own connection");
    BOOST_TEST(text_of(ph::parse("PROXY UNKNOWN\r\n").what) == "complete");

    // Every prefix of a header waits for more, whatever may follow it.
    for (std::size_t n = 1; n < line.size(); ++n)
        BOOST_TEST(text_of(ph::parse(line.substr(0, n)).what) == "need_more", n);
}

BOOST_AUTO_TEST_CASE(version_1_refuses_what_breaks_the_format)
{
    const std::vector<std::string> bad{
        "PROXY TCP4 198.51.100.7 10.0.0.1 4242 443 9\r\n",   // a sixth field
        "PROXY TCP4 198.51.100.7 10.0.0.1 4242\r\n",         // a field short
        "PROXY TCP4  198.51.100.7 10.0.0.1 4242 443\r\n",    // an empty field
        "PROXY TCP4 198.51.100.7 10.0.0.1 4242 443 \r\n",    // a trailing space
        "PROXY TCP4 2001:db8::1 10.0.0.1 4242 443\r\n",      // a v6 address as TCP4
        "PROXY TCP6 198.51.100.7 2001:db8::2 4242 443\r\n",  // a v4 address as TCP6
        "PROXY TCP4 198.51.100.256 10.0.0.1 4242 443\r\n",
        "PROXY TCP4 198.51.100.7 10.0.0.1 65536 443\r\n",
        "PROXY TCP4 198.51.100.7 10.0.0.1 04242 443\r\n",  // a leading zero
        "PROXY TCP4 198.51.100.7 10.0.0.1 -1 443\r\n",
        "PROXY UDP4 198.51.100.7 10.0.0.1 4242 443\r\n",
        "PROXY tcp4 198.51.100.7 10.0.0.1 4242 443\r\n",
        "PROXY TCP4 198.51.100.7\n10.0.0.1 4242 443\r\n",  // a bare line feed
        std::string("PROXY TCP4 198.51.100.7\0", 24),
        "PROXY \r\n",
        "PROXY " + std::string(120, 'A'),  // no line end within 107 bytes
        "PROXY UNKNOWN " + std::string(100, 'x') + "\r\n",
    };
    for (const auto& b : bad) BOOST_TEST(text_of(ph::parse(b).what) == "invalid", b);
}

BOOST_AUTO_TEST_CASE(version_2_names_the_client_and_takes_only_its_block)
{
    const auto header = v2(0x21, 0x11, tcp4_block());
    const auto p = ph::parse(header + "GET / HTTP/1.1\r\n");
    BOOST_TEST(text_of(p.what) == "complete");
    BOOST_TEST(p.length == header.size());
    BOOST_TEST(p.address == "198.51.100.7");
    BOOST_TEST(p.port == 4242);

    // TLVs a balancer adds (ALPN "h2", a unique ID) are skipped with the block.
    const auto with_tlvs = v2(0x21, 0x11,
                              tcp4_block(std::string("\x01\x00\x02h2\x05\x00\x03"
                                                     "abc",
                                                     10)));
    const auto t = ph::parse(with_tlvs + "\x16\x03\x01");
    BOOST_TEST(text_of(t.what) == "complete");
    BOOST_TEST(t.length == with_tlvs.size());
    BOOST_TEST(t.address == "198.51.100.7");

    std::string six_block(36, '\0');
    six_block[0] = '\x20';
    six_block[1] = '\x01';
    six_block[2] = '\x0d';
    six_block[3] = '\xb8';
    six_block[15] = '\x01';
    six_block[32] = '\x00';
    six_block[33] = '\x50';
    const auto six = ph::parse(v2(0x21, 0x21, six_block));
    BOOST_TEST(text_of(six.what) == "complete");
    BOOST_TEST(six.address == "2001:db8::1");
    BOOST_TEST(six.port == 80);

    // LOCAL (a balancer's health check), UNSPEC and UNIX name no client.
    for (const auto& own : {v2(0x20, 0x00, ""), v2(0x20, 0x11, tcp4_block()), v2(0x21, 0x00, ""),
                            v2(0x21, 0x31, std::string(216, 'u'))}) {
        const auto o = ph::parse(own);
        BOOST_TEST(text_of(o.what) == "complete");
        BOOST_TEST(o.length == own.size());
        BOOST_TEST(o.address.empty());
    }
    for (std::size_t n = 1; n < header.size(); ++n)
        BOOST_TEST(text_of(ph::parse(header.substr(0, n)).what) == "need_more", n);
}

BOOST_AUTO_TEST_CASE(version_2_refuses_what_breaks_the_format)
{
    const std::vector<std::string> bad{
        v2(0x11, 0x11, tcp4_block()),                        // version 1 in a version 2 signature
        v2(0x22, 0x11, tcp4_block()),                        // command 2
        v2(0x21, 0x11, tcp4_block().substr(0, 11)),          // shorter than its addresses
        v2(0x21, 0x21, tcp4_block()),                        // TCP6 with a TCP4 block
        v2(0x21, 0x41, tcp4_block()),                        // family 4
        v2(0x21, 0x13, tcp4_block()),                        // transport 3
        v2(0x21, 0x11, tcp4_block(std::string(1000, 't'))),  // past 1024 bytes
    };
    for (const auto& b : bad) BOOST_TEST(text_of(ph::parse(b).what) == "invalid", b.size());
    // The length field alone decides: no need to wait for 64 KiB to refuse.
    BOOST_TEST(text_of(ph::parse(v2(0x21, 0x11, "").substr(0, 14) + "\xFF\xFF").what) == "invalid");
}

BOOST_AUTO_TEST_CASE(anything_else_is_absent_as_soon_as_it_differs)
{
    for (const std::string other : {"GET / HTTP/1.1\r\n", "POST /x", "PUT /x", "PATCH /x", "PROPFIND /",
                                    "PROXZ", "\x16\x03\x01\x02", "\r\nGET", "\r\n\r\n\x01"})
        BOOST_TEST(text_of(ph::parse(other).what) == "absent", other);
    for (const std::string start : {"", "P", "PRO", "PROXY", "\r", "\r\n\r\n\0"})
        BOOST_TEST(text_of(ph::parse(start).what) == "need_more", start.size());
}

BOOST_AUTO_TEST_SUITE_END()
