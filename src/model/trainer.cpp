// Chunk-parallel training step, evaluation and the popularity baseline (see trainer.hpp).
//
// One training step on a batch of B rows (letters as in encoder.hpp, V1 = items + 1):
//   E   (V1,C) = code-mean embeddings of every candidate, Ê = E/||E||        once per step
//   per chunk of `chunk_rows` rows, in parallel, each with its thread's workspace:
//     s = encoder(chunk), then loss.hpp's cosine_ce_rows_forward / _backward on the chunk's rows:
//     Ŝ = s/||s||, Z = Ŝ Êᵀ / τ, P = softmax(Z), loss += -log P[target],
//     G = (P - onehot) / (B τ)      (dLoss/d(Ŝ Êᵀ), kept for the whole batch, rows disjoint),
//     dŜ = G Ê -> ds; encoder backward into the chunk's own gradient buffer and d_emb rows
//   then, in a fixed order: local gradients = sum of chunk buffers in chunk order;
//     dÊ = Gᵀ Ŝ -> dE (loss.hpp's cosine_ce_candidates_backward, kCandidateBlock row blocks);
//     dE[item] += d_emb of each token (token order); dE / M -> code table (each table row
//     sums the rows of its items in item order: embedding.hpp's CodeRowIndex, row blocks in
//     parallel); Adam on every trainable parameter (fixed blocks).
//   The tokens' embeddings are rows of E (computed once per step, not gathered again).
// The loss kernels are the ones the gradient checks and PyTorch parity tests run, in the
// float operation order the results' bits depend on.
// With a prompt head (model/prompt.hpp) the loss reads o = head(s) instead of s:
//   once per step: k, v = prompt_kv_forward(P)
//   per chunk: o = prompt_head_forward(s); backward dLoss/do -> head (its per-row parameter
//     gradients into the chunk's buffer, attention state into batch-wide rows) -> ds -> encoder
//   after the chunks, in a fixed order: dk, dv from every row (fixed prompt-row blocks) -> dP
//     and the key/value in-projection; the ID embedding's token rows -> item_embedding
//     (sequential, like the code table). A frozen encoder (the reference) gets no parameter
//     gradients at all: the chunk buffers then start at the head.
// Evaluation: Ê once, gathered to one row per distinct code row (U <= V rows, metrics.hpp's
// DistinctItems), then per chunk in parallel: cosine scores (Bc,U) and each row's standing
// into the chunk's RankAccumulator; the accumulators merge exactly in chunk order.
#include "model/trainer.hpp"

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <tuple>

#include "core/error.hpp"
#include "core/phase_timer.hpp"
#include "model/adam.hpp"
#include "model/embedding.hpp"
#include "model/loss.hpp"
#include "model/prompt.hpp"
#include "model/vmath.hpp"

namespace pfcr {
namespace {

template <typename V> void grow(V& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(size_t(n));
}

// Runs fn(begin, end) over [0, n) in blocks of `block` elements. The blocks depend only on n
// and block, never on the thread count, so block-wise kernels give the same bits everywhere.
template <typename Fn> void for_fixed_blocks(int64_t n, int64_t block, Fn&& fn) {
    const int64_t n_blocks = (n + block - 1) / block;
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, n_blocks, 1),
        [&](const tbb::blocked_range<int64_t>& r) {
            for (int64_t k = r.begin(); k < r.end(); ++k)
                fn(k * block, std::min(n, (k + 1) * block));
        },
        tbb::simple_partitioner());
}

// Code-table rows per block of the training step's scatter (independent rows: any size gives
// the same bits; 128 rows = 150 KB of output per block at C = 300).
constexpr int64_t kCodeRowBlock = 128;

EvalResult eval_result(const RankAccumulator& acc) {
    EvalResult r;
    r.ks = acc.ks;
    r.rows = acc.rows;
    for (int64_t k : acc.ks) {
        r.recall.push_back(acc.recall(k));
        r.ndcg.push_back(acc.ndcg(k));
    }
    return r;
}

// Per-thread scratch, allocated on first use and reused (vectors only grow).
struct ThreadWorkspace {
    EncoderWorkspace<float> enc;
    PromptWorkspace<float> head;
    std::vector<int64_t> off;
    std::vector<float> d_s_hat, ds, d_enc, scores;
    std::vector<float> q, probs, ctx; // evaluation's prompt attention rows
    PackedBatch batch;
};

} // namespace

