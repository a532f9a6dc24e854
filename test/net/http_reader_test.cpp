#include "net/http_reader.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace http = tether::net::http;
using http::read_status;
using kind = http::read_failure::kind;

namespace {

http::read_limits limits(std::size_t header = 16 * 1024, std::size_t body = 64 * 1024)
{
    return {header, body};
}

/// Feeds `bytes` in pieces of `step` (0: all at once).
read_status feed(http::request_reader& r, const std::string& bytes, std::size_t step = 0)
{
    if (step == 0) return r.feed(bytes);
    auto st = read_status::need_more;
    for (std::size_t at = 0; at < bytes.size() && st == read_status::need_more; at += step)
        st = r.feed(std::string_view(bytes).substr(at, step));
    return st;
}

const std::string chunked_head = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

}  // namespace

BOOST_AUTO_TEST_SUITE(http_reader)

BOOST_AUTO_TEST_CASE(requests_in_any_split_and_pipelined)
{
    const std::string two =
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    for (std::size_t step : {1u, 2u, 7u, 64u, 1000u}) {
        http::request_reader r(limits());
        std::vector<http::received_request> got;
        for (std::size_t at = 0; at < two.size(); at += step) {
            auto st = r.feed(std::string_view(two).substr(at, step));
            while (st == read_status::done) {
                got.push_back(r.take());
                st = r.feed({});
            }
            BOOST_TEST_REQUIRE((st != read_status::failed), step);
        }
        BOOST_TEST_REQUIRE(got.size() == 2u, step);
        BOOST_TEST(got[0].message.method == "POST");
        BOOST_TEST(got[0].message.target == "/a");
        BOOST_TEST(got[0].message.body == "abc");
        BOOST_TEST(*got[0].message.headers.get("Content-Length") == "3");
        BOOST_TEST(got[0].keep_alive);
        BOOST_TEST(got[1].message.target == "/b");
        BOOST_TEST(!got[1].keep_alive);
        BOOST_TEST(!r.started());
    }
}

BOOST_AUTO_TEST_CASE(chunked_body_with_trailers_that_are_dropped)
{
    http::request_reader r(limits());
    const auto st = r.feed(chunked_head +
                           "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nAuthorization: Bearer x\r\n"
                           "Content-Type: text/evil\r\n\r\n");
    BOOST_TEST_REQUIRE((st == read_status::done));
    const auto in = r.take();
    BOOST_TEST(in.message.body == "abcde");
    // Trailers never become request headers.
    BOOST_TEST(!in.message.headers.get("Authorization"));
    BOOST_TEST(!in.message.headers.get("Content-Type"));
}

BOOST_AUTO_TEST_CASE(an_oversized_trailer_field_is_a_431_not_an_exception)
{
    for (const std::string& trailer : {"X: " + std::string(65534, 'a'), std::string(65534, 'a') + ": v"}) {
        for (std::size_t step : {0u, 8192u}) {
            http::request_reader r(limits());
            BOOST_TEST_REQUIRE(
                (feed(r, chunked_head + "0\r\n" + trailer + "\r\n\r\n", step) == read_status::failed));
            BOOST_TEST((r.failure().what == kind::header_too_large));
            BOOST_TEST(r.failure().http_status() == 431u);
        }
    }
}

BOOST_AUTO_TEST_CASE(trailers_count_against_the_header_limit)
{
    // Many small trailer fields: each is small, together they pass the limit.
    std::string many;
    for (int i = 0; i < 2000; ++i) many += "T" + std::to_string(i) + ": vvvvvvvv\r\n";
    http::request_reader r(limits(4096));
    BOOST_TEST_REQUIRE((feed(r, chunked_head + "0\r\n" + many + "\r\n", 1024) == read_status::failed));
    BOOST_TEST((r.failure().what == kind::header_too_large));
    // Never more held than the limit plus one piece.
    BOOST_TEST(r.buffered() <= 4096u + 1024u);

    // Header and trailer together over the limit, each under it.
    http::request_reader r2(limits(200));
    const std::string head =
        "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Pad: " + std::string(80, 'p') +
        "\r\n\r\n";
    BOOST_TEST_REQUIRE(
        (r2.feed(head + "0\r\nT: " + std::string(100, 't') + "\r\n\r\n") == read_status::failed));
    BOOST_TEST((r2.failure().what == kind::header_too_large));
}

