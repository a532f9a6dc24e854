#include "gateway/sessions.hpp"

#include "auth/keys.hpp"
#include "base/random_bytes.hpp"

#include <algorithm>

namespace tether::gateway {

session_registry::session_registry(clock_fn now, session_limits limits)
    : now_(std::move(now)), limits_(limits)
{
}

std::string session_registry::new_challenge(const std::string& node_id, std::int64_t* expires_ms)
{
    std::string c = random_bytes(32);
    const std::int64_t exp = now_() + limits_.challenge_ms;
    const std::lock_guard lock(m_);
    challenges_[auth::sha256_hex(c)] = {node_id, exp};
    if (expires_ms) *expires_ms = exp;
    return c;
}

bool session_registry::take_challenge(const std::string& node_id, const std::string& c)
{
    const auto key = auth::sha256_hex(c);
    const std::lock_guard lock(m_);
    const auto it = challenges_.find(key);
    if (it == challenges_.end()) return false;
    const bool ok = it->second.node_id == node_id && it->second.expires_ms > now_();
    challenges_.erase(it);  // single use, even when it did not match
    return ok;
}

issued_token session_registry::new_session(const std::string& node_id, const std::string& org_id)
{
    issued_token t{secret(random_token(32)), now_() + limits_.session_ms};
    const auto key = auth::sha256_hex(t.token.reveal());
    const std::lock_guard lock(m_);
    sessions_[key] = {node_id, org_id, t.expires_ms};
    auto& mine = node_sessions_[node_id];
    mine.push_back(key);
    // Keys pruned on expiry may still be listed here: erasing them is a no-op.
    while (mine.size() > std::max<std::size_t>(limits_.sessions_per_node, 1)) {
        sessions_.erase(mine.front());
        mine.pop_front();
    }
    return t;
}

std::optional<session_info> session_registry::find_session(const secret& token)
{
    if (token.empty()) return std::nullopt;
    const auto key = auth::sha256_hex(token.reveal());
    const std::lock_guard lock(m_);
    const auto it = sessions_.find(key);
    if (it == sessions_.end() || it->second.expires_ms <= now_()) return std::nullopt;
    return it->second;
}

std::optional<issued_token> session_registry::new_stream_token(const session_info& s)
{
    const auto now = now_();
    issued_token t{secret(random_token(32)), std::min(now + limits_.stream_token_ms, s.expires_ms)};
    const std::lock_guard lock(m_);
    std::size_t live = 0;
    for (const auto& [k, v] : stream_tokens_)
        if (v.node_id == s.node_id && v.expires_ms > now) ++live;
    if (live >= limits_.stream_tokens_per_node) return std::nullopt;
    const auto key = auth::sha256_hex(t.token.reveal());
    stream_tokens_[key] = {s.node_id, s.org_id, t.expires_ms};
    stream_session_[key] = s.expires_ms;
    return t;
}

std::optional<session_info> session_registry::take_stream_token(const secret& token)
{
    if (token.empty()) return std::nullopt;
    const auto key = auth::sha256_hex(token.reveal());
    const std::lock_guard lock(m_);
    const auto it = stream_tokens_.find(key);
    if (it == stream_tokens_.end()) return std::nullopt;
    session_info grant = it->second;
    grant.expires_ms = stream_session_[key];
    const bool live = it->second.expires_ms > now_();
    stream_tokens_.erase(it);
    stream_session_.erase(key);
    if (!live) return std::nullopt;
    return grant;
}

void session_registry::drop_node(const std::string& node_id)
{
    const std::lock_guard lock(m_);
    // Sessions stay: the contract answers a revoked node's session calls with
    // not_found (permanent), which the handlers do after checking storage.
    for (auto it = stream_tokens_.begin(); it != stream_tokens_.end();) {
        if (it->second.node_id == node_id) {
            stream_session_.erase(it->first);
            it = stream_tokens_.erase(it);
        } else {
            ++it;
        }
    }
    std::erase_if(challenges_, [&](const auto& kv) { return kv.second.node_id == node_id; });
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

void session_registry::prune()
{
    const auto now = now_();
    const std::lock_guard lock(m_);
    std::erase_if(challenges_, [&](const auto& kv) { return kv.second.expires_ms <= now; });
    std::erase_if(sessions_, [&](const auto& kv) { return kv.second.expires_ms <= now; });
    for (auto it = node_sessions_.begin(); it != node_sessions_.end();) {
        std::erase_if(it->second, [&](const std::string& key) { return !sessions_.contains(key); });
        it = it->second.empty() ? node_sessions_.erase(it) : std::next(it);
    }
    for (auto it = stream_tokens_.begin(); it != stream_tokens_.end();) {
        if (it->second.expires_ms <= now) {
            stream_session_.erase(it->first);
            it = stream_tokens_.erase(it);
        } else {
            ++it;
        }
    }
    std::erase_if(beats_,
                  [&](const auto& kv) { return kv.second.empty() || kv.second.back() <= now - 1000; });
}

}  // namespace tether::gateway