// Scratch of a training step / evaluation, sized for the largest domain it has served. Shared
// by every Trainer of a rank whose clients run one after another, so that per-client memory is
// only the ModelState (docs/ARCHITECTURE.md §3); two Trainers must never use one scratch at the
// same time.
struct TrainerScratch {
    std::vector<float> e_all, e_hat, e_norm, d_e_hat, d_e; // (V1,C), (V1)
    std::vector<float> e_distinct;                         // (U,C) evaluation's distinct rows
    std::vector<float> s, s_hat, s_norm, g, d_emb;         // (B,C), (B), (B,V1), (N,C)
    // Prompt head: o (B,C) it outputs; k, v, dk, dv (NP,C); the attention rows q, ctx, d_ctx
    // (B,C) and probs, d_scores (B,PH,NP) of the whole batch; d_id (N,C) ID-embedding tokens.
    std::vector<float> o, k, v, dk, dv, q, ctx, d_ctx, probs, d_scores, d_id;
    std::vector<AlignedBuffer<float>> chunk_grads; // [chunk_begin, chunk_end), per chunk
    // Every chunk buffer is zero: the reduction zeroes what it has read (cheaper than a
    // separate pass over cold buffers), so the next step skips zeroing unless a step stopped
    // between its chunks and its reduction (a non-finite loss).
    bool chunk_grads_zero = true;
    int64_t chunk_grad_size = -1; // their size
    std::vector<double> chunk_loss;
    AlignedBuffer<float> grad; // full layout
    // Per-step forms of the encoder's linear weights (packed GEMM operands, or Wᵀ for Eigen)
    // and, on fast-GEMM builds, the candidates packed for the per-chunk products (Êᵀ for the
    // scores, Ê for dŜ; in evaluation Êᵀ of the distinct rows): each made once per step or
    // evaluation, read by every chunk.
    AlignedBuffer<float> sw_store, e_hat_fwd, e_hat_bwd, s_hat_bwd;
    StepWeights<float> sw;
    PackedBatch batch; // train_batch's gathered rows
    // The batch's token rows grouped by candidate block (kCandidateBlock items), in token order
    // within a block: block k's tokens are block_tokens[block_token_start[k] ..
    // block_token_start[k+1]).
    std::vector<int32_t> block_tokens;
    std::vector<int64_t> block_token_start, block_token_next;
    tbb::enumerable_thread_specific<ThreadWorkspace> tls;
};

std::shared_ptr<TrainerScratch> make_trainer_scratch() {
    return std::make_shared<TrainerScratch>();
}

struct Trainer::Impl {
    int64_t V1 = 0, C = 0, M = 0;
    // Per-chunk gradient buffers hold layout elements [chunk_begin, chunk_begin + chunk_size):
    // everything after the code table; with a frozen encoder only the head; never the ID
    // embedding (last in the layout, row-sparse, scattered like the code table).
    int64_t chunk_begin = 0, chunk_size = 0;
    CodeRowIndex code_rows; // per code-table row, the items whose codes name it (the scatter)
    HeadMode head = HeadMode::none;
    int64_t NP = 0, PH = 0;
    std::vector<int32_t> id_codes;                        // identity codes of the ID branch
    std::optional<DistinctItems> distinct;                // items grouped by code row (evaluate)
    std::vector<std::pair<int64_t, int64_t>> adam_ranges; // trainable [begin, end) runs
    KeyedRng dropout_rng;
    std::shared_ptr<TrainerScratch> scratch;
    // The scratch's buffers under the names the step code uses.
    std::vector<float>&e_all = scratch->e_all, &e_hat = scratch->e_hat, &e_norm = scratch->e_norm;
    std::vector<float>&d_e_hat = scratch->d_e_hat, &d_e = scratch->d_e;
    std::vector<float>&s = scratch->s, &s_hat = scratch->s_hat, &s_norm = scratch->s_norm;
    std::vector<float>&g = scratch->g, &d_emb = scratch->d_emb;
    std::vector<AlignedBuffer<float>>& chunk_grads = scratch->chunk_grads;
    std::vector<double>& chunk_loss = scratch->chunk_loss;
    AlignedBuffer<float>& grad = scratch->grad;
    tbb::enumerable_thread_specific<ThreadWorkspace>& tls = scratch->tls;

