// The Trainer's own float gradients against PyTorch, and the chunk/block pieces of the loss
// (model/loss.hpp) that the Trainer runs.
//   TrainerParity: one Trainer::train_step on the committed fixture tests/reference/
//     encoder_fixture.h5 (make_encoder_fixture.py: float64 PyTorch, dropout off) with the whole
//     batch in one chunk and in several; every parameter gradient (captured by the step's
//     gradient hook, just before Adam) against the fixture's expected/grad, and the chunkings
//     against each other. test_parity.cpp checks the double model built from the same kernels.
//   CosineCeChunks: the per-chunk and per-candidate-block kernels compose to the whole-batch
//     loss and to the plain-loop references; the float softmax rows keep the exact operation
//     order the Trainer's results (results.json, checkpoints) were produced with.
// Not here: gradient checks of the whole-batch loss (test_head.cpp), the encoder (test_encoder).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "io/h5.hpp"
#include "model/loss.hpp"
#include "model/trainer.hpp"
#include "model/vmath.hpp"

using namespace pfcr;

namespace {

// ---------------------------------------------------------------- fixture and helpers

// The parts of encoder_fixture.h5 a Trainer step needs (names as in test_parity.cpp).
struct Fixture {
    h5::File f =
        h5::File::open_read(std::string(PFCR_SOURCE_DIR) + "/tests/reference/encoder_fixture.h5");
    EncoderHyper hp;
    double tau = 0, lr = 0;
    PreparedDomain dom;
    PackedBatch batch;

    Fixture() {
        hp.shape.hidden = f.attr_int("hidden_size");
        hp.shape.inner = f.attr_int("inner_size");
        hp.shape.layers = f.attr_int("n_layers");
        hp.shape.heads = f.attr_int("n_heads");
        hp.shape.max_positions = f.attr_int("MAX_ITEM_LIST_LENGTH");
        hp.shape.code_dim = f.attr_int("code_dim");
        hp.shape.code_cap = f.attr_int("code_cap");
        hp.hidden_dropout = hp.attn_dropout = 0.0; // the fixture was made with dropout off
        hp.layer_norm_eps = f.attr_double("layer_norm_eps");
        tau = f.attr_double("temperature");
        lr = f.attr_double("learning_rate");
        dom.name = "fixture";
        dom.n_items = f.attr_int("n_items");
        dom.item_codes = f.read<int32_t>("item_codes");
        const auto b = f.open_group("batch");
        batch.off = b.read<int64_t>("indptr");
        batch.items = b.read<int32_t>("items");
        batch.targets = b.read<int32_t>("targets");
        for (size_t i = 0; i + 1 < batch.off.size(); ++i)
            batch.max_len = std::max(batch.max_len, batch.off[i + 1] - batch.off[i]);
    }
    int64_t B() const { return batch.size(); }
    // A flat buffer of the layout filled from group `g` (state_dict names).
    std::vector<double> tensors(const ParamLayout& layout, const std::string& g) const {
        std::vector<double> out(size_t(layout.total()), 0.0);
        const auto grp = f.open_group(g);
        for (const auto& e : layout.entries()) {
            const auto v = grp.read<double>(e.name);
            EXPECT_EQ(int64_t(v.size()), e.size) << e.name;
            std::copy(v.begin(), v.end(), out.begin() + e.offset);
        }
        return out;
    }
};

struct StepResult {
    double loss = 0;
    std::vector<float> grad; // full layout, as handed to Adam
};

// One Trainer::train_step from the fixture's weights with run.chunk_rows = chunk_rows.
StepResult trainer_step(const Fixture& fx, int64_t chunk_rows) {
    TrainOptions opt;
    opt.hp = fx.hp;
    opt.temperature = fx.tau;
    opt.learning_rate = fx.lr;
    opt.chunk_rows = chunk_rows;
    ModelState st(fx.hp.shape);
    const auto w = fx.tensors(st.layout, "weights");
    for (size_t i = 0; i < w.size(); ++i) st.params[int64_t(i)] = float(w[i]);
    Trainer tr(opt, fx.dom);
    StepResult r;
    tr.set_grad_hook([&](float* g, const float*) { r.grad.assign(g, g + st.layout.total()); });
    r.loss = tr.train_step(st, fx.batch);
    return r;
}

// ||a - b|| / max(||a||, ||b||) over n elements.
template <typename A, typename B> double rel_err(const A* a, const B* b, int64_t n) {
    double d2 = 0, a2 = 0, b2 = 0;
    for (int64_t i = 0; i < n; ++i) {
        d2 += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
        a2 += double(a[i]) * double(a[i]);
        b2 += double(b[i]) * double(b[i]);
    }
    return std::sqrt(d2) / std::max({std::sqrt(a2), std::sqrt(b2), 1e-300});
}

// max |x| over n elements.
template <typename A> double max_abs(const A* a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i])));
    return m;
}

