// The runtime config document: every key's validation, paths in errors,
// unknown keys kept, the state-directory file round trip.
#include "settings/runtime_config.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace json = boost::json;
using tether::settings::decode_config;

namespace {

std::string error_of(std::string_view doc)
{
    auto r = decode_config(json::parse(doc), 7);
    return r ? std::string("(accepted)") : r.error().message();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(runtime_config)

BOOST_AUTO_TEST_CASE(a_full_document_decodes_and_keeps_unknown_keys)
{
    const auto r = decode_config(json::parse(R"({
        "heartbeatIntervalSeconds": 12,
        "blockedIps": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"],
        "allowedEgressHosts": ["API.example.com", "*.internal.example"],
        "rateLimits": [{"route": "/v1/x", "maxRequests": 100, "windowSeconds": 60}],
        "flags": {"beta": true, "old": false},
        "fromTheFuture": {"x": [1, 2]}
    })"),
                                 42);
    BOOST_TEST_REQUIRE(r.has_value(), r.error().message());
    BOOST_TEST(r->updated_at == 42);
    BOOST_TEST(r->heartbeat_interval->count() == 12);
    BOOST_TEST_REQUIRE(r->blocked_ips.size() == 4u);
    BOOST_TEST(r->blocked_ips[0].to_string() == "10.0.0.0/8");
    BOOST_TEST(r->blocked_ips[1].to_string() == "192.0.2.7");
    BOOST_TEST(r->blocked_ips[2].to_string() == "2001:db8::/32");
    BOOST_TEST(r->blocked_ips[3].v6);
    BOOST_TEST(r->egress_host_allowed("api.EXAMPLE.com"));
    BOOST_TEST(r->egress_host_allowed("a.b.internal.example"));
    BOOST_TEST(!r->egress_host_allowed("internal.example"));  // wildcard: subdomains only
    BOOST_TEST(!r->egress_host_allowed("evil-api.example.com"));
    BOOST_TEST(!r->egress_host_allowed("xinternal.example"));
    BOOST_TEST(r->rate_limits.size() == 1u);
    BOOST_TEST(r->rate_limits[0].max_requests == 100);
    BOOST_TEST(r->flag("beta"));
    BOOST_TEST(!r->flag("old", true));
    BOOST_TEST(r->flag("absent", true));
    BOOST_TEST(r->document.contains("fromTheFuture"));
    const auto addr = tether::settings::ip_range::parse("10.1.2.3", "x");
    BOOST_TEST(r->blocked_ips[0].contains(*addr));
    BOOST_TEST(!r->blocked_ips[1].contains(*addr));
}

BOOST_AUTO_TEST_CASE(the_interval_is_clamped_and_integral_doubles_count)
{
    BOOST_TEST(
        decode_config(json::parse(R"({"heartbeatIntervalSeconds": 1})"), 1)->heartbeat_interval->count() ==
        5);
    BOOST_TEST(decode_config(json::parse(R"({"heartbeatIntervalSeconds": 99999})"), 1)
                   ->heartbeat_interval->count() == 3600);
    BOOST_TEST(
        decode_config(json::parse(R"({"heartbeatIntervalSeconds": 30.0})"), 1)->heartbeat_interval->count() ==
        30);
    BOOST_TEST(!decode_config(json::parse(R"({"heartbeatIntervalSeconds": null})"), 1)->heartbeat_interval);
    BOOST_TEST(decode_config(json::parse("{}"), 1).has_value());
}

BOOST_AUTO_TEST_CASE(the_first_bad_path_is_named)
{
    BOOST_TEST(error_of("[]") == "config: must be a JSON object");
    BOOST_TEST(error_of(R"({"heartbeatIntervalSeconds": "30"})") ==
               "heartbeatIntervalSeconds: must be an integer");
    BOOST_TEST(error_of(R"({"heartbeatIntervalSeconds": 2.5})") ==
               "heartbeatIntervalSeconds: must be an integer");
    BOOST_TEST(error_of(R"({"blockedIps": "10.0.0.1"})") == "blockedIps: must be an array");
    BOOST_TEST(error_of(R"({"blockedIps": ["10.0.0.1", 5]})") == "blockedIps[1]: must be a string");
    BOOST_TEST(error_of(R"({"blockedIps": ["10.0.0.256"]})") ==
               "blockedIps[0]: not an IP address or CIDR range");
    BOOST_TEST(error_of(R"({"blockedIps": ["10.0.0.0/33"]})") ==
               "blockedIps[0]: prefix length must be <= 32");
    BOOST_TEST(error_of(R"({"blockedIps": ["::/129"]})") == "blockedIps[0]: prefix length must be <= 128");
    BOOST_TEST(error_of(R"({"blockedIps": ["10.0.0.0/"]})") ==
               "blockedIps[0]: prefix length must be a number");
    BOOST_TEST(error_of(R"({"blockedIps": ["10.0.0.0/+8"]})") ==
               "blockedIps[0]: prefix length must be a number");
    BOOST_TEST(error_of(R"({"blockedIps": ["10.0.0.1/8"]})") ==
               "blockedIps[0]: has host bits set after the prefix");
    BOOST_TEST(error_of(R"({"blockedIps": ["example.com"]})") ==
               "blockedIps[0]: not an IP address or CIDR range");
    BOOST_TEST(error_of(R"({"allowedEgressHosts": ["https://a.example"]})")
                   .starts_with("allowedEgressHosts[0]: must be a host name"));
    BOOST_TEST(
        error_of(R"({"allowedEgressHosts": ["a.example:443"]})").starts_with("allowedEgressHosts[0]:"));
    BOOST_TEST(error_of(R"({"allowedEgressHosts": ["-a.example"]})").starts_with("allowedEgressHosts[0]:"));
    BOOST_TEST(error_of(R"({"allowedEgressHosts": ["a..example"]})").starts_with("allowedEgressHosts[0]:"));
    BOOST_TEST(error_of(R"({"allowedEgressHosts": [""]})").starts_with("allowedEgressHosts[0]:"));
    BOOST_TEST(error_of(R"({"allowedEgressHosts": ["*"]})").starts_with("allowedEgressHosts[0]:"));
    BOOST_TEST(error_of(R"({"rateLimits": [
        {"route": "/a", "maxRequests": 1, "windowSeconds": 1},
        {"route": "/b", "maxRequests": 1, "windowSeconds": 1},
        {"route": "/c", "maxRequests": 1, "windowSeconds": 0}]})") ==
               "rateLimits[2].windowSeconds: must be > 0");
    BOOST_TEST(error_of(R"({"rateLimits": [{"route": "/a", "windowSeconds": 1}]})") ==
               "rateLimits[0].maxRequests: required");
    BOOST_TEST(error_of(R"({"rateLimits": [{"route": "", "maxRequests": 1, "windowSeconds": 1}]})") ==
               "rateLimits[0].route: must be a non-empty string");
    BOOST_TEST(error_of(R"({"rateLimits": [5]})") == "rateLimits[0]: must be an object");
    BOOST_TEST(error_of(R"({"rateLimits": [{"route": "/a", "maxRequests": -1, "windowSeconds": 1}]})") ==
               "rateLimits[0].maxRequests: must be > 0");
    BOOST_TEST(error_of(R"({"flags": {"a": true, "b": "yes"}})") == "flags.b: must be true or false");
    BOOST_TEST(error_of(R"({"flags": [true]})") == "flags: must be an object of booleans");
    // Found by the fuzzer: 1e999 reads as infinity, which the state file could not hold.
    BOOST_TEST(error_of(R"({"future": {"limits": [1, 1e999]}})") == "future.limits[1]: number out of range");
}

