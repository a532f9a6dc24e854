// What `tether run` is apart from its listeners: a session with the gateway,
// heartbeats, config sync, the event stream and its dispatcher, around one
// config store. `tether exec` runs the same to follow the node's config when
// no `tether run` holds the state directory.
#pragma once

#include "app/agent/event_handlers.hpp"
#include "app/agent/metrics.hpp"
#include "app/agent/tasks/ca_file_task.hpp"
#include "app/agent/tasks/config_sync_task.hpp"
#include "app/agent/tasks/dispatch_task.hpp"
#include "app/agent/tasks/heartbeat_task.hpp"
#include "app/agent/tasks/realtime_task.hpp"
#include "app/common/invocation.hpp"
#include "app/common/supervisor.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "net/sse_client.hpp"
#include "settings/config_store.hpp"
#include "settings/projected_config.hpp"

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tether::app {

/// A group flag's value (a name, or a number); nullopt when not given.
/// An unknown name is a usage error.
std::optional<gid_t> group_flag(const invocation& inv, std::string_view flag);

/// --config-out, --config-mode, --config-group; nullopt without --config-out.
std::optional<settings::projection_options> projection_flags(const invocation& inv,
                                                             const std::filesystem::path& state_dir);

class agent_core {
public:
    struct deps {
        invocation&
            inv;  ///< --realtime-url, --stream-read-timeout, --heartbeat-interval, --no-realtime, --ca-file
        auth::state_paths paths;
        auth::node_state state;
        secret key;
        asio::any_io_executor ex;
        asio::any_io_executor blocking;
        settings::config_store& store;
        agent_metrics& metrics;
        uniform01 rand;
        /// What heartbeats report as applied (heartbeat_task::deps::applied).
        std::function<std::int64_t()> applied{};
    };

    /// Parses the flags (a bad one throws cli::usage_error) and builds the
    /// tasks; nothing runs until add_tasks.
    explicit agent_core(deps d);

    /// Heartbeat, config sync, dispatcher and (unless --no-realtime) the
    /// event stream, each restarted with backoff if it fails; with
    /// --ca-file and https, the task that follows the file.
    void add_tasks(supervisor& sup);

    [[nodiscard]] auth::session_manager& session() noexcept { return *session_; }
    [[nodiscard]] const net::server_set& server() const noexcept { return server_; }
    [[nodiscard]] const std::shared_ptr<net::replaceable_tls>& tls() const noexcept { return tls_.tls; }
    [[nodiscard]] const net::sse_options& stream() const noexcept { return stream_; }

private:
    deps d_;
    net::server_set server_;
    net::sse_options stream_;
    followed_client_tls tls_;  ///< its ca-file task is added with the others
    std::unique_ptr<auth::session_manager> session_;
    std::unique_ptr<config_sync_task> sync_;
    std::unique_ptr<dispatch_task> dispatch_;
    std::unique_ptr<heartbeat_task> heartbeat_;
    std::unique_ptr<realtime_task> realtime_;
};

}  // namespace tether::app