    Impl(const TrainOptions& opt, const PreparedDomain& d, std::shared_ptr<TrainerScratch> sc)
        : dropout_rng(opt.seed, RngPurpose::dropout),
          scratch(sc ? std::move(sc) : make_trainer_scratch()) {
        V1 = d.n_items + 1;
        C = opt.hp.shape.hidden;
        M = opt.hp.shape.code_dim;
        const ParamLayout layout(opt.hp.shape);
        head = opt.hp.shape.head;
        NP = opt.hp.shape.n_prompts;
        PH = opt.hp.shape.prompt_heads;
        const bool encoder_trained = head == HeadMode::none || opt.hp.shape.train_encoder;
        chunk_begin = encoder_trained ? local_params_begin(layout) : layout.head_begin();
        int64_t chunk_end = layout.total();
        if (head == HeadMode::prompt_full) {
            check(opt.hp.shape.id_items == V1, "domain ", d.name, " has ", d.n_items,
                  " items but the prompt-full model's item_embedding has ", opt.hp.shape.id_items,
                  " rows (items + 1 expected)");
            chunk_end = layout.at("prompt/item_embedding.weight").offset;
            id_codes = identity_item_codes(V1);
        }
        chunk_size = chunk_end - chunk_begin;
        code_rows = CodeRowIndex(d.item_codes.data(), V1, M,
                                 layout.at("pq_code_embedding.weight").size / C);
        // Adam's runs: maximal runs of trainable entries (alignment gaps inside a run are
        // zeros with zero gradient, which Adam leaves at zero).
        for (const auto& e : layout.entries()) {
            if (!e.trainable) continue;
            if (!adam_ranges.empty() && adam_ranges.back().second >= e.offset - 15)
                adam_ranges.back().second = e.offset + e.size;
            else
                adam_ranges.emplace_back(e.offset, e.offset + e.size);
        }
        check(scratch->chunk_grad_size < 0 || scratch->chunk_grad_size == chunk_size,
              "TrainerScratch shared by models of different shapes");
        scratch->chunk_grad_size = chunk_size;
        if (grad.size() < layout.total()) grad.resize(layout.total());
        for (auto* v : {&e_all, &e_hat, &d_e_hat, &d_e}) grow(*v, V1 * C);
        grow(e_norm, V1);
    }

    // Prompt attention rows [b0, b0 + n) of the batch-wide buffers.
    PromptAttnRows<float> rows(int64_t b0) {
        return {scratch->q.data() + b0 * C,
                scratch->probs.data() + b0 * PH * NP,
                scratch->ctx.data() + b0 * C,
                scratch->d_ctx.data() + b0 * C,
                scratch->d_scores.data() + b0 * PH * NP,
                nullptr};
    }

    // The loss's buffers for batch rows from b0 (loss.hpp): Ŝ, ||s|| and G (probabilities,
    // then dLoss/d(Ŝ Êᵀ) in place) are batch-wide, dŜ is the caller's (a thread's workspace).
    CosineCeBuffers<float> loss_rows(int64_t b0, float* d_s_hat) {
        float* g_rows = g.data() + b0 * V1;
        return {.s_hat = s_hat.data() + b0 * C,
                .s_norm = s_norm.data() + b0,
                .e_hat = e_hat.data(),
                .e_norm = e_norm.data(),
                .probs = g_rows,
                .d_logits = g_rows,
                .d_s_hat = d_s_hat,
                .d_e_hat = d_e_hat.data(),
                .e_hat_fwd = kHaveFastGemm ? scratch->e_hat_fwd.data() : nullptr,
                .e_hat_bwd = kHaveFastGemm ? scratch->e_hat_bwd.data() : nullptr};
    }

    // The per-step forms of each encoder linear weight of P into the scratch (linear.hpp's
    // prepare_weight; per layer q, k, v, o (C,C), dense_1 (F,C), dense_2 (C,F)); one weight
    // per task. Not the last layer's k and v when the encoder folds them (read_attention.hpp
    // multiplies per-head slices of the plain weights).
    void prepare_weights(const EncoderTensors<const float>& P, const EncoderHyper& hp) {
        const ModelShape& sh = hp.shape;
        const int64_t Cs = sh.hidden, F = sh.inner, L = sh.layers;
        // (weight, its rows OC, its columns C, field) of job j % 6 of a layer
        using Field = PreparedWeight<float> StepWeights<float>::Layer::*;
        using Item = std::tuple<int64_t, int64_t, Field>;
        const std::array<Item, 6> items = {{{Cs, Cs, &StepWeights<float>::Layer::q},
                                            {Cs, Cs, &StepWeights<float>::Layer::k},
                                            {Cs, Cs, &StepWeights<float>::Layer::v},
                                            {Cs, Cs, &StepWeights<float>::Layer::o},
                                            {F, Cs, &StepWeights<float>::Layer::f1},
                                            {Cs, F, &StepWeights<float>::Layer::f2}}};
        // Offsets of each weight's two forms in the store (sizes are multiples of 16 floats).
        std::array<int64_t, 7> at{};
        for (size_t i = 0; i < 6; ++i) {
            const auto& [oc, c, field] = items[i];
            at[i + 1] = at[i] + prepared_fwd_size<float>(oc, c) + prepared_bwd_size<float>(oc, c);
        }
        const int64_t per_layer = at[6];
        if (scratch->sw_store.size() < L * per_layer) scratch->sw_store.resize(L * per_layer);
        auto& sw = scratch->sw;
        sw.layers.resize(size_t(L));
        for_fixed_blocks(6 * L, 1, [&](int64_t job, int64_t) {
            const int64_t l = job / 6;
            const size_t i = size_t(job % 6);
            const auto& W = P.layers[size_t(l)];
            const std::array<const float*, 6> weights = {W.q_w, W.k_w,  W.v_w,
                                                         W.o_w, W.f1_w, W.f2_w};
            const auto& [oc, c, field] = items[i];
            if (hp.fold_read_kv && l == L - 1 &&
                (field == &StepWeights<float>::Layer::k ||
                 field == &StepWeights<float>::Layer::v)) {
                sw.layers[size_t(l)].*field = {}; // unused: the encoder folds them
                return;
            }
            float* fwd = scratch->sw_store.data() + l * per_layer + at[i];
            float* bwd =
                prepared_bwd_size<float>(oc, c) ? fwd + prepared_fwd_size<float>(oc, c) : nullptr;
            prepare_weight(fwd, bwd, weights[i], oc, c);
            sw.layers[size_t(l)].*field = {fwd, bwd};
        });
    }

