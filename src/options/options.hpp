// The one place where configuration keys become typed options. `resolve_options` reads the
// resolved Config (io/config.hpp: YAML files + --set, checked against the schema) once and
// returns one struct per concern (data, synth, model/train, federation + privacy, fine-tuning,
// evaluation, checkpoints, execution); the stages, the engine and the trainer take these
// structs and never look a key up by name. A newcomer follows a key from its schema entry
// (io/config_schema.cpp) to the field set here, and from the field to its use.
// Also here: comparisons of two configs by key role (what may differ between a run and its
// resumption, a checkpoint and the config that reads it, prepared.h5 and its manifest).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "data/prepare.hpp"
#include "data/synth.hpp"
#include "federation/engine.hpp"
#include "io/config.hpp"
#include "model/trainer.hpp"

namespace pfcr {

struct FinetuneOptions {
    std::string mode = "full";        // finetune.mode: full | prompt-full | prompt-light
    int64_t epochs = 300;             // epochs: most fine-tuning epochs
    int64_t stopping_step = 10;       // stopping_step: early-stopping patience
    std::vector<std::string> domains; // finetune.domains (empty = every domain)
    std::string domains_origin;       // where finetune.domains was set (error messages)
    std::string from;                 // finetune.from: pre-training checkpoint; "" = scratch
};

struct EvalOptions {
    std::vector<int64_t> topk{10, 50};                  // topk: cutoffs K
    std::vector<std::string> metrics{"Recall", "NDCG"}; // metrics
    std::string valid_metric = "recall@10";             // valid_metric: early stopping
    TieRule ties = TieRule::expected;                   // eval.ties
};

struct CheckpointOptions {
    std::string dir;                   // checkpoint.dir, or <output_dir>/ckpt when empty
    int64_t every = 1;                 // checkpoint.every: every N rounds (0 = only after the last)
    int keep = 2;                      // checkpoint.keep: newest N kept
    bool allow_other_prepared = false; // checkpoint.allow_other_prepared
};

struct Options {
    Config config; // the resolved config: its YAML goes into outputs, roles compare runs

    uint64_t seed = 2020;          // seed
    std::string output_dir;        // output_dir
    std::string prepared;          // data.prepared, or <output_dir>/prepared.h5 when empty
    std::string data_path;         // data.path
    int64_t shards_per_domain = 1; // data.shards_per_domain
    int64_t max_history = 50;      // MAX_ITEM_LIST_LENGTH
    PrepareOptions prepare;        // data.*, plm_size, code_dim, code_cap for pfcr prepare
    SynthOptions synth;            // synth.* for pfcr synth

    // Model shape, dropout, optimizer, batches, chunking, seed; hp.shape.head from
    // finetune.mode (pre-training sets it to none); shape.id_items is per client.
    TrainOptions train;
    double initializer_range = 0.02; // initializer_range
    FederationOptions federation;    // federation.* (except rounds) and privacy.*
    int64_t rounds = 10;             // federation.rounds
    int64_t eval_every = 0;          // federation.eval_every (pre-training validation)
    FinetuneOptions finetune;
    EvalOptions eval;
    CheckpointOptions checkpoint;
    int64_t threads = 0; // run.threads (0 = all hardware threads)
};

// Every key of the schema is read exactly here. Cross-key rules that need typed values (e.g.
// finetune.prompt_heads divides hidden_size, federation.server_lr only for pfcr) are checked
// here too, with messages naming the keys and where they were set. `keys_read`, if given,
// receives the name of every key read (a test checks that it is the whole schema).
Options resolve_options(const Config& cfg, std::set<std::string>* keys_read = nullptr);

// The same options with one key changed (value as YAML text; `origin` is recorded).
Options with_key(const Options& o, const std::string& key, const std::string& yaml_value,
                 const std::string& origin);

// The first schema key, in schema order, whose role satisfies `shaped` and whose value
// differs between `now` and `then`; "" if none.
std::string first_difference(const Config& now, const Config& then, bool (*shaped)(KeyRole));

// Throws Error unless `now` and the config stored in a file (`then`, read from `where`) agree
// on every key whose role satisfies `shaped`; the message names the key, both values, where
// the current one came from, and ends with `advice` (may be empty).
void check_agrees(const Config& now, const Config& then, bool (*shaped)(KeyRole),
                  const std::string& where, const std::string& advice = "");

} // namespace pfcr
