#include "net/host_port.hpp"

#include <boost/test/unit_test.hpp>

using tether::net::address_group;
using tether::net::is_loopback_host;
using tether::net::parse_host_port;

BOOST_AUTO_TEST_SUITE(host_port_suite)

BOOST_AUTO_TEST_CASE(parses_v4_v6_and_names)
{
    auto a = parse_host_port("127.0.0.1:8443");
    BOOST_TEST_REQUIRE(a.has_value());
    BOOST_TEST(a->host == "127.0.0.1");
    BOOST_TEST(a->port == 8443);
    auto b = parse_host_port("[::1]:0");
    BOOST_TEST_REQUIRE(b.has_value());
    BOOST_TEST(b->host == "::1");
    BOOST_TEST(b->port == 0);
    auto c = parse_host_port("localhost:9464");
    BOOST_TEST_REQUIRE(c.has_value());
    BOOST_TEST(c->host == "localhost");
}

BOOST_AUTO_TEST_CASE(rejects_malformed_with_a_reason)
{
    for (const char* bad :
         {"127.0.0.1", "::1:80", "[::1]80", "[::1", ":80", "host:", "host:65536", "host:-1", "host:80x",
          "[[]:4", "[localhost]:80", "[]:80", "ho st:80", "a/b:80", "a@b:80", "a]:80"}) {
        BOOST_TEST_CONTEXT(bad)
        {
            const auto r = parse_host_port(bad);
            BOOST_TEST(!r.has_value());
            if (!r) BOOST_TEST(!r.error().empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(loopback_rule)
{
    for (const char* yes : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "localhost.",
                            "::ffff:127.0.0.1"})
        BOOST_TEST(is_loopback_host(yes), yes);
    for (const char* no : {"128.0.0.1", "10.0.0.1", "0.0.0.0", "::", "example.com", "localhost.example.com",
                           "127.0.0.1.nip.io", "::ffff:10.0.0.1", ""})
        BOOST_TEST(!is_loopback_host(no), no);
}

BOOST_AUTO_TEST_CASE(an_ipv6_client_counts_with_its_64)
{
    // One subscriber holds a whole /64: counted by address, one host could
    // take 2^64 budgets of connections, streams and failed logins.
    BOOST_TEST(address_group("2001:db8:1:2::1") == "2001:db8:1:2::/64");
    BOOST_TEST(address_group("2001:DB8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64");
    BOOST_TEST(address_group("2001:db8:1:3::1") == "2001:db8:1:3::/64");
    BOOST_TEST(address_group("::1") == "::/64");
    BOOST_TEST(address_group("fe80::1%eth0") == "fe80::1%eth0", "not an address inet_pton takes: as given");
    BOOST_TEST(address_group("198.51.100.7") == "198.51.100.7");
    BOOST_TEST(address_group("::ffff:198.51.100.7") == "198.51.100.7", "the IPv4 client it is");
    BOOST_TEST(address_group("local") == "local");
}

BOOST_AUTO_TEST_SUITE_END()