BOOST_AUTO_TEST_CASE(transfer_encoding_other_than_exactly_chunked_is_refused)
{
    for (const std::string te : {"chunked, identity", "gzip", "xchunked", "gzip, chunked", "identity", ""}) {
        http::request_reader r(limits());
        const auto st = r.feed("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + te +
                               "\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
        BOOST_TEST_REQUIRE((st == read_status::failed), te);
        BOOST_TEST(r.failure().http_status() == 400u);
    }
    for (const std::string extra : {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"}) {
        http::request_reader r(limits());
        BOOST_TEST_REQUIRE(
            (r.feed("POST /x HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n") == read_status::failed), extra);
        BOOST_TEST(r.failure().http_status() == 400u);
    }
    http::request_reader ok(limits());
    BOOST_TEST((ok.feed("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n") ==
                read_status::done));
}

BOOST_AUTO_TEST_CASE(host_is_required_once_on_http_1_1)
{
    http::request_reader none(limits());
    BOOST_TEST_REQUIRE((none.feed("GET / HTTP/1.1\r\n\r\n") == read_status::failed));
    BOOST_TEST(none.failure().http_status() == 400u);
    http::request_reader two(limits());
    BOOST_TEST((two.feed("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == read_status::failed));
    http::request_reader old(limits());
    BOOST_TEST((old.feed("GET / HTTP/1.0\r\n\r\n") == read_status::done));
    BOOST_TEST(!old.take().keep_alive);
}

BOOST_AUTO_TEST_CASE(obs_fold_is_refused_however_it_arrives)
{
    const std::string folded = "GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n";
    for (std::size_t step : {0u, 1u, 3u}) {
        http::request_reader r(limits());
        BOOST_TEST_REQUIRE((feed(r, folded, step) == read_status::failed), step);
        BOOST_TEST(r.failure().http_status() == 400u);
        BOOST_TEST(r.failure().reason.find("obs-fold") != std::string::npos);
    }
    http::request_reader tab(limits());
    BOOST_TEST((tab.feed("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n") == read_status::failed));
    // A body that starts with a space is not a fold.
    http::request_reader body(limits());
    BOOST_TEST((body.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n x") == read_status::done));
    BOOST_TEST(body.take().message.body == " x");
}

BOOST_AUTO_TEST_CASE(limits_name_the_status)
{
    http::request_reader big_body(limits(16 * 1024, 10));
    BOOST_TEST_REQUIRE(
        (big_body.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n") == read_status::failed));
    BOOST_TEST((big_body.failure().what == kind::body_too_large));
    http::request_reader big_chunks(limits(16 * 1024, 10));
    BOOST_TEST_REQUIRE(
        (big_chunks.feed(chunked_head + "6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n") == read_status::failed));
    BOOST_TEST((big_chunks.failure().what == kind::body_too_large));
    http::request_reader big_head(limits(100));
    BOOST_TEST_REQUIRE((big_head.feed("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(200, 'x') +
                                      "\r\n\r\n") == read_status::failed));
    BOOST_TEST(big_head.failure().http_status() == 431u);
    http::request_reader long_chunk_line(limits(100));
    BOOST_TEST_REQUIRE(
        (feed(long_chunk_line, chunked_head + "1;" + std::string(300, 'e'), 10) == read_status::failed));
    BOOST_TEST(long_chunk_line.failure().http_status() == 431u);
    http::request_reader garbage(limits());
    BOOST_TEST((garbage.feed("\x01\x02 nonsense\r\n\r\n") == read_status::failed));
    BOOST_TEST(garbage.failure().http_status() == 400u);
}

BOOST_AUTO_TEST_CASE(responses_whole_streamed_and_to_eof)
{
    http::response_reader whole({16 * 1024, 100});
    BOOST_TEST_REQUIRE(
        (whole.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhel") == read_status::need_more));
    BOOST_TEST(whole.header_done());
    BOOST_TEST(whole.head().status == 200u);
    BOOST_TEST(*whole.head().headers.get("X-A") == "b");
    BOOST_TEST_REQUIRE((whole.feed("lo") == read_status::done));
    BOOST_TEST(whole.take_body() == "hello");
    BOOST_TEST(whole.keep_alive());

    http::response_reader streamed({16 * 1024, std::nullopt});
    BOOST_TEST((streamed.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n") ==
                read_status::need_more));
    BOOST_TEST(streamed.take_body() == "abc");
    BOOST_TEST((streamed.feed("2\r\nde\r\n0\r\nX-T: " + std::string(70000, 't') + "\r\n\r\n") ==
                read_status::failed));
    BOOST_TEST((streamed.failure().what == kind::header_too_large));

    http::response_reader to_eof({16 * 1024, 100});
    BOOST_TEST((to_eof.feed("HTTP/1.1 200 OK\r\n\r\nall of it") == read_status::need_more));
    BOOST_TEST((to_eof.feed_eof() == read_status::done));
    BOOST_TEST(to_eof.take_body() == "all of it");
    BOOST_TEST(!to_eof.keep_alive());

    http::response_reader cut({16 * 1024, 100});
    BOOST_TEST((cut.feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc") == read_status::need_more));
    BOOST_TEST((cut.feed_eof() == read_status::failed));

    http::response_reader head({16 * 1024, 100}, true);
    BOOST_TEST((head.feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n") == read_status::done));

    http::response_reader smuggle({16 * 1024, 100});
    BOOST_TEST(
        (smuggle.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == read_status::failed));
}

BOOST_AUTO_TEST_SUITE_END()
