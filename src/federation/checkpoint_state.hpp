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
// A client's device profile as the JSON text stored in its stage_state (pre-training).
std::string profile_text(const ClientProfile& p);

// --- Pre-training. Server: the shared entries by name (and SCAFFOLD's control/<name>);
// clients: model/<name> of every private entry, optim/<name>/m|v of every entry, SCAFFOLD's
// control/<name>; counters: Adam step, rounds trained (rng_counter).
CheckpointContent pretrain_checkpoint(Federation& fed, CheckpointHeader header);
// Reads a pre-training checkpoint's server tensors and this rank's clients into `fed` after
// checking that its clients are the federation's (ids, domains, shards, train rows).
void restore_pretrain_state(Federation& fed, const CheckpointReader& r);

// --- Fine-tuning (docs/formats.md). Per client: model/<stored> of every entry (its final
// parameters, or the current ones while it trains), best/<stored> of every trainable entry
// (a frozen entry never changes, so its best is its model/), and with `with_optimizer` (a
// client still training) optim/<stored>/m|v of every entry. `layout` has id_items = 1:
// prompt-full's item embedding has its domain's rows, recorded per client as a rows override.
struct FinetunedClient {
    ClientSpec spec;
    const ModelState* state = nullptr; // parameters and Adam moments
    const float* best = nullptr;       // best parameters (layout of `state`)
    int64_t epochs = 0;                // epochs done (-> rng_counter)
};
// The clients (`all`, every client of the file, on every rank) and tensor list; no data.
CheckpointContent finetune_checkpoint(const ParamLayout& layout, CheckpointHeader header,
                                      const std::vector<ClientSpec>& all, bool with_optimizer);
// One client's data pointers, in the order of finetune_checkpoint's client_tensors.
CheckpointContent::Owned finetune_owned(const FinetunedClient& f, bool with_optimizer);
// Client `id` of a fine-tuning checkpoint into `state` (parameters; Adam moments and step if
// stored, else zero) and `best` (if not null; layout of `state`). Returns whether the
// optimizer state was stored.
bool read_finetune_state(const CheckpointReader& r, int64_t id, ModelState& state, float* best);
// A fine-tuning checkpoint's best (`best`) or final parameters of client `id` into `params`.
void read_finetuned(const CheckpointReader& r, int64_t id, const ParamLayout& layout, bool best,
                    float* params);

// A client's encoder from a pre-training checkpoint, tensor by tensor: /server/<name> if the
// server holds it, else /clients/<src>/model/<name>. Head entries (prompt tuning) are not in a
// pre-training checkpoint and keep whatever `params` holds.
void load_pretrained(const CheckpointReader& r, int64_t src, const ParamLayout& layout,
                     float* params);

} // namespace pfcr
