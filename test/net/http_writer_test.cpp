// The hand-written heads are read back by the same strict readers every
// listener uses: what the broker writes must parse as what it meant.
#include "net/http_writer.hpp"

#include "net/http_reader.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace http = tether::net::http;
using http::framing;
using http::read_status;

namespace {

http::fields two_fields()
{
    http::fields f;
    f.add("Content-Type", "application/json");
    f.add("X-Trace", "a b\tc");
    return f;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_writer)

BOOST_AUTO_TEST_CASE(a_request_reads_back_as_written)
{
    http::request req;
    req.method = "POST";
    req.target = "/base/v1/items?app_key=k&page=2";
    req.headers = two_fields();
    req.headers.add("Host", "api.example:8443");
    req.body = "{\"a\":1}";
    std::string out;
    BOOST_TEST_REQUIRE(http::append_request(out, req));
    http::request_reader r({16 * 1024, 64 * 1024});
    BOOST_TEST_REQUIRE((r.feed(out) == read_status::done));
    const auto got = r.take();
    BOOST_TEST(got.message.method == "POST");
    BOOST_TEST(got.message.target == req.target);
    BOOST_TEST(got.message.body == req.body);
    BOOST_TEST(*got.message.headers.get("X-Trace") == "a b\tc");
    BOOST_TEST(*got.message.headers.get("Content-Length") == "7");
    BOOST_TEST(got.keep_alive);
    BOOST_TEST(r.buffered() == 0u);
}

BOOST_AUTO_TEST_CASE(a_get_without_body_has_no_length_and_a_post_always_has_one)
{
    http::request get;
    get.headers.add("Host", "h");
    std::string out;
    BOOST_TEST_REQUIRE(http::append_request(out, get));
    BOOST_TEST(out == "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    http::request post = get;
    post.method = "POST";
    out.clear();
    BOOST_TEST_REQUIRE(http::append_request(out, post));
    BOOST_TEST(out == "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
}

BOOST_AUTO_TEST_CASE(nothing_that_could_start_a_field_or_a_message_is_written)
{
    const auto refused = [](http::request req) {
        std::string out = "kept";
        const bool ok = http::append_request(out, req);
        return !ok && out == "kept";  // refused, and nothing half-written
    };
    http::request base;
    base.headers.add("Host", "h");
    for (const std::string& bad :
         std::vector<std::string>{"a\r\nX-Evil: 1", "a\nb", std::string("a\0b", 3), "a\rb"}) {
        auto v = base;
        v.headers.add("X-Value", bad);
        BOOST_TEST(refused(v), "value " << bad.size());
        auto n = base;
        n.headers.add(bad, "v");
        BOOST_TEST(refused(n), "name " << bad.size());
        auto t = base;
        t.target = "/x" + bad;
        BOOST_TEST(refused(t), "target " << bad.size());
        auto m = base;
        m.method = "GET" + bad;
        BOOST_TEST(refused(m), "method " << bad.size());
    }
    auto spaced = base;
    spaced.target = "/x HTTP/1.1\r\n";
    BOOST_TEST(refused(spaced));
    // Framing is the writer's alone: one write must never read as two messages.
    auto length = base;
    length.headers.add("content-length", "0");
    BOOST_TEST(refused(length));
    auto chunked = base;
    chunked.headers.add("Transfer-Encoding", "chunked");
    BOOST_TEST(refused(chunked));
    auto empty_name = base;
    empty_name.headers.add("", "v");
    BOOST_TEST(refused(empty_name));

    std::string out = "kept";
    http::fields f;
    f.add("Set-Cookie", "a=1\r\n\r\nHTTP/1.1 200 OK");
    BOOST_TEST(!http::append_response_head(out, 200, f, 11, true, framing::length, 0));
    BOOST_TEST(!http::append_response_head(out, 99, {}, 11, true, framing::length, 0));
    BOOST_TEST(!http::append_response_head(out, 1000, {}, 11, true, framing::length, 0));
    BOOST_TEST(out == "kept");
}

BOOST_AUTO_TEST_CASE(a_whole_response_reads_back_with_its_length_and_connection)
{
    for (const unsigned version : {10u, 11u})
        for (const bool keep : {true, false}) {
            std::string out;
            BOOST_TEST_REQUIRE(
                http::append_response_head(out, 404, two_fields(), version, keep, framing::length, 5));
            out += "gone!";
            BOOST_TEST(
                out.starts_with(version == 11 ? "HTTP/1.1 404 Not Found\r\n" : "HTTP/1.0 404 Not Found\r\n"));
            http::response_reader r({16 * 1024, 64 * 1024});
            BOOST_TEST_REQUIRE((r.feed(out) == read_status::done));
            BOOST_TEST(r.head().status == 404u);
            BOOST_TEST(r.take_body() == "gone!");
            BOOST_TEST(r.keep_alive() == keep, "version " << version << " keep " << keep);
        }
}

BOOST_AUTO_TEST_CASE(a_chunked_response_reads_back_piece_by_piece)
{
    std::string out;
    BOOST_TEST_REQUIRE(http::append_response_head(out, 200, two_fields(), 11, true, framing::chunked, 0));
    http::append_chunk(out, "tick 0\n");
    http::append_chunk(out, "");  // never the end by accident
    http::append_chunk(out, std::string(300, 'x'));
    out += http::last_chunk;
    http::response_reader r({16 * 1024, std::nullopt});
    BOOST_TEST_REQUIRE((r.feed(out) == read_status::done));
    BOOST_TEST(r.take_body() == "tick 0\n" + std::string(300, 'x'));
    BOOST_TEST(r.keep_alive());
}

BOOST_AUTO_TEST_CASE(a_close_delimited_body_ends_with_the_connection)
{
    std::string out;
    BOOST_TEST_REQUIRE(http::append_response_head(out, 200, {}, 10, false, framing::close, 0));
    BOOST_TEST(out == "HTTP/1.0 200 OK\r\n\r\n");
    http::response_reader r({16 * 1024, std::nullopt});
    BOOST_TEST((r.feed(out + "stream") == read_status::need_more));
    BOOST_TEST((r.feed_eof() == read_status::done));
    BOOST_TEST(r.take_body() == "stream");
}

BOOST_AUTO_TEST_CASE(no_body_statuses_carry_no_framing)
{
    std::string out;
    BOOST_TEST_REQUIRE(http::append_response_head(out, 304, {}, 11, true, framing::none, 0));
    BOOST_TEST(out == "HTTP/1.1 304 Not Modified\r\n\r\n");
    out.clear();
    BOOST_TEST_REQUIRE(http::append_response_head(out, 599, {}, 11, true, framing::none, 0));
    BOOST_TEST(out == "HTTP/1.1 599 \r\n\r\n");  // an unknown code: an empty reason is valid
}

BOOST_AUTO_TEST_SUITE_END()