bool is_key_bias(const std::string& name) {
    return name.find("key.bias") != std::string::npos;
}

// Chunkings of the fixture's batch (B = 6, history lengths 1, 50, 3, 7, 2, 12): one chunk
// (chunk_rows = B, and > B), 2 chunks of 3, 3 of 2, 4 + 2 rows (uneven), 6 of 1.
const std::vector<int64_t> kChunkRows = {6, 64, 3, 2, 4, 1};

// ---------------------------------------------------------------- TrainerParity

// Tolerance of a float32 Trainer gradient against the float64 PyTorch one, per tensor as the
// norm-wise relative error (test_parity.cpp's measure). Each float operation rounds by up to
// 2^-24 ≈ 6e-8; a gradient entry is the end of a chain of a few hundred of them (2 layers of
// LayerNorm, attention over up to 50 tokens and a feed-forward, forward and back), and the
// loss multiplies every cosine error by 1/tau ≈ 14.3. Norm-wise that is an error of order
// 14 · 6e-8 · (a few) ≈ 1e-6; measured: at most 5.2e-7 (the query weights, whose gradient
// passes through the attention softmax), for every chunking. 1e-5 leaves a factor of 20 over
// the measurement for other compilers and CPUs, while any wrong gradient term (errors of O(1),
// or O(1/B) for a mis-scaled chunk, a dropped row or a skipped candidate block) fails.
constexpr double kFloatGradTol = 1e-5;

TEST(TrainerParity, EveryGradientMatchesPyTorchForAnyChunking) {
    const Fixture fx;
    const ParamLayout layout(fx.hp.shape);
    const auto expected = fx.tensors(layout, "expected/grad");
    const double expected_loss = fx.f.read<double>("expected/loss")[0];
    // The largest gradient entry of the step: the scale of the key bias's rounding noise below.
    const double g_max = max_abs(expected.data(), int64_t(expected.size()));
    for (int64_t chunk_rows : kChunkRows) {
        SCOPED_TRACE("chunk_rows " + std::to_string(chunk_rows));
        const StepResult r = trainer_step(fx, chunk_rows);
        ASSERT_EQ(int64_t(r.grad.size()), layout.total());
        // float32 end to end: about 1e-7 relative per operation over a few hundred-term sums.
        EXPECT_NEAR(r.loss, expected_loss, 1e-5 * expected_loss);
        for (const auto& e : layout.entries()) {
            const float* a = r.grad.data() + e.offset;
            const double* b = expected.data() + e.offset;
            if (is_key_bias(e.name)) {
                // Exactly zero in exact arithmetic (softmax shift invariance): float rounding
                // noise of the other gradients' size, far below them.
                EXPECT_LE(max_abs(a, e.size), 1e-5 * g_max) << e.name;
                continue;
            }
            EXPECT_LE(rel_err(a, b, e.size), kFloatGradTol) << e.name;
        }
        // padding_idx = 0: row 0 of the code table gets no gradient, as in PyTorch.
        for (int64_t c = 0; c < fx.hp.shape.hidden; ++c) EXPECT_EQ(r.grad[size_t(c)], 0.0f);
    }
}

