#include "base/utf8.hpp"

#include <boost/test/unit_test.hpp>

BOOST_AUTO_TEST_SUITE(text_suite)

BOOST_AUTO_TEST_CASE(control_characters_are_found_and_shown_escaped)
{
    BOOST_TEST(!tether::has_control_characters("caf\xc3\xa9 node-1"));
    BOOST_TEST(tether::has_control_characters("a\nb"));
    BOOST_TEST(tether::has_control_characters("\x1b[2J"));
    BOOST_TEST(tether::has_control_characters("del\x7f"));
    BOOST_TEST(tether::has_control_characters("c1\xc2\x9b"));
    BOOST_TEST(tether::terminal_safe("ok caf\xc3\xa9") == "ok caf\xc3\xa9");
    BOOST_TEST(tether::terminal_safe("a\nb\x1b[31m") == "a\\x0ab\\x1b[31m");
    BOOST_TEST(tether::terminal_safe("c1\xc2\x9b!") == "c1\\xc2\\x9b!");
    // A literal backslash cannot pose as an escape.
    BOOST_TEST(tether::terminal_safe("\\x0a") == "\\x5cx0a");
}

BOOST_AUTO_TEST_SUITE_END()
