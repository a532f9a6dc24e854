// The request reader as every listener configures it (16 KiB header, 64 KiB
// body, fed in the server's 8 KiB reads), against arbitrary bytes: it must
// never throw or crash, never hold more than the header limit plus one read,
// and give the same requests however the bytes are cut.
#include "net/http_reader.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace http = tether::net::http;

namespace {

constexpr std::size_t header_limit = 16 * 1024;
constexpr std::size_t body_limit = 64 * 1024;

struct run {
    std::vector<std::string> requests;  // method, target, fields and body, flattened
    bool failed = false;
};

std::string flatten(const http::received_request& r)
{
    std::string out = r.message.method + ' ' + r.message.target + ' ' + std::to_string(r.version) +
                      (r.keep_alive ? " ka\n" : " close\n");
    for (const auto& f : r.message.headers) out += f.name + ':' + f.value + '\n';
    return out + '\n' + r.message.body;
}

run parse(std::string_view in, std::size_t step)
{
    run out;
    http::request_reader reader({header_limit, body_limit});
    while (!in.empty() && !out.failed) {
        const auto piece = in.substr(0, std::min(step, in.size()));
        in.remove_prefix(piece.size());
        auto st = reader.feed(piece);
        while (st == http::read_status::done) {
            const auto r = reader.take();
            if (r.message.body.size() > body_limit) std::abort();
            out.requests.push_back(flatten(r));
            st = reader.feed({});
        }
        if (st == http::read_status::failed) {
            const auto status = reader.failure().http_status();
            if (status != 400 && status != 429 && status != 431) std::abort();
            out.failed = true;
        }
        if (reader.buffered() > header_limit + step) std::abort();
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto server = parse(in, 8 * 1024);
    const auto split = parse(in, 7);
    // Where both read everything, the cut must not matter; where one
    // refused, the requests before the refusal must agree.
    const auto n = std::min(server.requests.size(), split.requests.size());
    for (std::size_t i = 0; i < n; ++i)
        if (server.requests[i] != split.requests[i]) std::abort();
    if (!server.failed && !split.failed && server.requests.size() != split.requests.size()) std::abort();
    return 0;
}