    // dst = b (K, N) packed as a right-hand GEMM operand (gemm.hpp), its blocks in parallel.
    static void pack_b_parallel(AlignedBuffer<float>& dst, GemmOperand b, int64_t K, int64_t N) {
        if constexpr (kHaveFastGemm) {
            if (dst.size() < gemm_packed_b_size(K, N)) dst.resize(gemm_packed_b_size(K, N));
            for_fixed_blocks(gemm_pack_b_block_count(K, N), 1, [&](int64_t i0, int64_t i1) {
                gemm_pack_b_blocks(dst.data(), b, K, N, i0, i1);
            });
        } else {
            (void)dst, (void)b, (void)K, (void)N;
        }
    }

    // The candidate rows e (n, C) packed for the per-chunk products (fast-GEMM builds): Êᵀ as the
    // (C, n) right operand of the scores and, with bwd, Ê as the (n, C) one of dŜ = dcos Ê.
    void pack_candidate_rows(const float* e, int64_t n, bool bwd) {
        pack_b_parallel(scratch->e_hat_fwd, {e, 1, C}, C, n);
        if (bwd) pack_b_parallel(scratch->e_hat_bwd, {e, C, 1}, n, C);
    }

    // Ê (V1,C) and ||E|| from the current code table; rows are independent, so fixed row
    // blocks in parallel give the bits of one sequential pass.
    void candidates(const float* code_table, const int32_t* item_codes) {
        for_fixed_blocks(V1, kCandidateBlock, [&](int64_t r0, int64_t r1) {
            all_item_embeddings_forward(e_all.data() + r0 * C, item_codes + r0 * M, code_table,
                                        r1 - r0, M, C);
            l2_normalize_forward(e_hat.data() + r0 * C, e_norm.data() + r0,
                                 static_cast<const float*>(e_all.data() + r0 * C), r1 - r0, C);
        });
    }
};

double EvalResult::metric(const std::string& name) const {
    const auto at = name.find('@');
    check(at != std::string::npos, "metric '", name, "' must look like recall@10");
    const int64_t k = std::stoll(name.substr(at + 1));
    const auto it = std::find(ks.begin(), ks.end(), k);
    check(it != ks.end(), "metric '", name, "': K not evaluated");
    const size_t i = size_t(it - ks.begin());
    const std::string m = name.substr(0, at);
    if (m == "recall") return recall[i];
    if (m == "ndcg") return ndcg[i];
    fail("unknown metric '", name, "'");
}

Trainer::Trainer(const TrainOptions& opt, const PreparedDomain& domain,
                 std::shared_ptr<TrainerScratch> scratch)
    : opt_(opt), domain_(domain), impl_(std::make_unique<Impl>(opt, domain, std::move(scratch))) {
    check(opt.chunk_rows >= 1, "run.chunk_rows must be >= 1");
    check(int64_t(domain.item_codes.size()) == impl_->V1 * opt.hp.shape.code_dim, "domain ",
          domain.name, ": item codes have code_dim ", int64_t(domain.item_codes.size()) / impl_->V1,
          " but the model has code_dim = ", opt.hp.shape.code_dim);
}

Trainer::~Trainer() = default;

