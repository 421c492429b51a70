// What the fine-tuning and evaluation drivers share: checking that a pre-training or
// fine-tuning checkpoint fits the run's config, loading a client's encoder from it, writing
// metrics as JSON, merging the shards of a domain, and moving one rank's text to the others.
// No training and no file output here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "federation/comm.hpp"
#include "io/checkpoint.hpp"
#include "io/config.hpp"
#include "model/trainer.hpp"
#include "model/params.hpp"
#include "sim/run_clients.hpp"

namespace pfcr {

// Keys a checkpoint must agree on with the config that reads it: the model's shapes and the
// data that defines clients and item codes.
bool shapes_model_or_data(const std::string& key);

// Throws unless `cfg` agrees with the config stored in `r` on every shapes_model_or_data key
// (the error names the key, both values and where the current one came from).
void check_same_shapes(const Config& cfg, const CheckpointReader& r);

// True if `r` holds one pooled client "*" (a centralized pre-training checkpoint, whose model
// serves every client); otherwise checks that its clients are exactly `rc`'s owned clients
// (same ids, domains, shards) and returns false.
bool check_clients(const CheckpointReader& r, const RunClients& rc);

// Loads a client's encoder from a pre-training checkpoint, tensor by tensor: /server/<name>
// if the server holds it, else /clients/<src>/model/<name>. Head entries (prompt tuning) are
// not in a pre-training checkpoint and keep whatever `params` holds.
void load_pretrained(const CheckpointReader& r, int64_t src, const ParamLayout& layout,
                     float* params);

// {"recall@10": ..., "ndcg@10": ..., ...} with round-trip precision (runs compare bit for bit).
std::string json_metrics(const EvalResult& r);

// Row-weighted mean of several evaluations (shards of one domain = all of its users).
EvalResult merge_rows(const std::vector<const EvalResult*>& parts);

// The owner's bytes on every rank (a broadcast from `root`, length first). Collective.
std::string share_string(Comm& comm, const std::string& s, int root);

} // namespace pfcr
