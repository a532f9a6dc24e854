#include "base/utf8.hpp"

namespace tether {

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

}  // namespace tether

namespace tether {

namespace {

/// Length of the control character at `i` (1 for C0/DEL, 2 for a C1), or 0.
std::size_t control_at(std::string_view s, std::size_t i) noexcept
{
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return 1;
    if (c == 0xC2 && i + 1 < s.size()) {
        const auto n = static_cast<unsigned char>(s[i + 1]);
        if (n >= 0x80 && n <= 0x9F) return 2;
    }
    return 0;
}

}  // namespace

bool has_control_characters(std::string_view s) noexcept
{
    for (std::size_t i = 0; i < s.size(); ++i)
        if (control_at(s, i) != 0) return true;
    return false;
}

namespace {

void append_hex(std::string& out, unsigned char c)
{
    static constexpr char digits[] = "0123456789abcdef";
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xF]);
}

/// `s` with each control character, and each backslash when `backslash`,
/// replaced by what `escape` appends for its bytes.
template <class Escape>
std::string escape_controls(std::string_view s, bool backslash, Escape escape)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const std::size_t n = backslash && s[i] == '\\' ? 1 : control_at(s, i);
        if (n == 0) {
            out.push_back(s[i]);
            continue;
        }
        escape(out, s.substr(i, n));
        i += n - 1;
    }
    return out;
}

}  // namespace

std::string terminal_safe(std::string_view s)
{
    return escape_controls(s, true, [](std::string& out, std::string_view bytes) {
        for (const char b : bytes) {
            out += "\\x";
            append_hex(out, static_cast<unsigned char>(b));
        }
    });
}

std::string terminal_safe_json(std::string_view serialized)
{
    // C0 and DEL are their byte; a C1 is U+0080..U+009F, its second byte.
    return escape_controls(serialized, false, [](std::string& out, std::string_view bytes) {
        out += "\\u00";
        append_hex(out, static_cast<unsigned char>(bytes.back()));
    });
}

}  // namespace tether
