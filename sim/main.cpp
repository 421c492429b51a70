// The `pfcr` executable. All of it is the library's: src/sim/cli.cpp parses the command line
// and runs the subcommand.
#include "sim/cli.hpp"

int main(int argc, char** argv) {
    return pfcr::run_cli(argc, argv);
}
