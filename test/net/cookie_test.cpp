#include "net/cookie.hpp"

#include <boost/test/unit_test.hpp>

using tether::net::http::cookie_value;
using tether::net::http::fields;

namespace {

fields cookies(std::initializer_list<std::string_view> values)
{
    fields f;
    for (const auto v : values) f.add("Cookie", v);
    return f;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cookie_suite)

BOOST_AUTO_TEST_CASE(finds_the_named_pair_among_others_and_across_fields)
{
    BOOST_TEST(cookie_value(cookies({"a=1; c=xyz; b=2"}), "c", 64).value_or("-") == "xyz");
    BOOST_TEST(cookie_value(cookies({"a=1", "c=xyz"}), "c", 64).value_or("-") == "xyz");
    BOOST_TEST(cookie_value(cookies({"c=a=b"}), "c", 64).value_or("-") == "a=b");
    fields lower;
    lower.add("cookie", "c=v");
    BOOST_TEST(cookie_value(lower, "c", 64).value_or("-") == "v");
}

BOOST_AUTO_TEST_CASE(refuses_absent_prefixed_empty_oversized_and_doubled)
{
    BOOST_TEST(!cookie_value(cookies({}), "c", 64));
    BOOST_TEST(!cookie_value(cookies({"cc=1; xc=2; c"}), "c", 64));
    BOOST_TEST(!cookie_value(cookies({"c="}), "c", 64));
    BOOST_TEST(!cookie_value(cookies({"c=" + std::string(65, 'x')}), "c", 64));
    BOOST_TEST(cookie_value(cookies({"c=" + std::string(64, 'x')}), "c", 64).has_value());
    // Planted by a sibling site next to the real one: trust neither.
    BOOST_TEST(!cookie_value(cookies({"c=1; c=2"}), "c", 64));
    BOOST_TEST(!cookie_value(cookies({"c=1", "c=1"}), "c", 64));
    fields other;
    other.add("Set-Cookie", "c=1");
    BOOST_TEST(!cookie_value(other, "c", 64));
}

BOOST_AUTO_TEST_SUITE_END()
