// The broker's request rewriting and response scrubbing rules.
#include "auth/broker_rewrite.hpp"

#include <boost/test/unit_test.hpp>

namespace http = tether::net::http;
using tether::auth::rewrite_request;

namespace {

const std::string sentinel = "tether-sentinel-0123abcd";
const std::string real = "real/secret+key=";

tether::net::url upstream()
{
    return *tether::net::parse_url("https://api.example.com/base/");
}

http::request get(std::string target, std::vector<std::pair<std::string, std::string>> headers = {})
{
    http::request r;
    r.target = std::move(target);
    for (auto& [n, v] : headers) r.headers.add(n, v);
    return r;
}

std::string refusal(const http::request& r)
{
    auto out = rewrite_request(r, sentinel, real, upstream());
    return out ? std::string("(forwarded)") : out.error().reason;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(broker_rewrite)

BOOST_AUTO_TEST_CASE(the_sentinel_becomes_the_credential_in_query_and_header)
{
    auto r = rewrite_request(
        get("/v1/x?a=1&app_key=" + sentinel + "&b=2", {{"Authorization", "Bearer " + sentinel},
                                                       {"Host", "tether-broker.invalid"},
                                                       {"Connection", "keep-alive"},
                                                       {"Expect", "100-continue"},
                                                       {"Accept", "*/*"}}),
        sentinel, real, upstream());
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->request.target == "/base/v1/x?a=1&app_key=real%2Fsecret%2Bkey%3D&b=2");
    BOOST_TEST(*r->request.headers.get("Authorization") == "Bearer " + real);
    BOOST_TEST(*r->request.headers.get("Host") == "api.example.com");
    BOOST_TEST(!r->request.headers.get("Connection"));
    BOOST_TEST(!r->request.headers.get("Expect"));  // the body is all there: no interim answer
    BOOST_TEST(*r->request.headers.get("Accept") == "*/*");
    BOOST_TEST(r->injected_query);
    BOOST_TEST(r->injected_header);
}

BOOST_AUTO_TEST_CASE(other_values_pass_untouched)
{
    auto r = rewrite_request(
        get("http://tether-broker.invalid/v1/x?app_key=mine", {{"Authorization", "Bearer theirs"}}), sentinel,
        real, upstream());
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->request.target == "/base/v1/x?app_key=mine");
    BOOST_TEST(*r->request.headers.get("Authorization") == "Bearer theirs");
    BOOST_TEST(!r->injected_query);
    BOOST_TEST(!r->injected_header);
    auto bare = rewrite_request(get("/"), sentinel, real, upstream());
    BOOST_TEST(bare->request.target == "/base/");
}

BOOST_AUTO_TEST_CASE(the_query_keeps_its_shape_byte_for_byte)
{
    const auto target = [](const std::string& t) {
        auto r = rewrite_request(get(t), sentinel, real, upstream());
        return r ? r->request.target : "(refused) " + r.error().reason;
    };
    BOOST_TEST(target("/x?") == "/base/x?");
    BOOST_TEST(target("/x?&") == "/base/x?&");
    BOOST_TEST(target("/x?a&&b=&=c") == "/base/x?a&&b=&=c");
    BOOST_TEST(target("/?app_key=" + sentinel + "&") == "/base/?app_key=real%2Fsecret%2Bkey%3D&");
    BOOST_TEST(target("?q=1").starts_with("(refused)"));
    // Names that only look close to app_key are someone else's parameters.
    BOOST_TEST(target("/x?app_keys=1&app=2&app%5F=3&APP_KEYS=4") ==
               "/base/x?app_keys=1&app=2&app%5F=3&APP_KEYS=4");
    BOOST_TEST(target("/x?App_Key=1").starts_with("(refused)"));
}

BOOST_AUTO_TEST_CASE(ambiguous_requests_are_refused_whole)
{
    BOOST_TEST(refusal(get("/x?app_key=" + sentinel + "&app_key=" + sentinel)) ==
               "more than one app_key parameter");
    BOOST_TEST(refusal(get("/x?app_key=a&app_key=" + sentinel)) == "more than one app_key parameter");
    BOOST_TEST(refusal(get("/x?app%5Fkey=" + sentinel)).find("encoded") != std::string::npos);
    BOOST_TEST(refusal(get("/x?APP_KEY=" + sentinel)).find("encoded") != std::string::npos);
    BOOST_TEST(refusal(get("/x?app%5fkey=zzz")).find("encoded") != std::string::npos);
    BOOST_TEST(refusal(get("/x?app_key=%74" + sentinel.substr(1))) ==
               "a percent-encoded sentinel is refused");
    BOOST_TEST(refusal(get("/x", {{"Authorization", "Bearer %74" + sentinel.substr(1)}})) ==
               "a percent-encoded sentinel is refused");
    BOOST_TEST(refusal(get("/x", {{"Authorization", "Bearer " + sentinel}, {"Authorization", "Bearer x"}})) ==
               "more than one Authorization field");
    BOOST_TEST(refusal(get("/x", {{"Transfer-Encoding", "gzip, chunked"}})) ==
               "only Transfer-Encoding: chunked is accepted");
    BOOST_TEST(refusal(get("/x", {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})) ==
               "more than one Transfer-Encoding field");
    BOOST_TEST(refusal(get("/x", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}})) ==
               "Transfer-Encoding and Content-Length together");
    BOOST_TEST(
        refusal(get("http://evil.example/x?app_key=" + sentinel)).starts_with("request target must be"));
    BOOST_TEST(
        refusal(get("http://tether-broker.invalid.evil.example/x")).starts_with("request target must be"));
    BOOST_TEST(refusal(get("*")).starts_with("request target must be"));
    BOOST_TEST(refusal(get("/x", {{"Transfer-Encoding", "chunked"}})) == "(forwarded)");
}

