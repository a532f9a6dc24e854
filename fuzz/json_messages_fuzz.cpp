// The decoders every JSON message goes through (protobuf-JSON field readers,
// Connect error bodies, timestamps, base64), fed arbitrary bytes. Invariants:
// nothing crashes or leaks, and what decodes re-encodes to the same value.
#include "net/connect.hpp"
#include "net/protojson.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace pj = tether::net::protojson;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    (void)tether::net::connect::decode_error(static_cast<unsigned>(size % 600), in);

    if (auto o = pj::parse_object(in)) {
        // Every field the wire contract reads, whatever type the input gives it.
        for (const char* k : {"nodeId", "orgId", "apiKey", "sessionToken", "token", "message", "code"})
            (void)pj::get_string(*o, k);
        for (const char* k : {"configUpdatedAt", "uptimeSeconds"}) (void)pj::get_int64(*o, k);
        for (const char* k : {"heartbeatIntervalSeconds", "pageSize", "ttlSeconds"})
            (void)pj::get_int32(*o, k);
        for (const char* k : {"challenge", "signature", "publicKey"}) (void)pj::get_bytes(*o, k);
        for (const char* k : {"expiresAt", "serverTime", "lastSeenAt"}) (void)pj::get_timestamp(*o, k);
        (void)pj::get_strings(*o, "capabilities");
        (void)pj::get_bool(*o, "revoked");
    }

    if (auto t = pj::parse_timestamp(in, "t")) {
        // Canonical output parses back to the same instant.
        const auto again = pj::parse_timestamp(pj::format_timestamp(*t), "t");
        if (!again || *again != *t) std::abort();
    }
    if (auto b = pj::base64_decode(in, "b")) {
        const auto again = pj::base64_decode(pj::base64_encode(*b), "b");
        if (!again || *again != *b) std::abort();
    }
    return 0;
}
