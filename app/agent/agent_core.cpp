#include "app/agent/agent_core.hpp"

#include "app/common/client_flags.hpp"

#include <grp.h>

#include <algorithm>

namespace tether::app {

std::optional<gid_t> group_flag(const invocation& inv, std::string_view flag)
{
    const auto g = inv.args.value(flag);
    if (!g) return std::nullopt;
    if (!g->empty() && g->size() < 10 && g->find_first_not_of("0123456789") == std::string::npos)
        return static_cast<gid_t>(std::stoul(*g));
    group gr{};
    group* found = nullptr;
    std::vector<char> buf(16384);
    if (::getgrnam_r(g->c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
        throw cli::usage_error(inv.args.origin(flag) + ": no group named '" + *g + "'");
    return found->gr_gid;
}

/// --config-out, --config-mode, --config-group; nullopt without --config-out.
std::optional<settings::projection_options> projection_flags(const invocation& inv,
                                                             const std::filesystem::path& state_dir)
{
    const auto dir = inv.args.value("config-out");
    for (const char* f : {"config-mode", "config-group"})
        if (!dir && inv.args.value(f)) throw cli::usage_error(inv.args.origin(f) + " needs --config-out DIR");
    if (!dir) return std::nullopt;
    settings::projection_options o;
    if (dir->empty()) throw cli::usage_error(inv.args.origin("config-out") + " must name a directory");
    o.dir = std::filesystem::absolute(*dir);
    std::error_code ec;
    if (std::filesystem::equivalent(o.dir, state_dir, ec))
        throw cli::usage_error(inv.args.origin("config-out") +
                               " must not be the state directory (it is private to the agent)");
    if (auto m = inv.args.value("config-mode")) {
        const auto mode = settings::parse_file_mode(*m);
        if (!mode)
            throw cli::usage_error(inv.args.origin("config-mode") +
                                   " must be an octal mode like 0640, not '" + *m + "'");
        // The workloads only read the file; anyone else who could write it
        // would decide what they run with until the next version.
        if ((*mode & 0022) != 0)
            throw cli::usage_error(inv.args.origin("config-mode") + ": '" + *m +
                                   "' lets others than the agent write config.json; give one without "
                                   "group or other write, like 0640 or 0644");
        o.mode = *mode;
    }
    o.group = group_flag(inv, "config-group");
    return o;
}

// The URL policy applies before any request.
agent_core::agent_core(deps d)
    : d_(std::move(d)),
      server_(parse_server_list(d_.state.server_url, d_.paths.state_file().string() + " serverUrl", d_.rand))
{
    auto& inv = d_.inv;
    std::vector<net::url> given;
    for (const auto& v : inv.args.values("realtime-url"))
        given.push_back(parse_url_flag(v, inv.args.origin("realtime-url")));
    stream_.candidates = realtime_candidates(server_, given);
    // Several --server URLs and no --realtime-url: the streams are the
    // replicas', equals in the shuffled order; a dead one is left at once.
    stream_.peers = given.empty() && server_.size() > 1;
    // Realtime only speeds updates up (heartbeats catch up on the rest): a
    // proxy's login page or a 4xx is retried slowly, never the end of it.
    stream_.never_give_up = true;
    if (auto v = inv.args.duration("stream-read-timeout", cli::at_least(std::chrono::seconds(1))))
        stream_.read_timeout = *v;
    const bool tls_needed =
        any_tls(server_) || std::any_of(stream_.candidates.begin(), stream_.candidates.end(),
                                        [](const net::url& u) { return u.tls(); });
    tls_ = make_followed_client_tls(inv, tls_needed);
    const auto beat_every = inv.args.duration("heartbeat-interval").value_or(std::chrono::seconds(30));

    session_ = std::make_unique<auth::session_manager>(d_.ex, d_.blocking, server_, tls_.tls, d_.paths,
                                                       d_.state, d_.key, inv.log);
    sync_ = std::make_unique<config_sync_task>(config_sync_task::deps{
        d_.ex, d_.store, *session_, server_, tls_.tls, d_.paths, d_.blocking, d_.metrics, inv.log, d_.rand});
    dispatch_ =
        std::make_unique<dispatch_task>(dispatch_task::deps{d_.ex, d_.metrics.dispatch, inv.log, d_.rand});
    add_agent_handlers(*dispatch_, *sync_, d_.state.node_id,
                       confirm_with_gateway(*session_, server_, tls_.tls), inv.log);
    heartbeat_ = std::make_unique<heartbeat_task>(heartbeat_task::deps{*session_,
                                                                       server_,
                                                                       tls_.tls,
                                                                       d_.store,
                                                                       *sync_,
                                                                       d_.metrics,
                                                                       inv.log,
                                                                       d_.rand,
                                                                       beat_every,
                                                                       TETHER_VERSION,
                                                                       {"heartbeat", "config", "events"},
                                                                       settings::heartbeat_interval_bounds,
                                                                       d_.applied});
    realtime_ = std::make_unique<realtime_task>(realtime_task::deps{
        stream_, *session_, server_, tls_.tls, *dispatch_, *sync_, d_.metrics, inv.log, d_.rand});
}

void agent_core::add_tasks(supervisor& sup)
{
    task_policy restart;
    restart.failure = task_policy::on_failure::restart;
    sup.add(
        "heartbeat", [this] { return heartbeat_->run(); }, restart);
    sup.add(
        "config-sync", [this] { return sync_->run(); }, restart);
    sup.add(
        "dispatcher", [this] { return dispatch_->run(); }, restart);
    if (!d_.inv.args.enabled("no-realtime"))
        sup.add(
            "realtime", [this] { return realtime_->run(); }, restart);
    tls_.add_task(sup, d_.blocking, d_.inv.log);
}

}  // namespace tether::app