double Trainer::train_step(ModelState& state, const PackedBatch& batch) {
    Impl& I = *impl_;
    const int64_t B = batch.size(), N = batch.tokens(), C = I.C, V1 = I.V1;
    const int64_t chunk = opt_.chunk_rows, n_chunks = (B + chunk - 1) / chunk;
    const float inv_tau = ce_inv_tau<float>(opt_.temperature);
    const float g_scale = ce_grad_scale<float>(opt_.temperature, B);
    const ParamLayout& layout = state.layout;
    const auto P = bind_tensors<const float>(state.params.data(), layout);
    const auto H = bind_prompt_tensors<const float>(state.params.data(), layout);
    const int32_t* codes = domain_.item_codes.data();
    const uint32_t step_key = uint32_t(state.step);
    const bool head = I.head != HeadMode::none;
    const int64_t NP = I.NP, PH = I.PH;
    TrainerScratch& S = *I.scratch;

    I.candidates(P.code_table, codes);
    I.pack_candidate_rows(I.e_hat.data(), V1, true);
    I.prepare_weights(P, opt_.hp);
    grow(I.s, B * C);
    grow(I.s_hat, B * C);
    grow(I.s_norm, B);
    grow(I.g, B * V1);
    grow(I.d_emb, N * C);
    if (head) {
        for (auto* v : {&S.o, &S.q, &S.ctx, &S.d_ctx}) grow(*v, B * C);
        for (auto* v : {&S.probs, &S.d_scores}) grow(*v, B * PH * NP);
        for (auto* v : {&S.k, &S.v, &S.dk, &S.dv}) grow(*v, NP * C);
        if (I.head == HeadMode::prompt_full) grow(S.d_id, N * C);
        prompt_kv_forward(S.k.data(), S.v.data(), H.prompts, H.in_w, H.in_b, NP, C);
    }
    while (int64_t(I.chunk_grads.size()) < n_chunks) I.chunk_grads.emplace_back(I.chunk_size);
    const bool grads_zero = S.chunk_grads_zero;
    S.chunk_grads_zero = false; // until the reduction below has zeroed them again
    I.chunk_loss.assign(size_t(n_chunks), 0.0);

    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, n_chunks, 1),
        [&](const tbb::blocked_range<int64_t>& range) {
            ThreadWorkspace& ws = I.tls.local();
            for (int64_t k = range.begin(); k < range.end(); ++k) {
                const int64_t b0 = k * chunk, b1 = std::min(B, b0 + chunk), Bc = b1 - b0;
                const int64_t t0 = batch.off[size_t(b0)];
                ws.off.resize(size_t(Bc + 1));
                for (int64_t b = 0; b <= Bc; ++b)
                    ws.off[size_t(b)] = batch.off[size_t(b0 + b)] - t0;
                const DropoutKeys keys{&I.dropout_rng, opt_.client, step_key, b0, true};
                float* s = I.s.data() + b0 * C;
                encoder_forward(s, P, opt_.hp, batch.items.data() + t0, ws.off.data(), Bc, codes,
                                keys, ws.enc, static_cast<const float*>(I.e_all.data()), &S.sw);
                // The loss reads the representation `rep`: s, or the head's o.
                const float* rep = s;
                if (head) {
                    float* o = S.o.data() + b0 * C;
                    prompt_head_forward(o, H, opt_.hp, static_cast<const float*>(s), S.k.data(),
                                        S.v.data(), I.rows(b0), batch.items.data() + t0,
                                        ws.off.data(), Bc, I.id_codes.data(), keys, ws.head);
                    rep = o;
                }
                // The loss on this chunk's rows (loss.hpp): Ŝ, cosines and then G = (P -
                // onehot) / (B τ) in the batch-wide g, dŜ in the thread's workspace, ds.
                grow(ws.d_s_hat, Bc * C);
                const CosineCeBuffers<float> ce = I.loss_rows(b0, ws.d_s_hat.data());
                const int32_t* targets = batch.targets.data() + b0;
                I.chunk_loss[size_t(k)] =
                    cosine_ce_rows_forward(ce, rep, targets, Bc, V1, C, inv_tau, g_scale);
                ws.ds.assign(size_t(Bc * C), 0.0f);
                cosine_ce_rows_backward(ws.ds.data(), ce, targets, Bc, V1, C, g_scale, true);
                // Head and encoder backward into this chunk's gradient buffer and d_emb rows.
                AlignedBuffer<float>& cg = I.chunk_grads[size_t(k)];
                if (!grads_zero) cg.zero();
                const auto G = bind_tensors<float>(cg.data(), layout, I.chunk_begin);
                float* d_emb = I.d_emb.data() + t0 * C; // written by encoder_backward
                const float* d_enc = ws.ds.data();
                if (head) {
                    const auto GH = bind_prompt_tensors<float>(cg.data(), layout, I.chunk_begin,
                                                               I.chunk_begin + I.chunk_size);
                    float* d_id = nullptr;
                    if (I.head == HeadMode::prompt_full)
                        d_id = S.d_id.data() + t0 * C; // written by the ID branch's encoder
                    ws.d_enc.assign(size_t(Bc * C), 0.0f);
                    prompt_head_backward(ws.d_enc.data(), d_id, GH,
                                         static_cast<const float*>(ws.ds.data()), H, opt_.hp,
                                         static_cast<const float*>(s), S.k.data(), S.v.data(),
                                         I.rows(b0), keys, ws.head);
                    d_enc = ws.d_enc.data();
                }
                encoder_backward(d_emb, G, d_enc, P, opt_.hp, keys, ws.enc, &S.sw);
            }
        },
        tbb::simple_partitioner());

    double loss = 0;
    for (double l : I.chunk_loss) loss += l; // chunk order
    loss /= double(B);
    check(std::isfinite(loss), "non-finite training loss at step ", state.step, " (domain ",
          domain_.name, ")");

    // Local gradients: sum of the chunk buffers in chunk order, element blocks in parallel.
    float* grad = I.grad.data();
    for_fixed_blocks(I.chunk_size, 1 << 14, [&](int64_t i0, int64_t i1) {
        const prof::PhaseScope timer(prof::Phase::reduce_chunks);
        float* out = grad + I.chunk_begin;
        std::fill(out + i0, out + i1, 0.0f);
        for (int64_t k = 0; k < n_chunks; ++k) {
            float* cg = I.chunk_grads[size_t(k)].data();
            for (int64_t i = i0; i < i1; ++i) {
                out[i] += cg[i];
                cg[i] = 0.0f; // ready for the next step (chunk_grads_zero)
            }
        }
    });
    S.chunk_grads_zero = true;
    if (head) {
        // Batch-level head gradients: dk, dv over every row in fixed prompt-row blocks, then the
        // prompts and the key/value in-projection; the ID embedding from its token rows.
        const auto GH = bind_prompt_tensors<float>(grad, layout);
        std::fill(S.dk.begin(), S.dk.begin() + NP * C, 0.0f);
        std::fill(S.dv.begin(), S.dv.begin() + NP * C, 0.0f);
        const PromptAttnRows<float> all = I.rows(0);
        for_fixed_blocks(NP, 64, [&](int64_t n0, int64_t n1) {
            prompt_attention_kv_backward(S.dk.data(), S.dv.data(), all, B, NP, C, PH, n0, n1);
        });
        prompt_kv_backward(GH.prompts, GH.in_w, GH.in_b, static_cast<const float*>(S.dk.data()),
                           static_cast<const float*>(S.dv.data()), H.prompts, H.in_w, NP, C);
        if (I.head == HeadMode::prompt_full) {
            const auto& e = layout.at("prompt/item_embedding.weight");
            std::fill(grad + e.offset, grad + e.offset + e.size, 0.0f);
            item_embedding_backward(GH.id.code_table, static_cast<const float*>(S.d_id.data()),
                                    batch.items.data(), I.id_codes.data(), N, 1, C);
        }
    }

    // Shared code table: candidates' path (dÊ = Gᵀ Ŝ -> dE in loss.hpp's fixed row blocks),
    // then the inputs'.
    const auto GT = bind_tensors<float>(grad, layout);
    const int64_t table_size = layout.at("pq_code_embedding.weight").size;
    CosineCeBuffers<float> ce = I.loss_rows(0, nullptr);
    if constexpr (kHaveFastGemm) { // Ŝ packed once for every candidate block's dÊ = Gᵀ Ŝ
        Impl::pack_b_parallel(S.s_hat_bwd, {I.s_hat.data(), C, 1}, B, C);
        ce.s_hat_bwd = S.s_hat_bwd.data();
    }
    // The tokens of each candidate block, in token order (a counting sort by block), so that
    // each block below reads only its own tokens' gradient rows and can prefetch them.
    const int64_t n_cblocks = (V1 + kCandidateBlock - 1) / kCandidateBlock;
    auto& tok_start = S.block_token_start;
    tok_start.assign(size_t(n_cblocks + 1), 0);
    for (int64_t r = 0; r < N; ++r)
        ++tok_start[size_t(batch.items[size_t(r)] / kCandidateBlock + 1)];
    for (int64_t k = 0; k < n_cblocks; ++k) tok_start[size_t(k + 1)] += tok_start[size_t(k)];
    grow(S.block_tokens, N);
    auto& next = S.block_token_next;
    next.assign(tok_start.begin(), tok_start.end() - 1);
    for (int64_t r = 0; r < N; ++r)
        S.block_tokens[size_t(next[size_t(batch.items[size_t(r)] / kCandidateBlock)]++)] =
            int32_t(r);
    // Per block of candidates, while its rows are in cache: dE written from dÊ; then the tokens'
    // gradients join their item's row, in token order (per item the order of one sequential
    // pass), so each item's M code rows are scattered once, not once per candidate and once per
    // token; then each row divided by M once for the scatter below (not once per code).
    for_fixed_blocks(V1, kCandidateBlock, [&](int64_t j0, int64_t j1) {
        cosine_ce_candidates_backward(I.d_e.data(), ce, B, V1, C, j0, j1, false);
        const prof::PhaseScope timer(prof::Phase::embedding_bwd);
        const int64_t k = j0 / kCandidateBlock;
        const int32_t* first = S.block_tokens.data() + tok_start[size_t(k)];
        const int32_t* last = S.block_tokens.data() + tok_start[size_t(k + 1)];
        constexpr int64_t kAhead = 4; // token rows prefetched ahead (they come from L3 or memory)
        for (const int32_t* t = first; t < last; ++t) {
            if (t + kAhead < last) prefetch_rows(I.d_emb.data(), t[kAhead], t[kAhead] + 1, C);
            float* dst = I.d_e.data() + int64_t(batch.items[size_t(*t)]) * C;
            const float* src = I.d_emb.data() + int64_t(*t) * C;
            for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
        }
        const float count = float(I.M);
        for (float* x = I.d_e.data() + j0 * C; x < I.d_e.data() + j1 * C; ++x) *x /= count;
    });
    // Writes every table row (the padding row's sum is empty: 0), so no zeroing first.
    for_fixed_blocks(I.code_rows.rows(), kCodeRowBlock, [&](int64_t r0, int64_t r1) {
        all_item_embeddings_backward_rows(GT.code_table, static_cast<const float*>(I.d_e.data()),
                                          I.code_rows, C, r0, r1);
    });

    if (shared_acc_) {
        for_fixed_blocks(table_size, 1 << 14, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) shared_acc_[i] += GT.code_table[i];
        });
    }

    if (grad_hook_) grad_hook_(grad, state.params.data());

    // Adam on every trainable parameter, fixed element blocks (element-wise, so the runs give
    // the same bits as one pass over the layout; frozen parameters and moments stay untouched).
    const int64_t t = ++state.step;
    for (const auto& [r0, r1] : I.adam_ranges) {
        for_fixed_blocks(r1 - r0, 1 << 14, [&](int64_t i0, int64_t i1) {
            adam_step(state.params.data() + r0 + i0, grad + r0 + i0, state.adam_m.data() + r0 + i0,
                      state.adam_v.data() + r0 + i0, i1 - i0, opt_.learning_rate, opt_.adam_beta1,
                      opt_.adam_beta2, opt_.adam_eps, t);
        });
    }
    return loss;
}

