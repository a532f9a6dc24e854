#include "base/utf8.hpp"

#include <boost/json/parse.hpp>
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

BOOST_AUTO_TEST_CASE(json_is_printed_with_its_control_characters_escaped_and_its_value_kept)
{
    // What a serializer leaves raw (DEL, C1) becomes \u escapes; the rest,
    // UTF-8 and escapes already there included, stays as it is.
    const std::string in = "{\"a\":\"x\x7fy\xc2\x9b[2Jz\",\"caf\xc3\xa9\":\"\\u001b\\\\\xc2\xa0\"}";
    const auto out = tether::terminal_safe_json(in);
    BOOST_TEST(out == "{\"a\":\"x\\u007fy\\u009b[2Jz\",\"caf\xc3\xa9\":\"\\u001b\\\\\xc2\xa0\"}");
    BOOST_TEST(!tether::has_control_characters(out));
    const auto value = boost::json::parse(out);
    const auto* parsed = value.as_object().at("a").if_string();
    BOOST_TEST_REQUIRE(parsed);
    BOOST_TEST(std::string(*parsed) == "x\x7fy\xc2\x9b[2Jz");
}

BOOST_AUTO_TEST_SUITE_END()
