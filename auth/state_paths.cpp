#include "auth/state_paths.hpp"

namespace tether::auth {

std::filesystem::path default_state_dir(bool is_root, std::optional<std::string_view> xdg_state_home,
                                        std::optional<std::string_view> home)
{
    if (is_root) return "/var/lib/tether";
    // XDG says a relative XDG_STATE_HOME is invalid and must be ignored.
    if (xdg_state_home && !xdg_state_home->empty() && xdg_state_home->front() == '/')
        return std::filesystem::path(*xdg_state_home) / "tether";
    if (home && !home->empty()) return std::filesystem::path(*home) / ".local/state/tether";
    return std::filesystem::path(".tether-state");
}

}  // namespace tether::auth
