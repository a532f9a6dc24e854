#include "app/common/run_program.hpp"
#include "app/gateway/commands.hpp"

#include <sys/prctl.h>

int main(int argc, char** argv)
{
    // The gateway holds the admin token and session tokens in memory.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const tether::app::program_spec program{"tether-gateway", "tether-gateway: the tether control plane.",
                                            tether::app::gateway_commands()};
    return tether::app::run_program(program, argc, argv, tether::app::cli::process_env());
}
