#include "net/server_set.hpp"

#include <boost/test/unit_test.hpp>

#include <set>

namespace net = tether::net;

namespace {
net::url must(std::string_view text)
{
    auto r = net::parse_url(text);
    BOOST_TEST_REQUIRE(r.has_value(), text);
    return *r;
}

std::vector<net::url> three()
{
    return {must("https://a.example"), must("https://b.example"), must("https://c.example")};
}

std::string hosts(const std::vector<net::url>& v)
{
    std::string out;
    for (const auto& u : v) out += u.host.substr(0, 1);
    return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(server_set_suite)

BOOST_AUTO_TEST_CASE(one_url_never_moves)
{
    const net::server_set s(must("https://only.example"));
    s.failed(s.current());
    BOOST_TEST(s.current().host == "only.example");
    BOOST_TEST(s.size() == 1u);
}

BOOST_AUTO_TEST_CASE(the_shuffle_follows_the_randomness_and_keeps_every_url)
{
    // rand() = 0.0 always: each step swaps with index 0.
    const net::server_set low(three(), [] { return 0.0; });
    // rand() close to 1: every element stays where it is.
    const net::server_set high(three(), [] { return 0.999; });
    BOOST_TEST(hosts(high.in_order()) == "abc");
    BOOST_TEST(hosts(low.in_order()) != "abc");
    std::set<std::string> seen;
    for (const auto& u : low.in_order()) seen.insert(u.host);
    BOOST_TEST(seen.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_failure_moves_on_once_and_wraps_around)
{
    const net::server_set s(three(), [] { return 0.999; });
    const auto first = s.current();
    const net::server_set copy = s;  // copies share the position
    s.failed(first);
    BOOST_TEST(copy.current().host == "b.example");
    // A second report of the same failure (another call that was in flight
    // to the same replica) does not skip the next one.
    s.failed(first);
    BOOST_TEST(s.current().host == "b.example");
    BOOST_TEST(hosts(s.in_order()) == "bca");
    s.failed(s.current());
    s.failed(s.current());
    BOOST_TEST(s.current().host == "a.example");
}

BOOST_AUTO_TEST_CASE(server_lists_split_on_commas_and_trim)
{
    BOOST_TEST(net::split_server_list("https://a, https://b ,,https://c,").size() == 3u);
    BOOST_TEST(net::split_server_list("https://a, https://b ,,https://c,")[1] == "https://b");
    BOOST_TEST(net::split_server_list("").empty());
    BOOST_TEST(net::split_server_list(" , ").empty());
    BOOST_TEST(net::split_server_list("https://one")[0] == "https://one");
}

BOOST_AUTO_TEST_SUITE_END()
