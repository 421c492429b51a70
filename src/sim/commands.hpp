// Drivers of the subcommands: `pfcr synth`, `prepare`, `pretrain`, `finetune`, `inspect`.
// They translate the config into module options, run the module code, print summaries and
// write outputs atomically. No math lives here.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "data/prepared.hpp"
#include "io/config.hpp"
#include "model/trainer.hpp"

namespace pfcr {

// data.prepared, or <output_dir>/prepared.h5 when empty.
std::string prepared_path(const Config& cfg);

// Reads every domain, featurizes, fits the joint quantizer; returns the prepared data in memory.
PreparedData prepare_dataset(const Config& cfg, const Logger& log);

// `pfcr prepare`: prepare_dataset + write prepared.h5 + config.resolved.yaml + summary on `out`.
void run_prepare(const Config& cfg, const Logger& log, std::ostream& out);

// `pfcr synth`: writes the synthetic dataset described by synth.* and prints its summary.
void run_synth(const Config& cfg, const Logger& log, std::ostream& out);

class MpiComm;
// `pfcr finetune`: every client (same ids as pretrain) fine-tuned on its owning rank from the
// pre-training checkpoint `from` (file or directory; empty: finetune.from; empty too: from
// scratch = the local-only baseline), early stopping on valid, test with the best state;
// rank 0 writes metrics.jsonl + results.json (per domain and mean) and prints a table; every
// rank writes its clients into <output_dir>/ckpt (stage finetune: model/, best/, optim/).
void run_finetune(const Config& cfg, MpiComm& comm, const Logger& log, std::ostream& out,
                  const std::string& from = "");

// `pfcr run`: prepare (rank 0, if prepared.h5 is missing or stale) -> pretrain into
// <output_dir>/pretrain (not for algorithm local) -> finetune into <output_dir>/finetune ->
// <output_dir>/results.json + table on `out`. Returns 0, or exit_code_preempted.
int run_experiment(const Config& cfg, MpiComm& comm, const Logger& log, std::ostream& out);

// A checkpoint file as given, or the newest complete one if `path` is a directory.
std::string resolve_checkpoint(const std::string& path);

// `pfcr pretrain`: federated pre-training (federation.algorithm) over the ranks of `comm`;
// rank 0 writes metrics.jsonl, identical apart from timings for any rank or thread count.
// Checkpoints every checkpoint.every rounds and at the end (collective parallel HDF5);
// resumes from `resume` (a checkpoint file or directory) or else from the newest complete
// checkpoint of the run's checkpoint directory. Returns 0, or exit_code_preempted
// (signals.hpp) after a stop signal once the checkpoint is written.
int run_pretrain(const Config& cfg, MpiComm& comm, const Logger& log, std::ostream& out,
                 const std::string& resume = "");

// `pfcr inspect FILE`: summary + schema validation of prepared.h5 or a checkpoint (by the root
// `format` attribute); returns 0 if valid, 1 otherwise.
int run_inspect(const std::string& path, std::ostream& out);

// Schema problems of a checkpoint (the checks of analysis/check_checkpoint.py; shapes from the
// ParamLayout of the stored config_yaml); empty if valid.
std::vector<std::string> validate_checkpoint(const std::string& path);

// Model/optimizer options from the config (RecBole key names).
TrainOptions train_options(const Config& cfg);

// Human-readable summary table of prepared data.
void print_prepared_summary(const PreparedData& d, std::ostream& out);

} // namespace pfcr