int64_t Trainer::n_train_batches() const {
    const int64_t n = int64_t(domain_.train.rows());
    return (n + opt_.train_batch_size - 1) / opt_.train_batch_size;
}

double Trainer::train_batch(ModelState& state, uint32_t epoch, int64_t b) {
    const Split& train = domain_.train;
    const int64_t n = int64_t(train.rows());
    if (perm_epoch_ != int64_t(epoch)) {
        perm_ = epoch_permutation(n, opt_.seed, opt_.client, epoch);
        perm_epoch_ = epoch;
    }
    const int64_t start = b * opt_.train_batch_size;
    const int64_t rows = std::min(opt_.train_batch_size, n - start);
    check(b >= 0 && rows > 0, "train_batch: batch ", b, " out of range");
    PackedBatch& batch = impl_->scratch->batch;
    gather_batch(train, perm_.data() + start, rows, batch);
    try {
        return train_step(state, batch);
    } catch (const Error& e) {
        fail(e.what(), ", epoch ", epoch, ", rows ", start, "..", start + rows - 1);
    }
}

double Trainer::train_epoch(ModelState& state, uint32_t epoch) {
    const int64_t n = int64_t(domain_.train.rows());
    double total = 0;
    for (int64_t b = 0; b < n_train_batches(); ++b) {
        const int64_t rows = std::min(opt_.train_batch_size, n - b * opt_.train_batch_size);
        total += train_batch(state, epoch, b) * double(rows);
    }
    return total / double(n);
}