// Chunking changes only float rounding: the chunks' encoder GEMMs have other shapes (hence
// possibly another Eigen blocking), and per-chunk parameter gradients are summed in chunk
// order. Each element's error stays a few float roundings of the terms summed into it, so
// the norm-wise relative error per tensor is O(1e-7) (measured: at most 4.5e-7, 6 chunks of
// one row); 64 FLT_EPSILON ≈ 7.6e-6 allows for cancellation in the gradient sums. A wrong
// chunk offset or scale gives errors of O(1/B).
TEST(TrainerParity, ChunkingChangesGradientsOnlyByFloatRounding) {
    const Fixture fx;
    const ParamLayout layout(fx.hp.shape);
    const StepResult one = trainer_step(fx, fx.B());
    // chunk_rows > B is the same single chunk: identical bits.
    const StepResult big = trainer_step(fx, 64);
    EXPECT_EQ(big.loss, one.loss);
    EXPECT_EQ(std::memcmp(big.grad.data(), one.grad.data(), one.grad.size() * sizeof(float)), 0);
    const double g_max = max_abs(one.grad.data(), int64_t(one.grad.size()));
    for (int64_t chunk_rows : {3, 2, 4, 1}) {
        SCOPED_TRACE("chunk_rows " + std::to_string(chunk_rows));
        const StepResult r = trainer_step(fx, chunk_rows);
        // The row losses are float results summed in double: a few float roundings apart.
        EXPECT_NEAR(r.loss, one.loss, 16 * FLT_EPSILON * one.loss);
        for (const auto& e : layout.entries()) {
            const float* a = r.grad.data() + e.offset;
            const float* b = one.grad.data() + e.offset;
            if (is_key_bias(e.name)) {
                EXPECT_LE(max_abs(a, e.size), 1e-5 * g_max) << e.name;
                continue;
            }
            EXPECT_LE(rel_err(a, b, e.size), 64 * FLT_EPSILON) << e.name;
        }
    }
}

// ---------------------------------------------------------------- CosineCeChunks

template <typename T> struct CeStore {
    std::vector<T> s_hat, s_norm, e_hat, e_norm, probs, d_s_hat, d_e_hat;
    CeStore(int64_t B, int64_t V1, int64_t C)
        : s_hat(size_t(B * C)), s_norm(size_t(B)), e_hat(size_t(V1 * C)), e_norm(size_t(V1)),
          probs(size_t(B * V1)), d_s_hat(size_t(B * C)), d_e_hat(size_t(V1 * C)) {}
    // The Trainer's arrangement: d_logits aliases probs; rows from b0 for a chunk.
    CosineCeBuffers<T> view(int64_t b0, int64_t V1, int64_t C) {
        T* p = probs.data() + b0 * V1;
        return {.s_hat = s_hat.data() + b0 * C,
                .s_norm = s_norm.data() + b0,
                .e_hat = e_hat.data(),
                .e_norm = e_norm.data(),
                .probs = p,
                .d_logits = p,
                .d_s_hat = d_s_hat.data() + b0 * C,
                .d_e_hat = d_e_hat.data()};
    }
};

// Forward and backward of the whole batch assembled from chunks of `chunk` rows and candidate
// blocks of `block` rows, as the Trainer does (but sequentially). Returns the mean loss.
template <typename T>
T chunked_loss(CeStore<T>& st, std::vector<T>& ds, std::vector<T>& dE, const std::vector<T>& s,
               const std::vector<T>& E, const std::vector<int32_t>& targets, int64_t B, int64_t V1,
               int64_t C, double tau, int64_t chunk, int64_t block) {
    l2_normalize_forward(st.e_hat.data(), st.e_norm.data(), E.data(), V1, C);
    double loss = 0;
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        const int64_t n = std::min(chunk, B - b0);
        const auto buf = st.view(b0, V1, C);
        loss += cosine_ce_rows_forward(buf, s.data() + b0 * C, targets.data() + b0, n, V1, C,
                                       ce_inv_tau<T>(tau));
        cosine_ce_rows_backward(ds.data() + b0 * C, buf, targets.data() + b0, n, V1, C,
                                ce_grad_scale<T>(tau, B));
    }
    for (int64_t r0 = 0; r0 < V1; r0 += block)
        cosine_ce_candidates_backward(dE.data(), st.view(0, V1, C), B, V1, C, r0,
                                      std::min(V1, r0 + block));
    return T(loss / double(B));
}

