// Test helper: rewrites state.json in a loop until killed, so a test can
// SIGKILL it at arbitrary moments and check the file is never broken.
#include "auth/state_store.hpp"

#include <string>

int main(int argc, char** argv)
{
    if (argc != 2) return 2;
    const tether::auth::state_paths paths{argv[1]};
    tether::auth::node_state s;
    s.server_url = "http://127.0.0.1:1";
    s.node_id = "node-kill9";
    s.api_key = tether::secret("api-key");
    for (unsigned long i = 0;; ++i) {
        // Vary the size so a torn write would show as bad JSON.
        s.node_name = "writer-" + std::to_string(i) + std::string(i % 4096, 'x');
        tether::auth::save_state(paths, s);
    }
}
