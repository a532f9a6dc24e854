// Server-sent events, sans-IO: bytes in, events out. No sockets, no Asio.
#pragma once

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tether::net {

struct sse_event {
    std::string type;           ///< the `event` field, or "message"
    std::string data;           ///< `data` lines joined with LF, final LF removed
    std::string last_event_id;  ///< the last event id in force when it was dispatched
};

/// The WHATWG HTML "event stream interpretation", exactly:
/// a UTF-8 BOM is skipped only at the very start of the stream; lines end in
/// CR, LF or CRLF (a CR ending one chunk and an LF starting the next are one
/// line end; any other byte clears the pending CR); `:` lines are comments;
/// a field without a colon has an empty value; one space after the colon is
/// removed; `data` lines are joined with LF; an event with empty data is not
/// dispatched (its id still takes effect); an `id` containing NUL is ignored;
/// `retry` counts only when all ASCII digits; unknown fields are ignored;
/// the last event id persists across events; an unterminated event at end of
/// stream is discarded (the caller simply stops feeding).
///
/// Memory is bounded: an event whose type and data (with their joining LFs)
/// exceed `max_event_bytes`, or a single line longer than that plus a little
/// room for the field name, fails the stream with errc::event_too_large; the
/// parser then refuses further input until `restart()`.
///
/// Not thread-safe; one parser per stream reader.
class sse_parser {
public:
    static constexpr std::size_t default_max_event_bytes = 1024 * 1024;
    /// An `id` longer than this is ignored (the previous one stays): it goes
    /// back in a Last-Event-ID header, and one huge id must not make every
    /// reconnect a 431.
    static constexpr std::size_t max_id_bytes = 1024;

    explicit sse_parser(std::size_t max_event_bytes = default_max_event_bytes) : max_(max_event_bytes) {}

    /// Feeds the next bytes; calls `on_event(const sse_event&)` for each event
    /// completed by them, in order.
    template <class OnEvent>
    boost::system::error_code feed(std::string_view bytes, OnEvent&& on_event)
    {
        return feed_impl(bytes, &on_event, [](void* ctx, const sse_event& e) {
            (*static_cast<std::remove_reference_t<OnEvent>*>(ctx))(e);
        });
    }

    /// A new connection: forget partial lines and buffers, expect a BOM again,
    /// keep the last event id and retry value (they belong to the source).
    void restart() noexcept;

    [[nodiscard]] const std::string& last_event_id() const noexcept { return last_event_id_; }
    /// The most recent valid `retry` value, in milliseconds.
    [[nodiscard]] std::optional<std::uint64_t> retry() const noexcept { return retry_; }

private:
    using callback = void (*)(void*, const sse_event&);
    boost::system::error_code feed_impl(std::string_view bytes, void* ctx, callback cb);
    boost::system::error_code line(std::string_view l, void* ctx, callback cb);
    void dispatch(void* ctx, callback cb);
    [[nodiscard]] std::size_t line_max() const noexcept { return max_ + 64; }

    std::size_t max_;
    std::string partial_;  // bytes of a line that continues in the next chunk
    std::string data_;
    std::string type_;
    std::string id_buffer_;
    std::string last_event_id_;
    std::optional<std::uint64_t> retry_;
    std::size_t bom_matched_ = 0;  // bytes of a leading BOM seen so far
    bool at_stream_start_ = true;
    bool pending_cr_ = false;
    bool failed_ = false;
    sse_event scratch_;
};

}  // namespace tether::net
