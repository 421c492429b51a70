// Fault injection: the hooks a test puts in the run context to provoke the failures pfcr must
// survive (a non-finite loss, a crash in the middle of a checkpoint write). Production passes
// an empty FaultInjection, so every hook is an empty std::function that is never called; no
// library code reads the environment for test switches. tests/cli/pfcr_faults.cpp builds them.
#pragma once

#include <cstdint>
#include <functional>

#include "federation/engine.hpp"
#include "io/checkpoint.hpp"

namespace pfcr {

struct FaultInjection {
    Federation::ClientHook before_client_trains; // pre-training: a client's model, per round
    CheckpointFaults checkpoint;                 // every checkpoint write of the run
    // Fine-tuning: after client `client` finished epoch `epoch` (before its progress is saved),
    // e.g. to raise SIGUSR1 there.
    std::function<void(int64_t client, int64_t epoch)> after_finetune_epoch;
};

} // namespace pfcr
