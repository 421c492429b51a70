// Training and evaluation of one client's model on its domain: deterministic keyed batches,
// a batch cut into fixed-size chunks that run in parallel (oneTBB) with per-thread
// workspaces, gradients reduced in chunk order, PFCR's cosine softmax loss over all of the
// domain's items, Adam, and full-sort Recall/NDCG. Results are bitwise identical for any
// thread count: chunk boundaries depend only on the batch, every cross-chunk sum runs in
// chunk order, and every block-parallel loop has fixed blocks. No MPI and no files here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.hpp"
#include "data/batching.hpp"
#include "data/prepared.hpp"
#include "model/encoder.hpp"
#include "model/metrics.hpp"
#include "model/params.hpp"

namespace pfcr {

struct TrainOptions {
    EncoderHyper hp;
    double temperature = 0.07;
    double learning_rate = 0.001;
    double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
    int64_t train_batch_size = 1024;
    int64_t eval_batch_size = 1024;
    int64_t chunk_rows = 256; // run.chunk_rows: rows per parallel chunk (fixed, never per thread)
    uint64_t seed = 2020;
    uint32_t client = 0; // keys the client's shuffles and dropout masks
};

// One client's persistent state: parameters, Adam moments, step counter.
struct ModelState {
    explicit ModelState(const ModelShape& shape) : layout(shape) {
        params.resize(layout.total());
        adam_m.resize(layout.total());
        adam_v.resize(layout.total());
    }
    ParamLayout layout;
    AlignedBuffer<float> params, adam_m, adam_v;
    int64_t step = 0; // Adam steps taken (t of the next step is step + 1)
};

struct EvalResult {
    std::vector<int64_t> ks;
    std::vector<double> recall, ndcg; // per K
    int64_t rows = 0;
    double metric(const std::string& name) const; // "recall@10", "ndcg@50"
};

// Step/evaluation scratch (candidate embeddings, batch buffers, per-chunk gradients, per-thread
// workspaces). By default each Trainer owns one; a rank whose clients train one after another
// passes one shared scratch to all its Trainers, so a client's memory is just its ModelState.
struct TrainerScratch;
std::shared_ptr<TrainerScratch> make_trainer_scratch();

class Trainer {
public:
    Trainer(const TrainOptions& opt, const PreparedDomain& domain,
            std::shared_ptr<TrainerScratch> scratch = nullptr);
    ~Trainer();

    // One pass over the train split in the keyed shuffle of `epoch`; returns the mean loss
    // over the epoch's rows. Throws Error on a non-finite loss, naming epoch and step.
    double train_epoch(ModelState& state, uint32_t epoch);
    // The same epoch one batch at a time (train_epoch = every b in order), so that a pooled
    // client can interleave the batches of several domains: batch b of the keyed shuffle of
    // `epoch`; returns its mean loss. n_train_batches() = ceil(train rows / batch size).
    int64_t n_train_batches() const;
    double train_batch(ModelState& state, uint32_t epoch, int64_t b);
    // One Adam step on the given batch (rows already gathered); returns the batch's mean loss.
    double train_step(ModelState& state, const PackedBatch& batch);
    // Full-sort Recall@K / NDCG@K over every row of `split` (no dropout), items scored exactly
    // like the target ranked by `ties` (model/metrics.hpp); items with identical code rows are
    // scored once, so they always tie.
    EvalResult evaluate(const ModelState& state, const Split& split, const std::vector<int64_t>& ks,
                        TieRule ties);

    // Federated pre-training (docs/METHOD.md §6): when set, every train_step also adds its gradient
    // of the shared code table (pq_code_embedding.weight, before the Adam step) into `acc`
    // (code_rows x hidden floats), so a client can upload the sum over its local epoch.
    void set_shared_grad_accumulator(float* acc) { shared_acc_ = acc; }
    // Called with (gradient, parameters) of the full layout after the gradient of a step is
    // complete and before Adam uses it: FedProx adds its proximal term, SCAFFOLD its control
    // variate correction. Must be deterministic and must not depend on the thread count.
    using GradHook = std::function<void(float* grad, const float* params)>;
    void set_grad_hook(GradHook hook) { grad_hook_ = std::move(hook); }

    const TrainOptions& options() const { return opt_; }

private:
    struct Impl;
    TrainOptions opt_;
    const PreparedDomain& domain_;
    std::unique_ptr<Impl> impl_;
    float* shared_acc_ = nullptr;
    GradHook grad_hook_;
    std::vector<int64_t> perm_; // keyed shuffle of perm_epoch_ (train_batch)
    int64_t perm_epoch_ = -1;
};

// Baseline: rank every item by its train-target popularity (equally popular items: `ties`).
EvalResult evaluate_popularity(const PreparedDomain& domain, const Split& split,
                               const std::vector<int64_t>& ks, TieRule ties);

} // namespace pfcr