BOOST_AUTO_TEST_CASE(responses_never_carry_the_credential_back)
{
    http::response res;
    res.status = 302;
    res.headers.add("Location", "https://api.example.com/base/next?app_key=real%2Fsecret%2Bkey%3D");
    res.headers.add("X-Echo", "token " + real);
    res.headers.add("Transfer-Encoding", "chunked");
    res.body = "you sent " + real + " and real%2Fsecret%2Bkey%3D";
    BOOST_TEST(tether::auth::scrub_response(res, sentinel, real, upstream()));
    BOOST_TEST(*res.headers.get("Location") == "http://tether-broker.invalid/next?app_key=" + sentinel);
    BOOST_TEST(*res.headers.get("X-Echo") == "token " + sentinel);
    BOOST_TEST(!res.headers.get("Transfer-Encoding"));
    BOOST_TEST(res.body == "you sent " + sentinel + " and " + sentinel);
    std::vector<std::string> order;
    for (const auto& f : res.headers) order.push_back(f.name);
    BOOST_TEST((order == std::vector<std::string>{"Location", "X-Echo"}));
}

BOOST_AUTO_TEST_CASE(a_body_in_pieces_is_scrubbed_wherever_the_pieces_split)
{
    const std::string encoded = "real%2Fsecret%2Bkey%3D";
    const std::string body = "<" + real + "|" + encoded + "|" + real + real + ">";
    const std::string want = "<" + sentinel + "|" + sentinel + "|" + sentinel + sentinel + ">";
    // Every pair of cut points: an occurrence split in two or three pieces.
    for (std::size_t a = 0; a <= body.size(); ++a) {
        for (std::size_t b = a; b <= body.size(); b += 3) {
            tether::auth::body_scrubber sc(sentinel, real);
            std::string out;
            for (const auto& piece : {body.substr(0, a), body.substr(a, b - a), body.substr(b)}) {
                auto safe = sc.feed(piece);
                BOOST_TEST_REQUIRE(safe.has_value());
                out += *safe;
            }
            out += sc.finish();
            BOOST_TEST_REQUIRE(out == want, "cut at " << a << " and " << b);
        }
    }
    // What could still be the start of the credential waits for the next
    // piece; anything else passes at once (an event stream's line must not
    // wait for the next event).
    tether::auth::body_scrubber sc(sentinel, real);
    BOOST_TEST(*sc.feed("data: 1\n\n") == "data: 1\n\n");
    BOOST_TEST(*sc.feed("x real/") == "x ");
    BOOST_TEST(*sc.feed("secret+key=!re") == sentinel + "!");
    BOOST_TEST(*sc.feed("al%2") == "");
    BOOST_TEST(*sc.feed("Fsecret%2Bkey%3D.") == sentinel + ".");
    BOOST_TEST(*sc.feed("rea") == "");
    BOOST_TEST(sc.finish() == "rea");
}

BOOST_AUTO_TEST_CASE(a_body_that_cannot_be_made_safe_is_refused)
{
    // Replacing "fX" with a sentinel ending in "f" makes a new "fX": the
    // broker must refuse rather than pass the credential on.
    tether::auth::body_scrubber sc("sentinel-f", "fX");
    BOOST_TEST(!sc.feed("..fXX..").has_value());
    http::response res;
    res.body = "..fXX..";
    BOOST_TEST(!tether::auth::scrub_response(res, "sentinel-f", "fX", upstream()));
    // Across the boundary with what was already handed out, too: "xa"
    // went out, then "ab"+"c" became "bcZ", which makes "abc" with the "a".
    tether::auth::body_scrubber split("bcZ", "abc");
    BOOST_TEST(*split.feed("xaab") == "xa");
    BOOST_TEST(!split.feed("c").has_value());
}

BOOST_AUTO_TEST_CASE(control_datagrams)
{
    using tether::auth::streams_requested;
    using namespace std::string_literals;
    BOOST_TEST(streams_requested("\x01", false, false) == 1u);
    BOOST_TEST(streams_requested("", false, false) == 0u);
    BOOST_TEST(streams_requested("\x03", false, false) == 0u);
    BOOST_TEST(streams_requested("\x01\x01"s, false, false) == 0u);
    BOOST_TEST(streams_requested("\x01", true, false) == 0u);
    BOOST_TEST(streams_requested("\x01", false, true) == 0u);
    // Several at once: 0x02 N, 1 <= N <= 16, exactly two bytes.
    BOOST_TEST(streams_requested("\x02", false, false) == 0u);
    BOOST_TEST(streams_requested("\x02\x00"s, false, false) == 0u);
    BOOST_TEST(streams_requested("\x02\x01"s, false, false) == 1u);
    BOOST_TEST(streams_requested("\x02\x10"s, false, false) == 16u);
    BOOST_TEST(streams_requested("\x02\x11"s, false, false) == 0u);
    BOOST_TEST(streams_requested("\x02\xff"s, false, false) == 0u);
    BOOST_TEST(streams_requested("\x02\x04\x00"s, false, false) == 0u);
    BOOST_TEST(streams_requested("\x02\x04"s, true, false) == 0u);
    BOOST_TEST(streams_requested("\x02\x04"s, false, true) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
