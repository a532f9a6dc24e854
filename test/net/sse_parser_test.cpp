#include "net/sse_parser.hpp"

#include "net/errc.hpp"

#include <boost/test/unit_test.hpp>

#include <vector>

using tether::net::sse_event;
using tether::net::sse_parser;

namespace {

struct outcome {
    std::vector<sse_event> events;
    std::string last_id;
    std::optional<std::uint64_t> retry;
    boost::system::error_code ec;
};

bool same(const outcome& a, const outcome& b)
{
    if (a.events.size() != b.events.size() || a.last_id != b.last_id || a.retry != b.retry || a.ec != b.ec)
        return false;
    for (std::size_t i = 0; i < a.events.size(); ++i) {
        const auto &x = a.events[i], &y = b.events[i];
        if (x.type != y.type || x.data != y.data || x.last_event_id != y.last_event_id) return false;
    }
    return true;
}

outcome feed_chunks(const std::vector<std::string_view>& chunks, std::size_t max = 1 << 20)
{
    outcome o;
    sse_parser p(max);
    for (const auto c : chunks) {
        o.ec = p.feed(c, [&](const sse_event& e) { o.events.push_back(e); });
        if (o.ec) break;
    }
    o.last_id = p.last_event_id();
    o.retry = p.retry();
    return o;
}

/// Parses `in` whole, then split at every byte boundary, then one byte at a
/// time, and requires all three to agree: chunking must never change events.
outcome parse(std::string_view in, std::size_t max = 1 << 20)
{
    const outcome whole = feed_chunks({in}, max);
    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
        const outcome split = feed_chunks({in.substr(0, cut), in.substr(cut)}, max);
        BOOST_TEST_REQUIRE(same(whole, split), "split at " << cut << " changes the events");
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < in.size(); ++i) bytes.push_back(in.substr(i, 1));
    BOOST_TEST_REQUIRE(same(whole, feed_chunks(bytes, max)), "byte-by-byte feeding changes the events");
    return whole;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sse_parser_suite)

BOOST_AUTO_TEST_CASE(simple_event_defaults_to_message)
{
    const auto o = parse("data: hello\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].type == "message");
    BOOST_TEST(o.events[0].data == "hello");
    BOOST_TEST(o.events[0].last_event_id == "");
}

BOOST_AUTO_TEST_CASE(an_overlong_id_is_ignored_and_the_last_good_one_kept)
{
    const std::string in = "id: 7\ndata: a\n\nid: " + std::string(sse_parser::max_id_bytes + 1, '9') +
                           "\ndata: b\n\nid: " + std::string(sse_parser::max_id_bytes, '8') + "\ndata: c\n\n";
    const auto o = feed_chunks({in});
    BOOST_TEST_REQUIRE(o.events.size() == 3u);
    BOOST_TEST(o.events[1].last_event_id == "7");
    BOOST_TEST(o.events[2].last_event_id == std::string(sse_parser::max_id_bytes, '8'));
}

BOOST_AUTO_TEST_CASE(data_lines_join_with_lf_and_final_lf_is_removed)
{
    const auto o = parse("data: a\ndata:b\ndata\ndata:  c\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].data == "a\nb\n\n c");  // one leading space removed, not two
}

BOOST_AUTO_TEST_CASE(all_three_line_endings)
{
    for (const char* in : {"event: x\rdata: 1\r\r", "event: x\r\ndata: 1\r\n\r\n", "event: x\ndata: 1\n\n",
                           "event: x\r\ndata: 1\r\r\n"}) {
        const auto o = parse(in);
        BOOST_TEST_REQUIRE(o.events.size() == 1u, in);
        BOOST_TEST(o.events[0].type == "x");
        BOOST_TEST(o.events[0].data == "1");
    }
}

BOOST_AUTO_TEST_CASE(cr_then_lf_across_chunks_is_one_line_end)
{
    // Explicit form of what parse() checks at every split: CR ends one chunk,
    // LF starts the next; this must not produce an extra empty line (which
    // would dispatch early).
    const auto o = feed_chunks({"data: a\r", "\ndata: b\r", "\n\r", "\n"});
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].data == "a\nb");
}

