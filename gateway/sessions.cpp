#include "gateway/sessions.hpp"

#include "auth/keys.hpp"
#include "base/random_bytes.hpp"

#include <algorithm>

namespace tether::gateway {

namespace {

/// Whether a heartbeat at `t` no longer counts against the per-second limit
/// at `now`. One ahead of now does not count either: the wall clock went
/// back (an NTP step), and kept it would refuse the node until the clock
/// caught up.
bool beat_gone(std::int64_t t, std::int64_t now)
{
    return t <= now - 1000 || t > now;
}

}  // namespace

session_registry::session_registry(clock_fn now, session_limits limits)
    : now_(std::move(now)), limits_(limits)
{
}

using kind = credential_kind;

awaitable<session_registry::challenge> session_registry::new_challenge(store& st, std::string node_id)
{
    challenge c{random_bytes(32), now_() + limits_.challenge_ms};
    const credential_record r{std::move(node_id), "", c.expires_ms, 0};
    co_await st.put_credential(kind::challenge, auth::sha256_hex(c.bytes), r, 0);
    co_return c;
}

awaitable<bool> session_registry::take_challenge(store& st, std::string node_id, std::string c)
{
    // Single use, even when it did not match.
    const auto r = co_await st.take_credential(kind::challenge, auth::sha256_hex(c), now_());
    const bool ok = r && r->node_id == node_id;
    co_return ok;
}

awaitable<issued_token> session_registry::new_session(store& st, std::string node_id, std::string org_id)
{
    issued_token t{secret(random_token(32)), now_() + limits_.session_ms};
    const credential_record r{std::move(node_id), std::move(org_id), t.expires_ms, 0};
    co_await st.put_credential(kind::session, auth::sha256_hex(t.token.reveal()), r,
                               std::max<std::size_t>(limits_.sessions_per_node, 1));
    co_return t;
}

awaitable<std::optional<session_info>> session_registry::find_session(store& st, secret token)
{
    std::optional<session_info> out;
    if (token.empty()) co_return out;
    const auto r = co_await st.find_credential(kind::session, auth::sha256_hex(token.reveal()), now_());
    if (r) out = session_info{r->node_id, r->org_id, r->expires_ms};
    co_return out;
}

awaitable<std::optional<issued_token>> session_registry::new_stream_token(store& st, session_info s)
{
    const auto now = now_();
    std::optional<issued_token> out;
    issued_token t{secret(random_token(32)), std::min(now + limits_.stream_token_ms, s.expires_ms)};
    const credential_record r{s.node_id, s.org_id, t.expires_ms, s.expires_ms};
    const bool stored = co_await st.put_credential_capped(
        kind::stream_token, auth::sha256_hex(t.token.reveal()), r, limits_.stream_tokens_per_node, now);
    if (stored) out = std::move(t);
    co_return out;
}

awaitable<std::optional<session_info>> session_registry::take_stream_token(store& st, secret token)
{
    std::optional<session_info> out;
    if (token.empty()) co_return out;
    const auto r = co_await st.take_credential(kind::stream_token, auth::sha256_hex(token.reveal()), now_());
    if (r) out = session_info{r->node_id, r->org_id, r->session_expires_ms};
    co_return out;
}

bool session_registry::allow_heartbeat(const std::string& node_id)
{
    const auto now = now_();
    const std::lock_guard lock(m_);
    auto& q = beats_[node_id];
    while (!q.empty() && beat_gone(q.front(), now)) q.pop_front();
    if (q.size() >= limits_.heartbeats_per_second) return false;
    q.push_back(now);
    return true;
}

awaitable<void> session_registry::prune(store& st)
{
    const auto now = now_();
    co_await st.prune_credentials(now);
    const std::lock_guard lock(m_);
    std::erase_if(beats_,
                  [&](const auto& kv) { return kv.second.empty() || beat_gone(kv.second.back(), now); });
}

}  // namespace tether::gateway
