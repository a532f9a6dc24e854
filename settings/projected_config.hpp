// The applied config published in a directory the way Kubernetes projects a
// ConfigMap volume, for workloads that read a file (`tether run
// --config-out DIR`): each version's payload in its own `..<version>`
// directory, a `..data` symlink swapped onto it with one rename, and the
// visible `config.json` a symlink through `..data`. A reader never sees a
// half-written or mixed file, and an inotify watcher on DIR sees one change
// per version (the `..data` rename). Blocking file I/O: run it where
// blocking is allowed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tether::settings {

struct projection_options {
    std::filesystem::path dir;
    mode_t mode = 0640;  ///< of config.json
    /// Group of config.json (chown; as root any, otherwise one of ours).
    std::optional<gid_t> group;
};

/// Publishes `document` (the bytes of config.json) as version `version`,
/// durably: files and directories are fsynced before and after the swap.
/// Returns false, writing nothing, when DIR already shows exactly these
/// bytes. Keeps the previous version's directory (a reader may be walking
/// through it), removes older ones and whatever an interrupted run left.
/// Throws std::runtime_error naming the path and the system's reason.
bool project_config(const projection_options& o, std::int64_t version, std::string_view document);

/// Creates DIR when missing and checks that it is a directory this process
/// can write; throws std::runtime_error otherwise. For start-up, so a bad
/// --config-out fails at once, not at the first publish.
void prepare_projection_dir(const projection_options& o);

/// What DIR's config.json shows now, or nullopt when nothing was published.
std::optional<std::string> projected_document(const std::filesystem::path& dir);

/// The name `..data` points at ("..<version>", maybe with a suffix), or
/// nullopt.
std::optional<std::string> projected_version_dir(const std::filesystem::path& dir);

/// "0640" (octal, at most 0777) for --config-mode, or nullopt.
std::optional<mode_t> parse_file_mode(std::string_view text);

}  // namespace tether::settings
