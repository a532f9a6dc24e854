#include "net/sse_parser.hpp"

#include "net/errc.hpp"

#include <cstring>

namespace tether::net {

namespace {

constexpr std::string_view bom = "\xEF\xBB\xBF";

bool all_ascii_digits(std::string_view s) noexcept
{
    if (s.empty()) return false;
    for (const char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

}  // namespace

void sse_parser::restart() noexcept
{
    partial_.clear();
    data_.clear();
    type_.clear();
    // An id whose event never completed must not be reported as received.
    id_buffer_ = last_event_id_;
    bom_matched_ = 0;
    at_stream_start_ = true;
    pending_cr_ = false;
    failed_ = false;
}

boost::system::error_code sse_parser::feed_impl(std::string_view in, void* ctx, callback cb)
{
    if (failed_) return errc::event_too_large;

    if (at_stream_start_) {
        while (!in.empty() && bom_matched_ < bom.size() && in.front() == bom[bom_matched_]) {
            ++bom_matched_;
            in.remove_prefix(1);
        }
        if (bom_matched_ == bom.size()) {
            at_stream_start_ = false;
        } else if (!in.empty()) {
            // Not a BOM after all: the bytes that looked like one are content.
            at_stream_start_ = false;
            const std::string_view seen = bom.substr(0, bom_matched_);
            if (auto ec = feed_impl(seen, ctx, cb)) return ec;
        } else {
            return {};  // all input so far is a BOM prefix; wait for more
        }
    }

    // Where the next CR is, looked up once per chunk rather than once per
    // line: most streams have none, and a second memchr per line would
    // double the scan cost on large events.
    const char* next_cr = nullptr;
    bool cr_known = false;

    while (!in.empty()) {
        if (pending_cr_) {
            pending_cr_ = false;
            if (in.front() == '\n') {
                in.remove_prefix(1);
                continue;
            }
        }
        if (!cr_known || (next_cr && next_cr < in.data())) {
            next_cr = static_cast<const char*>(std::memchr(in.data(), '\r', in.size()));
            cr_known = true;
        }
        const auto* lf = static_cast<const char*>(std::memchr(in.data(), '\n', in.size()));
        const char* end = lf;
        if (next_cr && (!end || next_cr < end)) end = next_cr;

        if (!end) {
            if (partial_.size() + in.size() > line_max()) {
                failed_ = true;
                return errc::event_too_large;
            }
            partial_.append(in);
            return {};
        }

        const auto pos = static_cast<std::size_t>(end - in.data());
        std::string_view l;
        if (partial_.empty()) {
            l = in.substr(0, pos);
        } else {
            if (partial_.size() + pos > line_max()) {
                failed_ = true;
                return errc::event_too_large;
            }
            partial_.append(in.data(), pos);
            l = partial_;
        }
        pending_cr_ = *end == '\r';
        in.remove_prefix(pos + 1);
        if (l.size() > line_max()) {
            failed_ = true;
            return errc::event_too_large;
        }
        const auto ec = line(l, ctx, cb);
        partial_.clear();
        if (ec) {
            failed_ = true;
            return ec;
        }
    }
    return {};
}

boost::system::error_code sse_parser::line(std::string_view l, void* ctx, callback cb)
{
    if (l.empty()) {
        dispatch(ctx, cb);
        return {};
    }
    if (l.front() == ':') return {};

    std::string_view field = l;
    std::string_view value;
    if (const auto colon = l.find(':'); colon != std::string_view::npos) {
        field = l.substr(0, colon);
        value = l.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }

    if (field == "data") {
        if (data_.size() + value.size() + 1 + type_.size() > max_) return errc::event_too_large;
        data_.append(value);
        data_.push_back('\n');
    } else if (field == "event") {
        if (data_.size() + value.size() > max_) return errc::event_too_large;
        type_.assign(value);
    } else if (field == "id") {
        if (value.find('\0') == std::string_view::npos && value.size() <= max_id_bytes)
            id_buffer_.assign(value);
    } else if (field == "retry") {
        if (all_ascii_digits(value)) {
            std::uint64_t v = 0;
            bool overflow = false;
            for (const char c : value) {
                const auto digit = static_cast<std::uint64_t>(c - '0');
                if (v > (UINT64_MAX - digit) / 10) {
                    overflow = true;
                    break;
                }
                v = v * 10 + digit;
            }
            if (!overflow) retry_ = v;
        }
    }
    return {};
}

void sse_parser::dispatch(void* ctx, callback cb)
{
    last_event_id_ = id_buffer_;
    if (data_.empty()) {
        type_.clear();
        return;
    }
    data_.pop_back();  // the LF appended after the last data line
    scratch_.type = type_.empty() ? std::string_view("message") : std::string_view(type_);
    scratch_.data.swap(data_);
    scratch_.last_event_id = last_event_id_;
    cb(ctx, scratch_);
    // Swap back so the data buffer keeps its capacity across events.
    data_.swap(scratch_.data);
    data_.clear();
    type_.clear();
}

}  // namespace tether::net