// V1 = 300 > kCandidateBlock: the whole-batch backward runs two candidate blocks. Chunks of
// 3 rows (uneven: 3+3+1) and candidate blocks of 64 against the whole-batch call and the
// plain-loop reference, in double: both sides are exact up to summation order over C = 6 or
// B = 7 terms, so 1e-13 relative is a handful of roundings.
TEST(CosineCeChunks, ChunksAndCandidateBlocksComposeToTheWholeBatch) {
    const int64_t B = 7, V1 = 300, C = 6;
    const double tau = 0.07;
    const auto s = test::probe_weights(size_t(B * C), 11);
    const auto E = test::probe_weights(size_t(V1 * C), 12);
    const std::vector<int32_t> targets = {5, 299, 1, 257, 5, 128, 256};
    CeStore<double> whole(B, V1, C), chunked(B, V1, C), ref(B, V1, C);
    std::vector<double> ds_w(size_t(B * C)), dE_w(size_t(V1 * C)), ds_c = ds_w, dE_c = dE_w,
                                                                   ds_r = ds_w, dE_r = dE_w;
    const double lw =
        cosine_ce_forward(whole.view(0, V1, C), s.data(), E.data(), targets.data(), B, V1, C, tau);
    cosine_ce_backward(ds_w.data(), dE_w.data(), whole.view(0, V1, C), targets.data(), B, V1, C,
                       tau);
    const double lc = chunked_loss(chunked, ds_c, dE_c, s, E, targets, B, V1, C, tau, 3, 64);
    const auto rv = ref.view(0, V1, C);
    const double lr =
        cosine_ce_forward_reference(rv, s.data(), E.data(), targets.data(), B, V1, C, tau);
    cosine_ce_backward_reference(ds_r.data(), dE_r.data(), rv, targets.data(), B, V1, C, tau);
    EXPECT_NEAR(lc, lw, 1e-13 * lw);
    EXPECT_NEAR(lr, lw, 1e-13 * lw);
    EXPECT_LE(rel_err(ds_c.data(), ds_w.data(), B * C), 1e-13);
    EXPECT_LE(rel_err(dE_c.data(), dE_w.data(), V1 * C), 1e-13);
    EXPECT_LE(rel_err(ds_r.data(), ds_w.data(), B * C), 1e-13);
    EXPECT_LE(rel_err(dE_r.data(), dE_w.data(), V1 * C), 1e-13);
    // Candidate rows in both blocks of the whole-batch call received gradient.
    EXPECT_GT(max_abs(dE_w.data() + 299 * C, C), 0.0);
}

// Gradient check with several candidate blocks (V1 = 260: blocks 0..255 and 256..259).
TEST(CosineCeChunks, GradCheckAcrossCandidateBlocks) {
    const int64_t B = 3, V1 = 260, C = 3;
    const double tau = 0.07;
    auto s = test::probe_weights(size_t(B * C), 21);
    auto E = test::probe_weights(size_t(V1 * C), 22);
    const std::vector<int32_t> targets = {258, 3, 258};
    CeStore<double> st(B, V1, C);
    std::vector<double> ds(size_t(B * C), 0.0), dE(size_t(V1 * C), 0.0);
    cosine_ce_forward(st.view(0, V1, C), s.data(), E.data(), targets.data(), B, V1, C, tau);
    cosine_ce_backward(ds.data(), dE.data(), st.view(0, V1, C), targets.data(), B, V1, C, tau);
    auto f = [&] {
        CeStore<double> t(B, V1, C);
        return cosine_ce_forward(t.view(0, V1, C), s.data(), E.data(), targets.data(), B, V1, C,
                                 tau);
    };
    EXPECT_LT(test::gradcheck_rel_error(s, ds, f), 1e-6); // gradcheck.hpp's criterion
    EXPECT_LT(test::gradcheck_rel_error(E, dE, f), 1e-6);
}

