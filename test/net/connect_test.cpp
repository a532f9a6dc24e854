#include "net/connect.hpp"

#include "net/protojson.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

namespace connect = tether::net::connect;
namespace pj = tether::net::protojson;

BOOST_AUTO_TEST_SUITE(connect_suite)

BOOST_AUTO_TEST_CASE(status_for_each_code_matches_the_contract)
{
    using c = connect::code;
    const std::pair<c, unsigned> table[] = {
        {c::canceled, 499},           {c::unknown, 500},           {c::internal, 500},
        {c::data_loss, 500},          {c::invalid_argument, 400},  {c::failed_precondition, 400},
        {c::out_of_range, 400},       {c::deadline_exceeded, 504}, {c::not_found, 404},
        {c::already_exists, 409},     {c::aborted, 409},           {c::permission_denied, 403},
        {c::resource_exhausted, 429}, {c::unimplemented, 501},     {c::unavailable, 503},
        {c::unauthenticated, 401},
    };
    for (const auto& [code, status] : table) {
        BOOST_TEST(connect::http_status(code) == status, connect::to_string(code));
        BOOST_TEST((connect::parse_code(connect::to_string(code)) == code));
    }
}

BOOST_AUTO_TEST_CASE(body_first_then_status_fallback)
{
    const auto e = connect::decode_error(400, R"({"code":"permission_denied","message":"nope"})");
    BOOST_TEST((e.c == connect::code::permission_denied));
    BOOST_TEST(e.message == "nope");
    using c = connect::code;
    const std::pair<unsigned, c> fallback[] = {{400, c::internal},          {401, c::unauthenticated},
                                               {403, c::permission_denied}, {404, c::unimplemented},
                                               {429, c::unavailable},       {502, c::unavailable},
                                               {503, c::unavailable},       {504, c::unavailable},
                                               {500, c::unknown},           {418, c::unknown}};
    for (const auto& [status, code] : fallback) {
        BOOST_TEST((connect::decode_error(status, "").c == code), status);
        BOOST_TEST((connect::decode_error(status, "<html>").c == code), status);
        BOOST_TEST((connect::decode_error(status, R"({"code":"made_up"})").c == code), status);
    }
}

BOOST_AUTO_TEST_CASE(a_huge_server_message_is_cut_and_guessed_codes_are_marked)
{
    const std::string big(3 * 1024 * 1024, 'm');
    const auto e = connect::decode_error(500, R"({"code":"internal","message":")" + big + R"("})");
    BOOST_TEST(e.explicit_code);
    BOOST_TEST(e.message.size() < connect::max_error_message_bytes + 40);
    BOOST_TEST(e.message.find("3145728 bytes") != std::string::npos);
    const auto guessed = connect::decode_error(403, "<html>Forbidden</html>");
    BOOST_TEST(!guessed.explicit_code);
    BOOST_TEST((guessed.c == connect::code::permission_denied));
}

BOOST_AUTO_TEST_CASE(encode_error_round_trips)
{
    const auto body = connect::encode_error({connect::code::not_found, "no such \"node\""});
    const auto e = connect::decode_error(404, body);
    BOOST_TEST((e.c == connect::code::not_found));
    BOOST_TEST(e.message == "no such \"node\"");
}

BOOST_AUTO_TEST_CASE(int64_as_string_or_number)
{
    const auto o = boost::json::parse(R"({"a":"123","b":456,"c":"x","d":1.5,"e":null})").as_object();
    BOOST_TEST(*pj::get_int64(o, "a") == 123);
    BOOST_TEST(*pj::get_int64(o, "b") == 456);
    BOOST_TEST(*pj::get_int64(o, "missing") == 0);
    BOOST_TEST(*pj::get_int64(o, "e") == 0);
    BOOST_TEST(!pj::get_int64(o, "c"));
    BOOST_TEST(pj::get_int64(o, "c").error().path == "c");
    BOOST_TEST(!pj::get_int64(o, "d"));
}

BOOST_AUTO_TEST_CASE(timestamps)
{
    const auto t = pj::parse_timestamp("2026-11-22T10:00:00Z", "t").value();
    BOOST_TEST(pj::format_timestamp(t) == "2026-11-22T10:00:00Z");
    const auto f = pj::parse_timestamp("2026-11-22T10:00:00.250Z", "t").value();
    BOOST_TEST((f - t).count() == 250);
    BOOST_TEST(pj::format_timestamp(f) == "2026-11-22T10:00:00.250Z");
    const auto off = pj::parse_timestamp("2026-11-22T12:00:00+02:00", "t").value();
    BOOST_TEST((off == t));
    BOOST_TEST(pj::format_timestamp(pj::sys_time{}) == "1970-01-01T00:00:00Z");
    for (const char* bad :
         {"2026-11-22", "2026-11-22T10:00:00", "2026-13-01T00:00:00Z", "x", "2026-11-22T10:00:00Zjunk"})
        BOOST_TEST(!pj::parse_timestamp(bad, "t"), bad);
}

BOOST_AUTO_TEST_CASE(base64_padded_and_lenient)
{
    for (const std::string& raw : {std::string(""), std::string("f"), std::string("fo"), std::string("foo"),
                                   std::string("\x00\xff\x10", 3)}) {
        const auto enc = pj::base64_encode(raw);
        BOOST_TEST(enc.size() % 4 == 0u);
        BOOST_TEST(*pj::base64_decode(enc, "b") == raw);
    }
    BOOST_TEST(pj::base64_encode("fo") == "Zm8=");
    BOOST_TEST(*pj::base64_decode("Zm8", "b") == "fo");
    BOOST_TEST(!pj::base64_decode("Z", "b"));
    BOOST_TEST(!pj::base64_decode("Zm8*", "b"));
}

BOOST_AUTO_TEST_SUITE_END()
