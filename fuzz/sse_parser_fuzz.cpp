// Feeds arbitrary bytes to the SSE parser in two different chunkings and
// requires identical events: chunk boundaries must never change the result.
// Also checks the UTF-8 repair is idempotent (its output is valid UTF-8).
#include "base/utf8.hpp"
#include "net/sse_parser.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace {

struct run {
    std::vector<tether::net::sse_event> events;
    std::string last_id;
    std::optional<std::uint64_t> retry;
    bool failed = false;
};

run parse(std::string_view in, std::size_t step)
{
    run r;
    tether::net::sse_parser p(4096);
    while (!in.empty()) {
        const auto n = std::min(step, in.size());
        if (p.feed(in.substr(0, n), [&](const tether::net::sse_event& e) { r.events.push_back(e); })) {
            r.failed = true;
            break;
        }
        in.remove_prefix(n);
    }
    r.last_id = p.last_event_id();
    r.retry = p.retry();
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0) return 0;
    const std::size_t step = 1 + data[0] % 17;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

    const run whole = parse(in, in.size() + 1);
    const run pieces = parse(in, step);

    // The size limit may trip at a different event when chunked differently
    // only if it trips at all; compare fully when neither failed.
    if (whole.failed != pieces.failed) std::abort();
    if (!whole.failed) {
        if (whole.events.size() != pieces.events.size()) std::abort();
        for (std::size_t i = 0; i < whole.events.size(); ++i) {
            const auto &a = whole.events[i], &b = pieces.events[i];
            if (a.type != b.type || a.data != b.data || a.last_event_id != b.last_event_id) std::abort();
        }
        if (whole.last_id != pieces.last_id || whole.retry != pieces.retry) std::abort();
    }

    const std::string once = tether::utf8_replace_invalid(in);
    if (tether::utf8_replace_invalid(once) != once) std::abort();
    return 0;
}
