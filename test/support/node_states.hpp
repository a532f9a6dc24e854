// The node identities tests hand to agent pieces: a scripted one, or the
// one a real gateway enrolled.
#pragma once

#include "auth/state_store.hpp"
#include "net/url.hpp"

#include <string>

namespace tether::test {

/// "node-1" with api key "k", talking to `server` (any scripted gateway
/// logs it in).
inline auth::node_state scripted_node(const net::url& server, std::string node_id = "node-1")
{
    auth::node_state st;
    st.server_url = server.origin();
    st.node_id = std::move(node_id);
    st.api_key = secret("k");
    return st;
}

/// The identity a gateway gave at enrollment (`n` from gateway_fixture::enroll).
template <class Enrolled>
auth::node_state enrolled_state(const Enrolled& n, const net::url& server)
{
    auth::node_state st;
    st.server_url = server.origin();
    st.node_id = n.node_id;
    st.org_id = n.org_id;
    st.api_key = n.api_key;
    return st;
}

}  // namespace tether::test
