#include "net/utf8.hpp"

namespace tether::net {

std::string utf8_replace_invalid(std::string_view in)
{
    static constexpr std::string_view replacement = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        const auto b = static_cast<unsigned char>(in[i]);
        if (b < 0x80) {
            out.push_back(static_cast<char>(b));
            ++i;
            continue;
        }
        std::size_t needed = 0;
        unsigned char lower = 0x80, upper = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            needed = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            needed = 2;
            if (b == 0xE0) lower = 0xA0;
            if (b == 0xED) upper = 0x9F;  // no UTF-16 surrogates
        } else if (b >= 0xF0 && b <= 0xF4) {
            needed = 3;
            if (b == 0xF0) lower = 0x90;
            if (b == 0xF4) upper = 0x8F;  // nothing above U+10FFFF
        } else {
            out.append(replacement);
            ++i;
            continue;
        }
        std::size_t seen = 0;
        std::size_t j = i + 1;
        while (seen < needed && j < in.size()) {
            const auto c = static_cast<unsigned char>(in[j]);
            if (c < lower || c > upper) break;
            lower = 0x80;
            upper = 0xBF;
            ++seen;
            ++j;
        }
        if (seen == needed) {
            out.append(in.substr(i, j - i));
        } else {
            out.append(replacement);  // the offending byte is looked at again
        }
        i = j;
    }
    return out;
}

}  // namespace tether::net
