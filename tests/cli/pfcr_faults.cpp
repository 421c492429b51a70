// `pfcr` with faults injected, for the failure-path tests (test_pretrain_checkpoint.sh): the
// real command line (run_cli) plus hooks chosen by environment variables, which only this test
// program reads:
//   PFCR_TEST_NAN_AT=<round>:<client>       sets LayerNorm.weight[0] of that client to NaN just
//                                           before it trains in that round (the real
//                                           non-finite-loss check must fire);
//   PFCR_TEST_KILL_DURING_CHECKPOINT=<round> every rank raises SIGKILL half-way through writing
//                                           the checkpoint of that round;
//   PFCR_TEST_SIGNAL_AFTER_EPOCH=<client>:<epoch>  the rank fine-tuning that client raises
//                                           SIGUSR1 once it finished that epoch (a pre-emption
//                                           warning at a reproducible moment);
//   PFCR_TEST_FILL_DISK_DURING_CHECKPOINT=<round>:<file>  half-way through writing the
//                                           checkpoint of that round, the first rank there
//                                           creates <file> and writes it until the disk is full,
//                                           the others wait for <file>.done (a disk filling up
//                                           under a running write, at the same point every time).
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <limits>
#include <string>

#include "core/text.hpp"
#include "sim/cli.hpp"

int main(int argc, char** argv) {
    pfcr::FaultInjection faults;
    if (const char* at = std::getenv("PFCR_TEST_NAN_AT")) {
        const std::string where = at;
        faults.before_client_trains = [where](int64_t round, const pfcr::ClientSpec& c,
                                              pfcr::ModelState& state) {
            if (std::to_string(round) + ":" + std::to_string(c.id) != where) return;
            state.params[state.layout.at("LayerNorm.weight").offset] =
                std::numeric_limits<float>::quiet_NaN();
        };
    }
    if (const char* v = std::getenv("PFCR_TEST_KILL_DURING_CHECKPOINT")) {
        const auto round = pfcr::parse_int(v);
        faults.checkpoint.mid_write = [round](int64_t r) {
            if (round && *round == r) std::raise(SIGKILL);
        };
    }
    if (const char* at = std::getenv("PFCR_TEST_FILL_DISK_DURING_CHECKPOINT")) {
        const std::string spec = at;
        const auto colon = spec.find(':');
        const auto round = pfcr::parse_int(spec.substr(0, colon));
        const std::string file = colon == std::string::npos ? "" : spec.substr(colon + 1);
        faults.checkpoint.mid_write = [round, file](int64_t r) {
            if (!round || *round != r || file.empty()) return;
            const std::string done = file + ".done";
            const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd < 0) { // another rank fills it: wait until the disk is full (at most 60 s)
                for (int i = 0; i < 6000 && ::access(done.c_str(), F_OK) != 0; ++i) ::usleep(10000);
                return;
            }
            static const std::string block(65536, 'x');
            while (::write(fd, block.data(), block.size()) > 0) {
            }
            const std::string tail(1, 'x');
            while (::write(fd, tail.data(), 1) > 0) { // the last bytes too
            }
            ::close(fd);
            ::close(::open(done.c_str(), O_WRONLY | O_CREAT, 0644)); // an inode, no data block
        };
    }
    if (const char* at = std::getenv("PFCR_TEST_SIGNAL_AFTER_EPOCH")) {
        const std::string where = at;
        faults.after_finetune_epoch = [where](int64_t client, int64_t epoch) {
            if (std::to_string(client) + ":" + std::to_string(epoch) == where) std::raise(SIGUSR1);
        };
    }
    return pfcr::run_cli(argc, argv, faults);
}
