// Where a node keeps its identity, and the names of the files in it.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

namespace tether::auth {

/// The default state directory: /var/lib/tether for root,
/// $XDG_STATE_HOME/tether (or ~/.local/state/tether) for anyone else.
/// The environment values are passed in so tests need not mutate the
/// process environment.
std::filesystem::path default_state_dir(bool is_root, std::optional<std::string_view> xdg_state_home,
                                        std::optional<std::string_view> home);

struct state_paths {
    std::filesystem::path dir;
    [[nodiscard]] std::filesystem::path state_file() const { return dir / "state.json"; }
    [[nodiscard]] std::filesystem::path key_file() const { return dir / "node.key"; }
    [[nodiscard]] std::filesystem::path lock_file() const { return dir / "lock"; }
    [[nodiscard]] std::filesystem::path config_file() const { return dir / "config.json"; }
};

}  // namespace tether::auth
