#include "gateway/sqlite_store.hpp"

#include "base/blocking_call.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace tether::gateway {

sqlite_store::sqlite_store(storage& db, asio::any_io_executor storage_thread)
    : db_(db), thread_(std::move(storage_thread))
{
}

template <class R>
awaitable<R> sqlite_store::on_thread(std::function<R(storage&)> step)
{
    std::function<R()> bound = [this, step = std::move(step)] {
        return step(db_);
    };
    R out = co_await blocking_call(thread_, std::move(bound));
    co_return out;
}

event_record sqlite_store::append(const std::string& org, const std::string& type, const std::string& data,
                                  std::size_t keep)
{
    event_record e{db_.append_event(org, type, data, keep), org, type, data};
    feed(e);
    return e;
}

void sqlite_store::feed(const event_record& e)
{
    // Still on the storage thread: the sink sees ids in commit order.
    fed_ = e.id;
    if (sink_) sink_({e});
}

awaitable<void> sqlite_store::add_enrollment_code(std::string code_hash, std::string org_id,
                                                  std::int64_t expires_ms, std::int64_t uses)
{
    std::function<int(storage&)> step = [&](storage& st) {
        st.add_enrollment_code(code_hash, org_id, expires_ms, uses);
        return 0;
    };
    co_await on_thread(std::move(step));
}

