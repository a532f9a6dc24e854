// The runtime config decoder on arbitrary bytes: as the state-directory file
// (JSON parse + decode), and as a document. Must never crash, and a decoded
// config's typed fields and keys must survive its own file round trip.
// (Unknown keys' numbers are not compared bit for bit: Boost.JSON 1.81 does
// not parse long decimals correctly rounded, so 1e55-ish values may move by
// an ulp through serialize + parse; the fuzzer found that.)
#include "settings/runtime_config.hpp"

#include <boost/json/parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)tether::settings::decode_config_file(text);
    boost::system::error_code ec;
    const auto v = boost::json::parse(text, ec);
    if (ec) return 0;
    const auto cfg = tether::settings::decode_config(v, 1);
    if (!cfg) return 0;
    const auto back = tether::settings::decode_config_file(tether::settings::encode_config_file(*cfg));
    if (!back || back->keys() != cfg->keys() || back->blocked_ips != cfg->blocked_ips ||
        back->rate_limits != cfg->rate_limits || back->flags != cfg->flags ||
        back->allowed_egress_hosts != cfg->allowed_egress_hosts ||
        back->heartbeat_interval != cfg->heartbeat_interval)
        std::abort();
    return 0;
}
