#include "gateway/sessions.hpp"

#include "auth/keys.hpp"
#include "base/random_bytes.hpp"

#include <algorithm>

namespace tether::gateway {

session_registry::session_registry(clock_fn now, session_limits limits)
    : now_(std::move(now)), limits_(limits)
{
}

using kind = storage::credential_kind;

std::string session_registry::new_challenge(storage& st, const std::string& node_id, std::int64_t* expires_ms)
{
    std::string c = random_bytes(32);
    const std::int64_t exp = now_() + limits_.challenge_ms;
    st.put_credential(kind::challenge, auth::sha256_hex(c), {node_id, "", exp, 0});
    if (expires_ms) *expires_ms = exp;
    return c;
}

bool session_registry::take_challenge(storage& st, const std::string& node_id, const std::string& c)
{
    // Single use, even when it did not match.
    const auto r = st.take_credential(kind::challenge, auth::sha256_hex(c), now_());
    return r && r->node_id == node_id;
}

issued_token session_registry::new_session(storage& st, const std::string& node_id, const std::string& org_id)
{
    issued_token t{secret(random_token(32)), now_() + limits_.session_ms};
    st.put_credential(kind::session, auth::sha256_hex(t.token.reveal()), {node_id, org_id, t.expires_ms, 0});
    st.trim_credentials(kind::session, node_id, std::max<std::size_t>(limits_.sessions_per_node, 1));
    return t;
}

std::optional<session_info> session_registry::find_session(storage& st, const secret& token)
{
    if (token.empty()) return std::nullopt;
    const auto r = st.find_credential(kind::session, auth::sha256_hex(token.reveal()), now_());
    if (!r) return std::nullopt;
    return session_info{r->node_id, r->org_id, r->expires_ms};
}

std::optional<issued_token> session_registry::new_stream_token(storage& st, const session_info& s)
{
    const auto now = now_();
    if (st.count_credentials(kind::stream_token, s.node_id, now) >= limits_.stream_tokens_per_node)
        return std::nullopt;
    issued_token t{secret(random_token(32)), std::min(now + limits_.stream_token_ms, s.expires_ms)};
    st.put_credential(kind::stream_token, auth::sha256_hex(t.token.reveal()),
                      {s.node_id, s.org_id, t.expires_ms, s.expires_ms});
    return t;
}

std::optional<session_info> session_registry::take_stream_token(storage& st, const secret& token)
{
    if (token.empty()) return std::nullopt;
    const auto r = st.take_credential(kind::stream_token, auth::sha256_hex(token.reveal()), now_());
    if (!r) return std::nullopt;
    return session_info{r->node_id, r->org_id, r->session_expires_ms};
}

void session_registry::drop_node(storage& st, const std::string& node_id)
{
    // Sessions stay: the contract answers a revoked node's session calls with
    // not_found (permanent), which the handlers do after checking storage.
    st.drop_credentials(kind::stream_token, node_id);
    st.drop_credentials(kind::challenge, node_id);
}

bool session_registry::allow_heartbeat(const std::string& node_id)
{
    const auto now = now_();
    const std::lock_guard lock(m_);
    auto& q = beats_[node_id];
    while (!q.empty() && q.front() <= now - 1000) q.pop_front();
    if (q.size() >= limits_.heartbeats_per_second) return false;
    q.push_back(now);
    return true;
}

bool session_registry::should_write(const std::string& node_id)
{
    const auto now = now_();
    const std::lock_guard lock(m_);
    auto [it, fresh] = last_write_.try_emplace(node_id, now);
    if (fresh) return true;
    if (now - it->second < limits_.heartbeat_write_every_ms) return false;
    it->second = now;
    return true;
}

void session_registry::prune(storage& st)
{
    const auto now = now_();
    st.prune_credentials(now);
    const std::lock_guard lock(m_);
    std::erase_if(beats_,
                  [&](const auto& kv) { return kv.second.empty() || kv.second.back() <= now - 1000; });
}

}  // namespace tether::gateway
