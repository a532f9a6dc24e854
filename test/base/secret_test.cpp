#include "base/secret.hpp"

#include <boost/json/value_from.hpp>
#include <boost/test/unit_test.hpp>

#include <sstream>

using tether::secret;

BOOST_AUTO_TEST_SUITE(secret_suite)

BOOST_AUTO_TEST_CASE(formatting_never_shows_the_value)
{
    const secret s{"tok-123456"};
    std::ostringstream os;
    os << s;
    BOOST_TEST(os.str() == "[redacted]");
    BOOST_TEST(boost::json::value_from(s).as_string() == "[redacted]");
    BOOST_TEST(s.reveal() == "tok-123456");
}

BOOST_AUTO_TEST_CASE(move_leaves_the_source_empty)
{
    secret a{"abc"};
    secret b{std::move(a)};
    BOOST_TEST(a.empty());  // NOLINT(bugprone-use-after-move): the point of the test
    BOOST_TEST(b.reveal() == "abc");
    secret c;
    c = std::move(b);
    BOOST_TEST(b.empty());  // NOLINT(bugprone-use-after-move)
    BOOST_TEST(c.reveal() == "abc");
}

BOOST_AUTO_TEST_CASE(equality)
{
    BOOST_TEST((secret{"abc"} == secret{"abc"}));
    BOOST_TEST(!(secret{"abc"} == secret{"abd"}));
    BOOST_TEST(!(secret{"abc"} == secret{"abcd"}));
    BOOST_TEST(tether::constant_time_equal("", ""));
}

BOOST_AUTO_TEST_SUITE_END()