namespace {

/// An object `levels` deep: {"k":{"k":...{"flags":{}}...}} counting every object.
std::string nested(std::size_t levels)
{
    std::string doc = "{}";
    for (std::size_t i = 1; i < levels; ++i) doc = R"({"k":)" + doc + "}";
    return doc;
}

json::value parse_deep(const std::string& text)
{
    json::parse_options o;
    o.max_depth = 64;
    return json::parse(text, {}, o);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_deepest_accepted_document_survives_its_own_file)
{
    using tether::settings::max_document_depth;
    const auto deepest = decode_config(parse_deep(nested(max_document_depth)), 9);
    BOOST_TEST_REQUIRE(deepest.has_value(), deepest.error().message());
    const auto back = tether::settings::decode_config_file(tether::settings::encode_config_file(*deepest));
    BOOST_TEST_REQUIRE(back.has_value(), back.error().message());
    BOOST_TEST(back->document == deepest->document);
    const auto deeper = decode_config(parse_deep(nested(max_document_depth + 1)), 9);
    BOOST_TEST_REQUIRE(!deeper.has_value());
    BOOST_TEST(deeper.error().message().find("nests deeper than 32") != std::string::npos,
               deeper.error().message());
    // Arrays count as levels too, the way the parser counts them.
    std::string arrays =
        "{\"a\":" + std::string(max_document_depth - 1, '[') + std::string(max_document_depth - 1, ']') + "}";
    BOOST_TEST(decode_config(parse_deep(arrays), 9).has_value());
    arrays = "{\"a\":" + std::string(max_document_depth, '[') + std::string(max_document_depth, ']') + "}";
    BOOST_TEST(!decode_config(parse_deep(arrays), 9).has_value());
    // The fuzz finding: 32 levels of unknown keys, accepted, then unreadable from the file.
    std::ifstream in(std::filesystem::path(TETHER_SOURCE_DIR) /
                     "fuzz/corpus/config_document/depth32-roundtrip.json");
    std::stringstream finding;
    finding << in.rdbuf();
    const auto cfg = decode_config(parse_deep(finding.str()), 9);
    BOOST_TEST_REQUIRE(cfg.has_value(), cfg.error().message());
    BOOST_TEST(tether::settings::decode_config_file(tether::settings::encode_config_file(*cfg)).has_value());
}

BOOST_AUTO_TEST_CASE(the_state_file_round_trips_and_refuses_garbage)
{
    auto cfg = decode_config(json::parse(R"({"flags": {"a": true}, "extra": 1})"), 1234567890123);
    BOOST_TEST_REQUIRE(cfg.has_value());
    const auto text = tether::settings::encode_config_file(*cfg);
    auto back = tether::settings::decode_config_file(text);
    BOOST_TEST_REQUIRE(back.has_value(), back.error().message());
    BOOST_TEST(back->updated_at == 1234567890123);
    BOOST_TEST(back->flag("a"));
    BOOST_TEST(back->document == cfg->document);
    BOOST_TEST(!tether::settings::decode_config_file("not json").has_value());
    BOOST_TEST(!tether::settings::decode_config_file(R"({"configUpdatedAt": "1"})").has_value());
    BOOST_TEST(!tether::settings::decode_config_file(R"({"configUpdatedAt": "1", "config": {"flags": 1}})")
                    .has_value());
}

BOOST_AUTO_TEST_SUITE_END()
