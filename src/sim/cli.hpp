// The `pfcr` command line as a library function: sim/main.cpp is `return run_cli(argc, argv)`,
// and tests run the same command line with faults injected (tests/cli/pfcr_faults.cpp).
#pragma once

#include "sim/faults.hpp"

namespace pfcr {

// Parses argv, runs one subcommand, returns the process exit status (0, 1, 75, or CLI11's
// usage codes). Errors are printed here, once: `[rank r] error: ...`.
int run_cli(int argc, char** argv, const FaultInjection& faults = {});

} // namespace pfcr