awaitable<std::int64_t> sqlite_store::remove_enrollment_codes(std::string code_hash, std::string org_id)
{
    std::function<std::int64_t(storage&)> step = [&](storage& st) {
        return st.remove_enrollment_codes(code_hash, org_id);
    };
    const auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<store::enrollment> sqlite_store::enroll(std::string code_hash, node_record n, std::int64_t now_ms)
{
    std::function<enrollment(storage&)> step = [&](storage& st) {
        enrollment out;
        // One transaction: a node that could not be stored must not have
        // spent a use of the code (a single-use code would be gone).
        st.atomically([&] {
            const auto org = st.consume_enrollment_code(code_hash, now_ms);
            if (!org) return;
            out.org_id = *org;
            if (st.public_key_taken(n.public_key)) {
                // The code stays usable: the node only needs a key of its own.
                st.release_enrollment_code(code_hash);
                out.outcome = enroll_outcome::key_taken;
                return;
            }
            n.org_id = *org;
            st.insert_node(n);
            out.outcome = enroll_outcome::enrolled;
        });
        return out;
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::optional<login_record>> sqlite_store::find_login(std::string node_id)
{
    std::function<std::optional<login_record>(storage&)> step = [&](storage& st) {
        return st.find_login(node_id);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::optional<node_record>> sqlite_store::find_node(std::string node_id)
{
    std::function<std::optional<node_record>(storage&)> step = [&](storage& st) {
        return st.find_node(node_id);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<bool> sqlite_store::node_is_live(std::string node_id)
{
    std::function<bool(storage&)> step = [&](storage& st) {
        const auto n = st.find_node(node_id);
        return n && !n->revoked;
    };
    const bool out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<live_config> sqlite_store::record_heartbeat(std::string node_id, std::string org_id,
                                                      std::int64_t now_ms, std::int64_t write_every_ms,
                                                      std::optional<heartbeat_report> report)
{
    std::function<live_config(storage&)> step = [&](storage& st) {
        live_config out;
        const auto n = st.find_node(node_id);
        out.alive = n && !n->revoked;
        if (!out.alive) return out;
        // write_every_ms < 0: a read only (config_if_live).
        if (report && !report->capabilities) report->capabilities = n->capabilities;
        const bool changed =
            report && (report->applied_config_at != n->applied_config_at ||
                       report->agent_version != n->agent_version || *report->capabilities != n->capabilities);
        // A last_seen further ahead of now than replicas' clocks differ:
        // the wall clock went back (an NTP step). Written at once, or it
        // would stand still until the clock caught up, and the node would
        // count as offline all that time (see online_span).
        const bool clock_went_back = n->last_seen_ms > now_ms + clock_skew_allowance_ms;
        // A change goes at once, but a node that changes its story on every
        // beat still costs at most a write a second.
        if (write_every_ms >= 0 && changed &&
            (clock_went_back || n->last_seen_ms <= now_ms - std::min<std::int64_t>(write_every_ms, 1000))) {
            st.record_report(node_id, now_ms, *report);
            out.report_written = true;
        } else if (write_every_ms >= 0 && (clock_went_back || n->last_seen_ms <= now_ms - write_every_ms))
            st.touch_node(node_id, now_ms);
        out.cfg = st.latest_config(org_id);
        return out;
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::optional<config_record>> sqlite_store::latest_config(std::string org_id)
{
    std::function<std::optional<config_record>(storage&)> step = [&](storage& st) {
        return st.latest_config(org_id);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::vector<node_record>> sqlite_store::list_nodes(std::string org_id, std::string after_id,
                                                             std::size_t limit)
{
    std::function<std::vector<node_record>(storage&)> step = [&](storage& st) {
        return st.list_nodes(org_id, after_id, limit);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<rollout_counts> sqlite_store::rollout(std::string org_id, std::int64_t latest_at,
                                                online_span online, std::string after_id, std::size_t limit)
{
    std::function<rollout_counts(storage&)> step = [&](storage& st) {
        return st.rollout(org_id, latest_at, online, after_id, limit);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::vector<std::string>> sqlite_store::node_orgs(std::size_t limit)
{
    std::function<std::vector<std::string>(storage&)> step = [&](storage& st) {
        return st.node_orgs(limit);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::int64_t> sqlite_store::append_event(std::string org_id, std::string type, std::string data,
                                                   std::size_t keep)
{
    std::function<std::int64_t(storage&)> step = [&](storage&) {
        return append(org_id, type, data, keep).id;
    };
    const auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::optional<event_record>> sqlite_store::revoke_node(std::string node_id, std::size_t keep)
{
    std::function<std::optional<event_record>(storage&)> step =
        [&](storage& st) -> std::optional<event_record> {
        std::optional<event_record> out;
        // A revocation and its event commit together: a node revoked with
        // no event would run on until its next heartbeat.
        st.atomically([&] {
            const auto n = st.find_node(node_id);
            if (!n || !st.revoke_node(node_id)) return;
            st.drop_credentials(credential_kind::stream_token, node_id);
            st.drop_credentials(credential_kind::challenge, node_id);
            const auto data = boost::json::serialize(boost::json::object{{"nodeId", node_id}});
            out = event_record{st.append_event(n->org_id, "node-revoked", data, keep), n->org_id,
                               "node-revoked", data};
        });
        if (out) feed(*out);
        return out;
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::int64_t> sqlite_store::forget_nodes(std::string org_id, std::int64_t seen_before_ms)
{
    std::function<std::int64_t(storage&)> step = [&](storage& st) {
        return st.forget_nodes(org_id, seen_before_ms);
    };
    const auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<publish_outcome> sqlite_store::publish_config(std::string org_id, std::string document,
                                                        std::int64_t now_ms,
                                                        std::optional<std::int64_t> if_latest,
                                                        std::size_t keep)
{
    std::function<publish_outcome(storage&)> step = [&](storage& st) {
        publish_outcome done;
        std::optional<event_record> announced;
        // The version and its event commit together: a version stored with
        // no event reaches no stream, and the publish answered as failed
        // would be stored all the same.
        st.atomically([&] {
            done = st.publish_config(org_id, document, now_ms, if_latest);
            if (!done.stored) return;
            const auto data =
                boost::json::serialize(boost::json::object{{"configUpdatedAt", done.updated_at}});
            announced = event_record{st.append_event(org_id, "config-updated", data, keep), org_id,
                                     "config-updated", data};
        });
        if (announced) feed(*announced);
        return done;
    };
    const auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<event_history> sqlite_store::replay(std::string org_id, std::optional<std::int64_t> after_id,
                                              std::size_t limit)
{
    std::function<event_history(storage&)> step = [&](storage& st) {
        event_history out;
        const auto pruned = st.pruned_upto(org_id);
        const auto newest = st.last_event_id();
        out.reset = !after_id || *after_id < pruned || *after_id > newest;
        out.events = st.events_after(org_id, out.reset ? 0 : *after_id);
        if (out.events.size() > limit) {
            out.reset = true;
            out.events.erase(out.events.begin(), out.events.end() - static_cast<std::ptrdiff_t>(limit));
        }
        return out;
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<void> sqlite_store::put_credential(credential_kind k, std::string hash, credential_record r,
                                             std::size_t keep)
{
    std::function<int(storage&)> step = [&](storage& st) {
        st.put_credential(k, hash, r);
        if (keep > 0) st.trim_credentials(k, r.node_id, keep);
        return 0;
    };
    co_await on_thread(std::move(step));
}

awaitable<bool> sqlite_store::put_credential_capped(credential_kind k, std::string hash, credential_record r,
                                                    std::size_t max_live, std::int64_t now_ms)
{
    std::function<bool(storage&)> step = [&](storage& st) {
        if (st.count_credentials(k, r.node_id, now_ms) >= max_live) return false;
        st.put_credential(k, hash, r);
        return true;
    };
    const bool out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::optional<credential_record>> sqlite_store::take_credential(credential_kind k, std::string hash,
                                                                          std::int64_t now_ms)
{
    std::function<std::optional<credential_record>(storage&)> step = [&](storage& st) {
        return st.take_credential(k, hash, now_ms);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<std::optional<credential_record>> sqlite_store::find_credential(credential_kind k, std::string hash,
                                                                          std::int64_t now_ms)
{
    std::function<std::optional<credential_record>(storage&)> step = [&](storage& st) {
        return st.find_credential(k, hash, now_ms);
    };
    auto out = co_await on_thread(std::move(step));
    co_return out;
}

awaitable<void> sqlite_store::prune_credentials(std::int64_t now_ms)
{
    std::function<int(storage&)> step = [&](storage& st) {
        st.prune_credentials(now_ms);
        return 0;
    };
    co_await on_thread(std::move(step));
}

awaitable<void> sqlite_store::ping()
{
    std::function<int(storage&)> step = [](storage& st) {
        (void)st.last_event_id();
        return 0;
    };
    co_await on_thread(std::move(step));
}

store_status sqlite_store::status() const
{
    store_status s;
    s.feed_cursor = fed_.load();
    return s;
}

}  // namespace tether::gateway
