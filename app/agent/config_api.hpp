// The local config watch API the agent serves to the node's workloads, next
// to /status on its loopback listener (docs/protocol.md section 7):
//   GET /v1/config         the applied document, ETag "<configUpdatedAt>",
//                          If-None-Match -> 304
//   GET /v1/config/events  server-sent events: the document at once and on
//                          every change (event: config, id: configUpdatedAt),
//                          a comment every 15 s, Last-Event-ID resumes
// Both take ?keys=a,b: only those keys of the document, and the stream sends
// only when they change.
#pragma once

#include "base/asio.hpp"
#include "net/http.hpp"
#include "net/http_server.hpp"
#include "settings/config_store.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>

namespace tether::app {

struct config_api_options {
    /// Open event streams; one more gets 503.
    std::size_t max_streams = 4096;
    std::chrono::milliseconds comment_every{15'000};
};

class config_api {
public:
    config_api(const settings::config_store& store, config_api_options o = {});

    /// Whether `path` (no query) is one of the API's.
    [[nodiscard]] static bool handles(std::string_view path) noexcept;

    /// Answers a GET (or HEAD) to one of its paths.
    awaitable<net::reply> answer(const net::http::request& req) const;

    [[nodiscard]] std::size_t open_streams() const noexcept { return state_->streams.load(); }

private:
    struct state {
        const settings::config_store& store;
        config_api_options opts;
        std::atomic<std::size_t> streams{0};
    };
    std::shared_ptr<state> state_;
};

}  // namespace tether::app
