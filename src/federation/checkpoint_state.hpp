// Which state goes where in a checkpoint: the one mapping between the stages' in-memory state
// (a Federation's server and clients in pre-training; each client's final, best and Adam
// state in fine-tuning) and the tensors of the checkpoint format (io/checkpoint_schema.hpp
// names them; io/checkpoint.hpp writes and reads them). Stages fill a CheckpointHeader and call
// these; they never build a dataset name themselves. No file I/O of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "federation/engine.hpp"
#include "io/checkpoint.hpp"
#include "model/params.hpp"
#include "model/trainer.hpp"

namespace pfcr {

// The name a client parameter is stored under: model/<name> for the encoder, prompt/<name>
// for a fine-tuning head (ParamEntry::key()).
std::string stored_name(const ParamEntry& e);

// --- Pre-training. Server: the shared entries by name (and SCAFFOLD's control/<name>);
// clients: model/<name> of every private entry, optim/<name>/m|v of every entry, SCAFFOLD's
// control/<name>; counters: Adam step, rounds trained (rng_counter).
CheckpointContent pretrain_checkpoint(Federation& fed, CheckpointHeader header);
// Reads a pre-training checkpoint's server tensors and this rank's clients into `fed` after
// checking that its clients are the federation's (ids, domains, shards, train rows).
void restore_pretrain_state(Federation& fed, const CheckpointReader& r);

// --- Fine-tuning. Per client: model/<name> (prompt/<name>), best/<stored>, optim/<stored>/m|v
// of every entry of `layout` (id_items = 1: prompt-full's item embedding has its domain's rows,
// recorded per client as a rows override).
struct FinetunedClient {
    ClientSpec spec;
    const ModelState* state = nullptr; // final parameters and Adam moments
    const float* best = nullptr;       // best parameters (layout of `state`)
    int64_t epochs_run = 0;
};
// `all` lists every client of the stage (on every rank); `mine` this rank's.
CheckpointContent finetune_checkpoint(const ParamLayout& layout, CheckpointHeader header,
                                      const std::vector<ClientSpec>& all,
                                      const std::vector<FinetunedClient>& mine);
// A fine-tuning checkpoint's best (`best`) or final parameters of client `id` into `params`.
void read_finetuned(const CheckpointReader& r, int64_t id, const ParamLayout& layout, bool best,
                    float* params);

// A client's encoder from a pre-training checkpoint, tensor by tensor: /server/<name> if the
// server holds it, else /clients/<src>/model/<name>. Head entries (prompt tuning) are not in a
// pre-training checkpoint and keep whatever `params` holds.
void load_pretrained(const CheckpointReader& r, int64_t src, const ParamLayout& layout,
                     float* params);

} // namespace pfcr
