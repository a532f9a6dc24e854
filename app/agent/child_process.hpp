// Starting `tether exec`'s child (Linux): its environment without our
// credential variables, posix_spawn with the broker's channel as fd 3 and
// nothing else inherited, clean signal state, and its exit status as a
// shell reports it.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <string>
#include <vector>

namespace tether::app {

/// Our environment minus anything that names a credential source and the
/// `withheld` variables (NAME: secrets given to us, TETHER_CODE), plus the
/// broker's three variables (TETHER_CRED_FD, TETHER_API_BASE, TETHER_SENTINEL)
/// and `extra` ("NAME=value": TETHER_CONFIG_FILE, TETHER_CONFIG_URL), which
/// replace any of the same name we were given.
std::vector<std::string> child_environment(const std::string& sentinel, const std::vector<std::string>& extra,
                                           const std::vector<std::string>& withheld);

/// posix_spawn with `channel` as fd 3 and nothing else above 2, an empty
/// signal mask and default dispositions. Throws fatal_exit 127 (not found)
/// or 126 (cannot run), as shells do.
pid_t spawn_child(const std::vector<std::string>& argv, const std::vector<std::string>& env, int channel);

/// 0-255 for an exit, 128 + N for death by signal N.
int status_code(int wstatus);

/// The signals `tether exec` passes on to its child (SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT): blocked from before the spawn until the watch task
/// handles them.
sigset_t forwarded_signals();

}  // namespace tether::app
