// Drivers of the subcommands: `pfcr synth`, `prepare`, `pretrain`, `finetune`, `evaluate`,
// `run`, `inspect`. Each takes the typed options of src/options (never a config key by name),
// runs the module code, prints summaries and writes outputs atomically. No math lives here.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "io/config.hpp"
#include "options/options.hpp"
#include "report/report.hpp"
#include "sim/faults.hpp"

namespace pfcr {

// `pfcr prepare`: prepare_dataset + write prepared.h5 + config.resolved.yaml + summary on `out`.
PrepareReport run_prepare(const Options& opt, const Logger& log, std::ostream& out);

// `pfcr synth`: writes the synthetic dataset described by synth.* and prints its summary.
void run_synth(const Options& opt, const Logger& log, std::ostream& out);

class Comm;
// `pfcr finetune`: every client (same ids as pretrain) fine-tuned on its owning rank from the
// pre-training checkpoint `from` (file or directory; empty: finetune.from; empty too: from
// scratch = the local-only baseline), early stopping on valid, test with the best state;
// rank 0 writes metrics.jsonl + results.json (per domain and mean) and prints a table; every
// rank writes its clients into <output_dir>/ckpt (stage finetune: model/, best/, optim/).
// Returns the report (on rank 0; empty elsewhere).
FinetuneReport run_finetune(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                            const std::string& from = "", const FaultInjection& faults = {});

// `pfcr evaluate`: which checkpoint (file, or the newest in a directory), split ("valid" |
// "test"), state ("best" | "final"; "" = best for a fine-tuning checkpoint, final for a
// pre-training one), and an optional JSON output file (written atomically).
struct EvaluateOptions {
    std::string checkpoint;
    std::string split = "test";
    std::string state;
    std::string json;
};

// The config of `pfcr evaluate`: the one stored in the checkpoint, then `overrides`
// ("key=value", as --set).
Config evaluate_config(const std::string& checkpoint, const std::vector<std::string>& overrides);

// `pfcr evaluate`: full-sort Recall@K / NDCG@K (topk) of every client of a pre-training or
// fine-tuning checkpoint on its owning rank; rank 0 prints a table per domain and the mean
// and writes opts.json, in the shape of results.json. Model and data keys of `cfg` must equal
// the checkpoint's (and the fine-tuning head's keys, for a fine-tuning checkpoint).
// Returns the report (on rank 0; empty elsewhere).
EvaluateReport run_evaluate(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                            const EvaluateOptions& opts);

// `pfcr run`: prepare (rank 0, if prepared.h5 is missing or stale) -> pretrain into
// <output_dir>/pretrain (not for algorithm local) -> finetune into <output_dir>/finetune ->
// <output_dir>/results.json + table on `out`. Returns 0, or exit_code_preempted.
int run_experiment(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                   const FaultInjection& faults = {});

// Why prepared.h5 at `path` must be (re)built for `cfg`, or "" if it is up to date: "missing",
// a key whose role shapes it (role_shapes_prepared) differs from its manifest's config, or an
// input file recorded in the manifest is gone or changed (sha256).
std::string stale_reason(const Config& cfg, const std::string& path);

// `path` relative to the directory `base` (both made absolute first; "" stays ""): how
// results.json records the checkpoints it came from, so that its bytes do not depend on where
// the run directory is.
std::string relative_to(const std::string& path, const std::string& base);

// A checkpoint file as given, or the newest complete one if `path` is a directory.
std::string resolve_checkpoint(const std::string& path);

// `pfcr pretrain`: federated pre-training (federation.algorithm) over the ranks of `comm`;
// rank 0 writes metrics.jsonl, identical apart from timings for any rank or thread count.
// Checkpoints every checkpoint.every rounds and at the end (collective parallel HDF5);
// resumes from `resume` (a checkpoint file or directory) or else from the newest complete
// checkpoint of the run's checkpoint directory. status 0, or exit_code_preempted (signals.hpp)
// after a stop signal once the checkpoint is written.
// `faults`: test-only hooks (sim/faults.hpp).
struct PretrainReport {
    int status = 0; // 0, or exit_code_preempted (stopped by a signal after a checkpoint)
    int64_t rounds_done = 0;
    std::string checkpoint; // the newest checkpoint of this run (written or resumed from)
};
PretrainReport run_pretrain(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                            const std::string& resume = "", const FaultInjection& faults = {});

// `pfcr inspect FILE`: summary + schema validation of prepared.h5 or a checkpoint (by the root
// `format` attribute); returns 0 if valid, 1 otherwise.
int run_inspect(const std::string& path, std::ostream& out);

// Schema problems of a checkpoint (the checks of analysis/check_checkpoint.py; shapes from the
// ParamLayout of the stored config_yaml); empty if valid.
std::vector<std::string> validate_checkpoint(const std::string& path);

} // namespace pfcr
