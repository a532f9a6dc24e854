#include "app/agent/sse_decode.hpp"

#include "base/utf8.hpp"
#include "net/sse_parser.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace tether::app {

boost::system::error_code sse_decode(const std::function<std::string()>& read,
                                     const std::function<void(std::string_view)>& write,
                                     std::size_t max_event_bytes)
{
    net::sse_parser parser(max_event_bytes);
    for (;;) {
        const std::string chunk = read();
        if (chunk.empty()) break;
        const auto ec = parser.feed(chunk, [&](const net::sse_event& e) {
            boost::json::object line;
            line["type"] = utf8_replace_invalid(e.type);
            line["data"] = utf8_replace_invalid(e.data);
            line["id"] = utf8_replace_invalid(e.last_event_id);
            write(boost::json::serialize(line) + "\n");
        });
        if (ec) return ec;
    }
    // End of input: an unterminated event is discarded, as the spec says.
    if (const auto r = parser.retry()) {
        boost::json::object line;
        line["retry"] = *r;
        write(boost::json::serialize(line) + "\n");
    }
    return {};
}

}  // namespace tether::app
