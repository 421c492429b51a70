// See signals.hpp.
#include "sim/signals.hpp"

#include <csignal>

namespace pfcr {
namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int) {
    g_stop = 1;
}

} // namespace

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; // MPI and file I/O calls continue; the loop polls the flag
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);
    sa.sa_flags |= SA_RESETHAND; // a second Ctrl-C: the default action, the process ends
    sigaction(SIGINT, &sa, nullptr);
}

bool stop_requested() {
    return g_stop != 0;
}

void clear_stop_request() {
    g_stop = 0;
}

} // namespace pfcr
