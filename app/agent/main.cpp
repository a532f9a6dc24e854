#include "app/agent/commands.hpp"
#include "app/common/run_program.hpp"

#include <sys/prctl.h>

int main(int argc, char** argv)
{
    // Before anything holds a secret: no core dumps, no ptrace by same-uid peers.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const tether::app::program_spec program{"tether", "tether: node agent for the tether control plane.",
                                            tether::app::agent_commands()};
    return tether::app::run_program(program, argc, argv, tether::app::cli::process_env());
}
