// SSE parser throughput against a memchr scan of the same bytes (the
// physical floor: every parser must at least find the line ends).
//
//   build/release/bench/bench_sse_parse [MiB per case, default 256]
//
// Prints MB/s for (a) many small events and (b) large multi-line data events,
// each next to memchr over the same buffer, and the ratio.
#include "net/sse_parser.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using clk = std::chrono::steady_clock;

std::string small_events(std::size_t target)
{
    std::string s;
    for (std::size_t i = 0; s.size() < target; ++i)
        s += "id: " + std::to_string(i) +
             "\nevent: config-updated\ndata: {\"configUpdatedAt\": " + std::to_string(1700000000000 + i) +
             "}\n\n";
    return s;
}

std::string large_events(std::size_t target)
{
    const std::string line = "data: " + std::string(1018, 'x') + "\n";  // 1 KiB lines
    std::string event;
    for (int i = 0; i < 256; ++i) event += line;  // 256 KiB events
    event += "\n";
    std::string s;
    while (s.size() < target) s += event;
    return s;
}

double mbps(std::size_t bytes, clk::duration d)
{
    return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

/// Feeds in 16 KiB chunks, as the client reads them off a socket.
double parse_rate(const std::string& in, std::size_t& events)
{
    tether::net::sse_parser p(1 << 20);
    const auto t0 = clk::now();
    for (std::size_t off = 0; off < in.size(); off += 16384) {
        const auto n = std::min<std::size_t>(16384, in.size() - off);
        if (p.feed(std::string_view(in).substr(off, n),
                   [&](const tether::net::sse_event& e) { events += e.data.empty() ? 0 : 1; })) {
            std::fprintf(stderr, "parse error\n");
            std::exit(1);
        }
    }
    return mbps(in.size(), clk::now() - t0);
}

double memchr_rate(const std::string& in, std::size_t& lines)
{
    const auto t0 = clk::now();
    const char* p = in.data();
    const char* end = in.data() + in.size();
    while (p < end) {
        const auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
        if (!nl) break;
        ++lines;
        p = nl + 1;
    }
    return mbps(in.size(), clk::now() - t0);
}

void run(const char* name, const std::string& in)
{
    double best_parse = 0, best_scan = 0;
    std::size_t events = 0, lines = 0;
    for (int rep = 0; rep < 5; ++rep) {
        best_parse = std::max(best_parse, parse_rate(in, events));
        best_scan = std::max(best_scan, memchr_rate(in, lines));
    }
    // Printing both counts keeps the optimiser from dropping either loop.
    std::printf(
        "%-14s %8.1f MB/s parse   %8.1f MB/s memchr   ratio %.2fx   (%zu events, %zu lines per pass)\n", name,
        best_parse, best_scan, best_scan / best_parse, events / 5, lines / 5);
}

}  // namespace

int main(int argc, char** argv)
{
    const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
    const std::size_t bytes = mib * 1024 * 1024;
    run("small events", small_events(bytes));
    run("large events", large_events(bytes));
}
