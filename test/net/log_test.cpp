#include "net/log.hpp"

#include "net/secret.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value_from.hpp>
#include <boost/test/unit_test.hpp>

#include <vector>

namespace tlog = tether::log;

BOOST_AUTO_TEST_SUITE(log_suite)

BOOST_AUTO_TEST_CASE(json_lines_carry_event_level_and_fields)
{
    const auto line = tlog::render(tlog::format::json, "2026-11-22T10:00:00.000Z", tlog::level::warn,
                                   "hb.failed", {{"reason", "timeout"}, {"attempt", 3}});
    const auto v = boost::json::parse(line).as_object();
    BOOST_TEST(v.at("event").as_string() == "hb.failed");
    BOOST_TEST(v.at("level").as_string() == "warn");
    BOOST_TEST(v.at("ts").as_string() == "2026-11-22T10:00:00.000Z");
    BOOST_TEST(v.at("reason").as_string() == "timeout");
    BOOST_TEST(v.at("attempt").as_int64() == 3);
}

BOOST_AUTO_TEST_CASE(text_quotes_values_that_could_forge_fields)
{
    const auto line = tlog::render(tlog::format::text, "T", tlog::level::info, "x",
                                   {{"plain", "abc"}, {"spaced", "a b=c\nlevel=error"}});
    BOOST_TEST(line == R"(T info  x plain=abc spaced="a b=c\nlevel=error")");
}

BOOST_AUTO_TEST_CASE(secrets_are_redacted_in_both_formats)
{
    const tether::secret token{"s3cr3t-token"};
    std::vector<std::string> lines;
    for (const auto fmt : {tlog::format::text, tlog::format::json}) {
        tlog::logger lg(tlog::level::debug, fmt, [&](std::string_view l) { lines.emplace_back(l); });
        lg.info("session.refreshed", {{"token", boost::json::value_from(token)}});
    }
    BOOST_TEST_REQUIRE(lines.size() == 2u);
    for (const auto& l : lines) {
        BOOST_TEST(l.find("s3cr3t") == std::string::npos, l);
        BOOST_TEST(l.find("[redacted]") != std::string::npos, l);
    }
}

BOOST_AUTO_TEST_CASE(level_filter)
{
    int n = 0;
    tlog::logger lg(tlog::level::warn, tlog::format::json, [&](std::string_view) { ++n; });
    lg.debug("a");
    lg.info("b");
    lg.warn("c");
    lg.error("d");
    BOOST_TEST(n == 2);
}

BOOST_AUTO_TEST_CASE(parse_names)
{
    BOOST_TEST((tlog::parse_level("warning") == tlog::level::warn));
    BOOST_TEST(!tlog::parse_level("loud").has_value());
    BOOST_TEST((tlog::parse_format("json") == tlog::format::json));
    BOOST_TEST(!tlog::parse_format("xml").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