// The float softmax rows and dLoss/dcosine keep, bit for bit, the Trainer's operation order
// (written out here as the Trainer had it inline before it called loss.hpp; the exp and the sum
// became vmath.hpp's vexp and 16-lane sum in issue 17, after docs/RESULTS.md's runs): a multiply
// by float(1/tau), vexp(z - zmax), the lane sum written out below, loss log(sum) - log(e_t) in
// double, e·(1/sum)·scale, minus scale at the target. Any change here changes results.json and
// checkpoints: update this test only together with a deliberate change of the numbers.
TEST(CosineCeChunks, FloatSoftmaxRowsKeepTheTrainerOperationOrder) {
    const int64_t B = 5, V1 = 77;
    const double tau = 0.07;
    const auto w = test::probe_weights(size_t(B * V1), 31);
    std::vector<float> cosines(w.size());
    for (size_t i = 0; i < w.size(); ++i) cosines[i] = float(std::tanh(w[i])); // in (-1, 1)
    const std::vector<int32_t> targets = {1, 76, 40, 40, 7};

    // The frozen spec.
    std::vector<float> g = cosines;
    const float inv_tau = float(1.0 / tau), g_scale = float(1.0 / (double(B) * tau));
    double loss_spec = 0;
    for (int64_t b = 0; b < B; ++b) {
        float* z = g.data() + b * V1;
        float zmax = -INFINITY;
        for (int64_t j = 0; j < V1; ++j) {
            z[j] *= inv_tau;
            zmax = std::max(zmax, z[j]);
        }
        // 16 lane sums (lane l: j = l, l + 16, ... over full groups of 16), combined pairwise
        // (l + 8, + 4, + 2, + 1), then the tail j >= 16 * floor(V1 / 16) in order.
        float lanes[16] = {};
        const int64_t full = V1 / 16 * 16;
        for (int64_t j = 0; j < V1; ++j) z[j] = vexp(z[j] - zmax);
        for (int64_t j = 0; j < full; ++j) lanes[j % 16] += z[j];
        for (int w = 8; w > 0; w /= 2)
            for (int l = 0; l < w; ++l) lanes[l] += lanes[l + w];
        float tail = 0;
        for (int64_t j = full; j < V1; ++j) tail += z[j];
        const float sum = lanes[0] + tail;
        const int32_t t = targets[size_t(b)];
        loss_spec += double(std::log(sum)) - std::log(double(z[t]));
        const float inv_sum = 1.0f / sum;
        for (int64_t j = 0; j < V1; ++j) z[j] = z[j] * inv_sum * g_scale;
        z[t] -= g_scale;
    }

    std::vector<float> k = cosines;
    EXPECT_EQ(ce_inv_tau<float>(tau), inv_tau);
    EXPECT_EQ(ce_grad_scale<float>(tau, B), g_scale);
    const double loss = softmax_ce_rows(k.data(), targets.data(), B, V1, ce_inv_tau<float>(tau));
    softmax_ce_rows_backward(k.data(), k.data(), targets.data(), B, V1,
                             ce_grad_scale<float>(tau, B));
    EXPECT_EQ(loss, loss_spec);
    EXPECT_EQ(std::memcmp(k.data(), g.data(), g.size() * sizeof(float)), 0);
    // The training step's fused form (gradient written by the forward's last pass): same bits.
    std::vector<float> fused = cosines;
    const double loss_fused = softmax_ce_rows(fused.data(), targets.data(), B, V1,
                                              ce_inv_tau<float>(tau), ce_grad_scale<float>(tau, B));
    EXPECT_EQ(loss_fused, loss_spec);
    EXPECT_EQ(std::memcmp(fused.data(), g.data(), g.size() * sizeof(float)), 0);
}

// Evaluation ranks the cosines (no temperature); the 7-argument form is the loss's logits.
TEST(CosineCeChunks, EvaluationScoresAreCosinesWithoutTemperature) {
    const int64_t B = 3, V1 = 5, C = 4;
    auto s = test::probe_weights(size_t(B * C), 41), E = test::probe_weights(size_t(V1 * C), 42);
    std::vector<double> sn(static_cast<size_t>(B)), en(static_cast<size_t>(V1)), s_hat(s.size()),
        e_hat(E.size());
    l2_normalize_forward(s_hat.data(), sn.data(), s.data(), B, C);
    l2_normalize_forward(e_hat.data(), en.data(), E.data(), V1, C);
    std::vector<double> sc(size_t(B * V1)), ref(sc.size()), logits(sc.size());
    cosine_scores(sc.data(), s_hat.data(), e_hat.data(), B, V1, C);
    cosine_scores_reference(ref.data(), s_hat.data(), e_hat.data(), B, V1, C);
    cosine_scores(logits.data(), s_hat.data(), e_hat.data(), B, V1, C, 0.07);
    for (size_t i = 0; i < sc.size(); ++i) {
        EXPECT_LE(std::abs(sc[i]), 1.0 + 1e-15) << i; // a cosine
        EXPECT_NEAR(sc[i], ref[i], 1e-15) << i;
        EXPECT_EQ(logits[i], sc[i] * ce_inv_tau<double>(0.07)) << i;
    }
}

} // namespace
