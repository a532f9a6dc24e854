// The client's response reader against a hostile server's bytes: the first
// byte picks a HEAD request and a whole (limited) or streamed body; the rest
// arrives in the client's 16 KiB reads and then the server closes. It must
// never throw, hold more than the header limit plus one read, or hand out
// more body than the limit; the body must not depend on where bytes are cut.
#include "net/http_reader.hpp"

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace http = tether::net::http;

namespace {

constexpr std::size_t header_limit = 16 * 1024;

struct run {
    std::string body;
    http::read_status end = http::read_status::need_more;
    unsigned status = 0;
};

run parse(std::string_view in, std::size_t step, bool head, std::optional<std::size_t> body_limit)
{
    run out;
    http::response_reader reader({header_limit, body_limit}, head);
    auto st = http::read_status::need_more;
    while (!in.empty() && st == http::read_status::need_more) {
        const auto piece = in.substr(0, std::min(step, in.size()));
        in.remove_prefix(piece.size());
        st = reader.feed(piece);
        out.body += reader.take_body();
        if (body_limit && out.body.size() > *body_limit) std::abort();
    }
    if (st == http::read_status::need_more) st = reader.feed_eof();
    out.body += reader.take_body();
    if (st == http::read_status::done && !reader.header_done()) std::abort();
    if (reader.header_done()) out.status = reader.head().status;
    out.end = st;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0) return 0;
    const bool head = (data[0] & 1) != 0;
    const std::optional<std::size_t> limit =
        (data[0] & 2) != 0 ? std::nullopt : std::optional<std::size_t>(4096);
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    const auto client = parse(in, 16 * 1024, head, limit);
    const auto split = parse(in, 5, head, limit);
    if (client.end == http::read_status::done && split.end == http::read_status::done &&
        (client.body != split.body || client.status != split.status))
        std::abort();
    return 0;
}
