#include "net/request_params.hpp"

#include <boost/test/unit_test.hpp>

using namespace tether::net;

BOOST_AUTO_TEST_SUITE(request_params_suite)

BOOST_AUTO_TEST_CASE(keys_are_names_split_at_plain_or_encoded_commas)
{
    BOOST_TEST(!parse_keys_param("/v1/config").keys);
    BOOST_TEST(!parse_keys_param("/v1/config?other=1").keys);
    const auto k = parse_keys_param("/v1/config?x=1&keys=a,b%2Cc%2cd.e_f-g");
    BOOST_TEST_REQUIRE(k.keys.has_value());
    BOOST_TEST(k.refusal.empty());
    BOOST_TEST((*k.keys == std::vector<std::string>{"a", "b", "c", "d.e_f-g"}));
}

BOOST_AUTO_TEST_CASE(keys_refuse_empty_long_many_odd_and_repeated)
{
    for (const std::string& target :
         {std::string("/?keys="), std::string("/?keys=a,,b"), std::string("/?keys=a,"),
          "/?keys=" + std::string(129, 'k'), std::string("/?keys=a%20b"), std::string("/?keys=a&keys=b"),
          std::string("/?keys=%2"), std::string("/?keys=\xff")})
        BOOST_TEST(!parse_keys_param(target).refusal.empty(), target);
    std::string many = "/?keys=k0";
    for (int i = 1; i < 65; ++i) many += ",k" + std::to_string(i);
    BOOST_TEST(!parse_keys_param(many).refusal.empty(), "65 keys");
    BOOST_TEST(parse_keys_param("/?keys=" + std::string(128, 'k')).refusal.empty());
}

BOOST_AUTO_TEST_CASE(if_none_match_takes_lists_weak_tags_and_star)
{
    BOOST_TEST(if_none_match("\"7\"", "\"7\""));
    BOOST_TEST(if_none_match(" \"1\" , W/\"7\"\t", "\"7\""));
    BOOST_TEST(if_none_match("*", "\"7\""));
    BOOST_TEST(!if_none_match("\"70\"", "\"7\""));
    BOOST_TEST(!if_none_match("7", "\"7\""));
    BOOST_TEST(!if_none_match("", "\"7\""));
    BOOST_TEST(!if_none_match(",,,", "\"7\""));
}

BOOST_AUTO_TEST_CASE(decimals_are_whole)
{
    BOOST_TEST(parse_decimal("1796395426634").value_or(-1) == 1796395426634);
    BOOST_TEST(parse_decimal("0").value_or(-1) == 0);
    for (const char* bad : {"", " 1", "1 ", "1x", "0x10", "+1", "99999999999999999999"})
        BOOST_TEST(!parse_decimal(bad), bad);
}

BOOST_AUTO_TEST_SUITE_END()