EvalResult Trainer::evaluate(const ModelState& state, const Split& split,
                             const std::vector<int64_t>& ks, TieRule ties) {
    Impl& I = *impl_;
    const int64_t n = int64_t(split.rows()), C = I.C, V1 = I.V1, V = V1 - 1;
    const int64_t chunk = opt_.chunk_rows, n_chunks = (n + chunk - 1) / chunk;
    const auto P = bind_tensors<const float>(state.params.data(), state.layout);
    const auto H = bind_prompt_tensors<const float>(state.params.data(), state.layout);
    const int32_t* codes = domain_.item_codes.data();
    const bool head = I.head != HeadMode::none;
    const int64_t NP = I.NP, PH = I.PH;
    TrainerScratch& S = *I.scratch;
    I.candidates(P.code_table, codes);
    I.prepare_weights(P, opt_.hp);
    if (head) {
        for (auto* v : {&S.k, &S.v}) grow(*v, NP * C);
        prompt_kv_forward(S.k.data(), S.v.data(), H.prompts, H.in_w, H.in_b, NP, C);
    }
    // Score each distinct candidate embedding once (items with identical code rows share one):
    // tied items then have bit-identical scores, whatever the GEMM's blocking does at its edges.
    if (!I.distinct) I.distinct.emplace(codes, V, I.M);
    const DistinctItems& items = *I.distinct;
    const int64_t U = items.groups();
    grow(S.e_distinct, U * C);
    for (int64_t g = 0; g < U; ++g)
        std::copy_n(I.e_hat.data() + int64_t(items.representative[size_t(g)]) * C, C,
                    S.e_distinct.data() + g * C);
    I.pack_candidate_rows(S.e_distinct.data(), U, false);
    std::vector<RankAccumulator> acc(static_cast<size_t>(n_chunks), RankAccumulator(ks));
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, n_chunks, 1),
        [&](const tbb::blocked_range<int64_t>& range) {
            ThreadWorkspace& ws = I.tls.local();
            std::vector<int64_t> rows;
            for (int64_t k = range.begin(); k < range.end(); ++k) {
                const int64_t r0 = k * chunk, r1 = std::min(n, r0 + chunk), Bc = r1 - r0;
                rows.resize(size_t(Bc));
                for (int64_t i = 0; i < Bc; ++i) rows[size_t(i)] = r0 + i;
                gather_batch(split, rows.data(), Bc, ws.batch);
                grow(ws.ds, 3 * Bc * C + Bc);
                float* s = ws.ds.data();
                float* s_hat = s + Bc * C;
                float* s_norm = s_hat + Bc * C;
                float* o = s_norm + Bc;
                const DropoutKeys keys{&I.dropout_rng, opt_.client, 0, r0, false};
                encoder_forward(s, P, opt_.hp, ws.batch.items.data(), ws.batch.off.data(), Bc,
                                codes, keys, ws.enc, static_cast<const float*>(I.e_all.data()),
                                &S.sw);
                const float* rep = s;
                if (head) {
                    for (auto* v : {&ws.q, &ws.ctx}) grow(*v, Bc * C);
                    grow(ws.probs, Bc * PH * NP);
                    const PromptAttnRows<float> rows{ws.q.data(), ws.probs.data(), ws.ctx.data(),
                                                     nullptr,     nullptr,         nullptr};
                    prompt_head_forward(o, H, opt_.hp, static_cast<const float*>(s), S.k.data(),
                                        S.v.data(), rows, ws.batch.items.data(),
                                        ws.batch.off.data(), Bc, I.id_codes.data(), keys, ws.head);
                    rep = o;
                }
                l2_normalize_forward(s_hat, s_norm, rep, Bc, C);
                // Cosine scores without the temperature (PFCR's full_sort_predict; loss.hpp),
                // padding column ignored by the ranking.
                grow(ws.scores, Bc * U);
                cosine_scores(ws.scores.data(), static_cast<const float*>(s_hat),
                              static_cast<const float*>(S.e_distinct.data()), Bc, U, C,
                              kHaveFastGemm ? static_cast<const float*>(S.e_hat_fwd.data())
                                            : nullptr);
                acc[size_t(k)].add_batch(ws.scores.data(), ws.batch.targets.data(), Bc, items,
                                         ties);
            }
        },
        tbb::simple_partitioner());
    RankAccumulator total(ks);
    for (const auto& a : acc) total.merge(a);
    return eval_result(total);
}

EvalResult evaluate_popularity(const PreparedDomain& domain, const Split& split,
                               const std::vector<int64_t>& ks, TieRule ties) {
    std::vector<double> scores(domain.item_popularity.begin(), domain.item_popularity.end());
    RankAccumulator acc(ks);
    for (size_t r = 0; r < split.rows(); ++r)
        acc.add(rank_span(target_standing(scores.data(), domain.n_items, split.targets[r]), ties));
    return eval_result(acc);
}

} // namespace pfcr
