// The report module: what the stages hand back (result structs) turned into the files and
// tables users read — results.json, `pfcr evaluate --json`, the per-domain tables — in one
// place. Documents are built as nlohmann::ordered_json (field order is part of the format) and
// printed by to_json_text in pfcr's layout: one line, ", " and ": " separators, every double
// with 17 significant digits (so runs compare bit for bit after parsing) except wall-clock
// timings (values inside a "time" or "time_s" object: 6 digits), no NaN/Inf (null).
// Not here: computing metrics (model/metrics.hpp, Trainer::evaluate) or writing files.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "model/trainer.hpp"

namespace pfcr {

using Json = nlohmann::ordered_json;

// pfcr's JSON layout of `j` (see above), without a trailing newline.
std::string to_json_text(const Json& j);

// {"recall@10": ..., "ndcg@10": ..., ...} in the order of r.ks.
Json metrics_json(const EvalResult& r);

// Row-weighted mean of several evaluations (shards of one domain = all of its users).
EvalResult merge_rows(const std::vector<const EvalResult*>& parts);
// Unweighted mean over domains, accumulated in the given order (results' "mean_test").
EvalResult mean_over(const std::vector<const EvalResult*>& domains, const std::vector<int64_t>& ks);

// One domain of a fine-tuning run: its shards merged.
struct FinetuneDomain {
    std::string name;
    EvalResult test, popularity;
    std::vector<int64_t> best_epoch, epochs_run; // per client (shard), id order
};

// What `pfcr finetune` returns (meaningful on rank 0) and writes as results.json.
struct FinetuneReport {
    std::string mode, from, prepared, fingerprint;
    std::string ties;                    // eval.ties: the rule that ranked tied items
    std::vector<FinetuneDomain> domains; // domains with clients, prepared.h5 order
    EvalResult mean;                     // mean over domains of the test metrics
    double seconds = 0;
    int status = 0; // 0, or 75 (stopped by a signal after saving every client's progress)
};
Json results_json(const FinetuneReport& r);
// Per domain: R@K N@K for every K, epochs run (most over shards), and the popularity row.
std::string results_table(const FinetuneReport& r);

// What `pfcr prepare` did (the stage's summary line: prepared_line).
struct PrepareReport {
    std::string path, fingerprint;
    int64_t n_domains = 0;
    double seconds = 0;
};
std::string prepared_line(const PrepareReport& r);

// What `pfcr evaluate` returns (rank 0) and writes with --json.
struct EvaluateReport {
    std::string checkpoint, stage, state, split, prepared, fingerprint;
    std::string ties; // eval.ties
    int64_t round = 0;
    std::vector<std::pair<std::string, EvalResult>> domains;
    EvalResult mean;
};
Json evaluate_json(const EvaluateReport& r);
// Per domain and the mean: R@K N@K for every K and the rows evaluated.
std::string evaluate_table(const EvaluateReport& r);

} // namespace pfcr
