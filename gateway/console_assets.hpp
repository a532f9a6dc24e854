// The web console's static files, embedded at build time
// (cmake/embed_files.cmake writes console_assets.cpp from gateway/console/).
#pragma once

#include <span>
#include <string_view>

namespace tether::gateway {

struct console_asset {
    std::string_view path;  ///< under /ui/, e.g. "app.js"
    std::string_view content_type;
    std::string_view body;
    std::string_view etag;  ///< quoted, from the content's hash
};

std::span<const console_asset> console_assets();

}  // namespace tether::gateway