BOOST_AUTO_TEST_CASE(pending_cr_is_cleared_by_any_other_byte)
{
    // CR, then 'd': the CR was a line end; the next LF-after-CR rule must not
    // swallow a later LF.
    const auto o = parse("data: a\rdata: b\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].data == "a\nb");
}

BOOST_AUTO_TEST_CASE(bom_only_at_stream_start)
{
    const auto o = parse(
        "\xEF\xBB\xBF"
        "data: x\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].data == "x");

    // A second BOM is content: it becomes part of the field name, which is
    // then unknown, so the line is ignored.
    const auto twice = parse(
        "\xEF\xBB\xBF\xEF\xBB\xBF"
        "data: x\n\n");
    BOOST_TEST(twice.events.empty());

    // A BOM later in the stream is content too.
    const auto later = parse(
        "data: a\n\n\xEF\xBB\xBF"
        "data: b\n\n");
    BOOST_TEST_REQUIRE(later.events.size() == 1u);
    BOOST_TEST(later.events[0].data == "a");

    // Bytes that start like a BOM but are not one are content.
    const auto almost = parse(
        "\xEF\xBB"
        "data: x\n\n");
    BOOST_TEST(almost.events.empty());
}

BOOST_AUTO_TEST_CASE(comments_and_unknown_fields_are_ignored)
{
    const auto o = parse(": hello\n:\nfoo: bar\nDATA: no\ndata: yes\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].data == "yes");
}

BOOST_AUTO_TEST_CASE(field_without_colon_has_empty_value)
{
    const auto o = parse("data\ndata\n\nevent\ndata: z\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 2u);
    BOOST_TEST(o.events[0].data == "\n");
    BOOST_TEST(o.events[1].type == "message");  // empty event name means "message"
}

BOOST_AUTO_TEST_CASE(empty_data_is_not_dispatched_but_its_id_takes_effect)
{
    const auto o = parse("id: 7\n\nevent: x\n\ndata: after\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].type == "message");  // the type buffer was reset by the empty event
    BOOST_TEST(o.events[0].last_event_id == "7");
    BOOST_TEST(o.last_id == "7");
}

BOOST_AUTO_TEST_CASE(last_event_id_persists_and_can_be_cleared)
{
    const auto o = parse("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 3u);
    BOOST_TEST(o.events[0].last_event_id == "1");
    BOOST_TEST(o.events[1].last_event_id == "1");
    BOOST_TEST(o.events[2].last_event_id == "");
}

BOOST_AUTO_TEST_CASE(id_with_nul_is_ignored)
{
    const std::string in("id: 5\ndata: a\n\nid: 6\0x\ndata: b\n\n", 32);
    const auto o = parse(in);
    BOOST_TEST_REQUIRE(o.events.size() == 2u);
    BOOST_TEST(o.events[1].last_event_id == "5");
}

BOOST_AUTO_TEST_CASE(retry_only_when_all_ascii_digits)
{
    BOOST_TEST(*parse("retry: 2500\n").retry == 2500u);
    BOOST_TEST(!parse("retry: 25x\n").retry.has_value());
    BOOST_TEST(!parse("retry: -1\n").retry.has_value());
    BOOST_TEST(!parse("retry:  10\n").retry.has_value());  // the second space is part of the value
    BOOST_TEST(!parse("retry:\n").retry.has_value());
    BOOST_TEST(*parse("retry: 10\nretry: x\n").retry == 10u);  // an invalid value changes nothing
    BOOST_TEST(!parse("retry: 99999999999999999999999\n").retry.has_value());
}

BOOST_AUTO_TEST_CASE(unterminated_event_at_eof_is_discarded)
{
    const auto o = parse("data: complete\n\nid: 9\ndata: partial\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.last_id == "");  // the id of the incomplete event never took effect
}

BOOST_AUTO_TEST_CASE(restart_forgets_an_incomplete_event_and_keeps_the_last_id)
{
    sse_parser p;
    std::vector<sse_event> got;
    auto on = [&](const sse_event& e) {
        got.push_back(e);
    };
    BOOST_TEST(!p.feed("id: 1\ndata: a\n\nid: 2\ndata: half", on));
    p.restart();
    BOOST_TEST(p.last_event_id() == "1");
    BOOST_TEST(
        !p.feed("\xEF\xBB\xBF"
                "data: b\n\n",
                on));  // a new stream may start with a BOM again
    BOOST_TEST_REQUIRE(got.size() == 2u);
    BOOST_TEST(got[1].data == "b");
    BOOST_TEST(got[1].last_event_id == "1");
}

BOOST_AUTO_TEST_CASE(event_size_is_bounded)
{
    // Many data lines, each small: the event as a whole is what is bounded.
    std::string in;
    for (int i = 0; i < 100; ++i) in += "data: 0123456789\n";
    in += "\n";
    const auto o = feed_chunks({in}, 512);
    BOOST_TEST((o.ec == tether::net::errc::event_too_large));
    BOOST_TEST(o.events.empty());

    // One long line without a line end is bounded too, across chunks.
    sse_parser p(64);
    const std::string chunk(70, 'x');  // two of these exceed 64 + room for a field name
    BOOST_TEST(!p.feed(chunk, [](const sse_event&) {}));
    BOOST_TEST((p.feed(chunk, [](const sse_event&) {}) == tether::net::errc::event_too_large));
    // Once failed, it stays failed until restart.
    BOOST_TEST((p.feed("data: x\n\n", [](const sse_event&) {}) == tether::net::errc::event_too_large));
    p.restart();
    BOOST_TEST(!p.feed("data: x\n\n", [](const sse_event&) {}));

    // Exactly at the limit is fine.
    const auto fits = parse("data: " + std::string(63, 'y') + "\n\n", 64);
    BOOST_TEST(!fits.ec);
    BOOST_TEST_REQUIRE(fits.events.size() == 1u);
}

BOOST_AUTO_TEST_CASE(colon_in_value_is_kept)
{
    const auto o = parse("data: {\"a\": 1}\n\n");
    BOOST_TEST_REQUIRE(o.events.size() == 1u);
    BOOST_TEST(o.events[0].data == "{\"a\": 1}");
}

BOOST_AUTO_TEST_SUITE_END()
