// Tests of the model's input embeddings (code-mean items, positions), the cosine softmax
// cross-entropy and its L2 normalisation, Adam, and the full-sort ranking metrics.
// Every differentiable layer: a known-value forward, a double-precision central-difference
// gradient check (gradcheck.hpp, tol 1e-6) for every input and parameter, and where a GEMM
// path exists, equality with the plain-loop *_reference.
#include "gradcheck.hpp"
#include "model/adam.hpp"
#include "model/embedding.hpp"
#include "model/loss.hpp"
#include "model/metrics.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

namespace pfcr {
namespace {

using test::gradcheck_rel_error;
using test::probe_weights;

constexpr double kGradTol = 1e-6; // see gradcheck.hpp for why 1e-6 is defensible

double weighted_sum(const std::vector<double>& w, const std::vector<double>& out) {
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += w[i] * out[i];
    return s;
}

// ---------------------------------------------------------------- item embedding (code mean)

// Small code layout: M = 2 sub-codes, R = 6 table rows, row 0 = padding.
// Items: 0 padding (0,0); 1 (1,4); 2 (2,4) shares code row 4 with item 1; 3 (1,5) shares row 1.
constexpr int64_t kM = 2, kR = 6, kV1 = 4;
const std::vector<int32_t> kItemCodes = {0, 0, 1, 4, 2, 4, 1, 5};

TEST(ItemEmbedding, ForwardKnownValues) {
    const int64_t C = 2;
    // row r = (r, 10 r) except the padding row
    std::vector<double> table = {0.5, -0.5, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50};
    std::vector<int32_t> items = {1, 3, 0, 1};
    std::vector<double> out(items.size() * C);
    item_embedding_forward(out.data(), items.data(), kItemCodes.data(), table.data(),
                           int64_t(items.size()), kM, C);
    const std::vector<double> expect = {2.5, 25, 3, 30, 0.5, -0.5, 2.5, 25}; // (1+4)/2, (1+5)/2
    for (size_t i = 0; i < out.size(); ++i) EXPECT_DOUBLE_EQ(out[i], expect[i]) << i;

    std::vector<double> all(kV1 * C);
    all_item_embeddings_forward(all.data(), kItemCodes.data(), table.data(), kV1, kM, C);
    const std::vector<double> expect_all = {0.5, -0.5, 2.5, 25, 3, 30, 3, 30};
    for (size_t i = 0; i < all.size(); ++i) EXPECT_DOUBLE_EQ(all[i], expect_all[i]) << i;
}

TEST(ItemEmbedding, FloatMatchesDouble) {
    const int64_t C = 5;
    std::vector<double> td = probe_weights(kR * C, 3);
    std::vector<float> tf(td.begin(), td.end());
    std::vector<int32_t> items = {2, 2, 1, 3, 0};
    std::vector<double> od(items.size() * C);
    std::vector<float> of(items.size() * C);
    item_embedding_forward(od.data(), items.data(), kItemCodes.data(), td.data(), 5, kM, C);
    item_embedding_forward(of.data(), items.data(), kItemCodes.data(), tf.data(), 5, kM, C);
    for (size_t i = 0; i < od.size(); ++i) EXPECT_NEAR(of[i], od[i], 1e-6) << i; // 2 float adds
}

// The code mean sums each column in registers, 64 columns at a time: per element the same
// additions in the same order as the plain definition, so the same bits (C = 300: four full
// tiles and a 44-wide one; C = 5: one partial tile).
TEST(ItemEmbedding, TiledCodeMeanHasThePlainLoopsBits) {
    for (const int64_t C : {int64_t(300), int64_t(5)}) {
        const std::vector<double> td = probe_weights(size_t(kR * C), 4);
        const std::vector<float> table(td.begin(), td.end());
        const std::vector<int32_t> items = {2, 2, 1, 3, 0};
        std::vector<float> got(items.size() * size_t(C)), plain(items.size() * size_t(C), 0.f);
        item_embedding_forward(got.data(), items.data(), kItemCodes.data(), table.data(),
                               int64_t(items.size()), kM, C);
        for (size_t r = 0; r < items.size(); ++r) {
            float* o = plain.data() + r * size_t(C);
            for (int64_t m = 0; m < kM; ++m) {
                const float* row = table.data() + kItemCodes[size_t(items[r] * kM + m)] * C;
                for (int64_t k = 0; k < C; ++k) o[k] += row[k];
            }
            for (int64_t k = 0; k < C; ++k) o[k] /= float(kM);
        }
        EXPECT_EQ(got, plain) << "C = " << C;
    }
}

// The table rows 1..R-1 are the parameters; row 0 is frozen (padding_idx), so the check
// perturbs only rows >= 1 and separately asserts row 0 receives exactly nothing.
TEST(ItemEmbedding, GradCheckCodeTable) {
    const int64_t C = 3;
    // item 2 appears twice, items 1/2 share row 4, items 1/3 share row 1, padding item present
    std::vector<int32_t> items = {2, 1, 0, 3, 2};
    const int64_t n = int64_t(items.size());
    std::vector<double> table = probe_weights(kR * C, 7);
    std::vector<double> w = probe_weights(n * C, 8);

    std::vector<double> d_table(kR * C, 0.0);
    item_embedding_backward(d_table.data(), w.data(), items.data(), kItemCodes.data(), n, kM, C);
    for (int64_t k = 0; k < C; ++k) EXPECT_EQ(d_table[k], 0.0) << "padding row got a gradient";

    std::vector<double> x(table.begin() + C, table.end());
    std::vector<double> analytic(d_table.begin() + C, d_table.end());
    auto f = [&] {
        std::copy(x.begin(), x.end(), table.begin() + C);
        std::vector<double> out(n * C);
        item_embedding_forward(out.data(), items.data(), kItemCodes.data(), table.data(), n, kM, C);
        return weighted_sum(w, out);
    };
    EXPECT_LT(gradcheck_rel_error(x, analytic, f), kGradTol);

    // accumulation: a second backward doubles the gradient
    item_embedding_backward(d_table.data(), w.data(), items.data(), kItemCodes.data(), n, kM, C);
    for (size_t i = C; i < d_table.size(); ++i) EXPECT_DOUBLE_EQ(d_table[i], 2 * analytic[i - C]);
}

TEST(ItemEmbedding, AllItemsEqualsItemsZeroToV) {
    const int64_t C = 4;
    std::vector<double> table = probe_weights(kR * C, 11);
    std::vector<int32_t> iota(kV1);
    std::iota(iota.begin(), iota.end(), 0);
    std::vector<double> a(kV1 * C), b(kV1 * C);
    all_item_embeddings_forward(a.data(), kItemCodes.data(), table.data(), kV1, kM, C);
    item_embedding_forward(b.data(), iota.data(), kItemCodes.data(), table.data(), kV1, kM, C);
    EXPECT_EQ(a, b);

    std::vector<double> w = probe_weights(kV1 * C, 12);
    std::vector<double> da(kR * C, 0.0), db(kR * C, 0.0);
    all_item_embeddings_backward(da.data(), w.data(), kItemCodes.data(), kV1, kM, C);
    item_embedding_backward(db.data(), w.data(), iota.data(), kItemCodes.data(), kV1, kM, C);
    EXPECT_EQ(da, db);
}

TEST(ItemEmbedding, RowScatterEqualsSequentialBitForBit) {
    // PQ-style codes (column m uses rows 1 + 3m .. 3 + 3m; item 0 is the padding item), then
    // codes shared across columns and repeated within an item: the per-row sums must make the
    // sequential scatter's additions in its order either way, and write every row (padding and
    // unused rows 0) over whatever the output held.
    const int64_t M = 3, V1 = 40, C = 101, R = 2 + 3 * M; // row R - 1 is never used; C: a full
    // 64-column tile and a 37-wide one
    std::vector<int32_t> pq(size_t(V1 * M), 0), shared(size_t(V1 * M), 0);
    for (int64_t j = 1; j < V1; ++j)
        for (int64_t m = 0; m < M; ++m) {
            pq[size_t(j * M + m)] = int32_t(1 + 3 * m + (j * 7 + m) % 3);
            shared[size_t(j * M + m)] = int32_t(1 + (j * 5 + m * 3) % 4); // rows 1..4 only
        }
    const auto g = probe_weights(size_t(V1 * C), 21);
    const std::vector<float> gf(g.begin(), g.end());
    std::vector<float> gf_over_m(gf.size()); // the row scatter takes rows divided by M
    for (size_t i = 0; i < gf.size(); ++i) gf_over_m[i] = gf[i] / float(M);
    for (const auto* codes : {&pq, &shared}) {
        std::vector<float> seq(size_t(R * C), 0.0f);
        all_item_embeddings_backward(seq.data(), gf.data(), codes->data(), V1, M, C);
        const CodeRowIndex index(codes->data(), V1, M, R);
        ASSERT_EQ(index.rows(), R);
        std::vector<float> rows(size_t(R * C), std::numeric_limits<float>::quiet_NaN());
        for (int64_t r0 = R - 1; r0 >= 0; r0 -= 4) // blocks in any order
            all_item_embeddings_backward_rows(rows.data(), gf_over_m.data(), index, C,
                                              std::max<int64_t>(0, r0 - 3), r0 + 1);
        EXPECT_EQ(0, std::memcmp(seq.data(), rows.data(), seq.size() * sizeof(float)));
    }
    // A code outside the table is an error, not a write out of bounds.
    const std::vector<int32_t> bad = {0, 0, 1, 9};
    EXPECT_THROW(CodeRowIndex(bad.data(), 2, 2, 9), Error);
}

TEST(ItemEmbedding, AllItemsGradCheckCodeTable) {
    const int64_t C = 3;
    std::vector<double> table = probe_weights(kR * C, 13);
    std::vector<double> w = probe_weights(kV1 * C, 14);
    std::vector<double> d_table(kR * C, 0.0);
    all_item_embeddings_backward(d_table.data(), w.data(), kItemCodes.data(), kV1, kM, C);
    for (int64_t k = 0; k < C; ++k) EXPECT_EQ(d_table[k], 0.0);
    std::vector<double> x(table.begin() + C, table.end());
    std::vector<double> analytic(d_table.begin() + C, d_table.end());
    auto f = [&] {
        std::copy(x.begin(), x.end(), table.begin() + C);
        std::vector<double> out(kV1 * C);
        all_item_embeddings_forward(out.data(), kItemCodes.data(), table.data(), kV1, kM, C);
        return weighted_sum(w, out);
    };
    EXPECT_LT(gradcheck_rel_error(x, analytic, f), kGradTol);
}

// ---------------------------------------------------------------- position embedding

TEST(PositionEmbedding, ForwardKnownValues) {
    const int64_t C = 2, B = 2;
    std::vector<int64_t> off = {0, 2, 5}; // lengths 2 and 3
    std::vector<double> inp = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5};
    std::vector<double> pos = {100, 200, 300, 400, 500, 600, 700, 800}; // T = 4
    std::vector<double> out(inp.size());
    add_position_embedding_forward(out.data(), inp.data(), pos.data(), off.data(), B, C);
    const std::vector<double> expect = {101, 201, 302, 402, 103, 203, 304, 404, 505, 605};
    EXPECT_EQ(out, expect);
    // Token rows gathered from a row table (the training step's candidate matrix): token i reads
    // row rows[i], so a table holding the tokens' rows in another order gives the same output.
    const std::vector<double> table = {4, 4, 9, 9, 1, 1, 3, 3, 5, 5, 2, 2};
    const std::vector<int32_t> rows = {2, 5, 3, 0, 4};
    std::vector<double> gathered(inp.size());
    add_position_embedding_forward(gathered.data(), table.data(), pos.data(), off.data(), B, C,
                                   rows.data());
    EXPECT_EQ(gathered, expect);
    // in place
    add_position_embedding_forward(inp.data(), inp.data(), pos.data(), off.data(), B, C);
    EXPECT_EQ(inp, expect);
    // Backward without dinp (the caller's dout is the input gradient): only the table sums.
    std::vector<double> dpos(pos.size(), 0.0), dpos_both(pos.size(), 0.0), dinp(inp.size(), 0.0);
    add_position_embedding_backward(static_cast<double*>(nullptr), dpos.data(), expect.data(),
                                    off.data(), B, C);
    add_position_embedding_backward(dinp.data(), dpos_both.data(), expect.data(), off.data(), B, C);
    EXPECT_EQ(dpos, dpos_both);
    EXPECT_EQ(dinp, expect);
}

TEST(PositionEmbedding, GradCheckInputAndTable) {
    const int64_t C = 3, B = 3, T = 4;
    std::vector<int64_t> off = {0, 2, 3, 6}; // lengths 2, 1, 3; position 3 unused
    const int64_t N = off[B];
    std::vector<double> inp = probe_weights(N * C, 21), pos = probe_weights(T * C, 22);
    std::vector<double> w = probe_weights(N * C, 23);
    std::vector<double> dinp(N * C, 0.0), dpos(T * C, 0.0);
    add_position_embedding_backward(dinp.data(), dpos.data(), w.data(), off.data(), B, C);
    auto f = [&] {
        std::vector<double> out(N * C);
        add_position_embedding_forward(out.data(), inp.data(), pos.data(), off.data(), B, C);
        return weighted_sum(w, out);
    };
    EXPECT_LT(gradcheck_rel_error(inp, dinp, f), kGradTol);
    EXPECT_LT(gradcheck_rel_error(pos, dpos, f), kGradTol);
    for (int64_t k = 0; k < C; ++k) EXPECT_EQ(dpos[3 * C + k], 0.0); // unused position
}

// ---------------------------------------------------------------- L2 normalisation

TEST(L2Normalize, ForwardKnownValuesAndZeroRow) {
    // rows: (3,4) -> (0.6,0.8); zero -> zero (no NaN); tiny (||x|| < 1e-12) -> x / 1e-12
    std::vector<double> inp = {3, 4, 0, 0, 3e-14, 4e-14};
    std::vector<double> out(6), norm(3);
    l2_normalize_forward(out.data(), norm.data(), inp.data(), 3, 2);
    EXPECT_DOUBLE_EQ(out[0], 0.6);
    EXPECT_DOUBLE_EQ(out[1], 0.8);
    EXPECT_DOUBLE_EQ(norm[0], 5.0);
    EXPECT_EQ(out[2], 0.0);
    EXPECT_EQ(out[3], 0.0);
    EXPECT_DOUBLE_EQ(out[4], 0.03);
    EXPECT_DOUBLE_EQ(out[5], 0.04);
}

TEST(L2Normalize, GradCheck) {
    const int64_t n = 4, C = 5;
    std::vector<double> inp = probe_weights(n * C, 31), w = probe_weights(n * C, 32);
    std::vector<double> out(n * C), norm(n), dinp(n * C, 0.0);
    l2_normalize_forward(out.data(), norm.data(), inp.data(), n, C);
    l2_normalize_backward(dinp.data(), w.data(), out.data(), norm.data(), n, C);
    auto f = [&] {
        std::vector<double> o(n * C), nr(n);
        l2_normalize_forward(o.data(), nr.data(), inp.data(), n, C);
        return weighted_sum(w, o);
    };
    EXPECT_LT(gradcheck_rel_error(inp, dinp, f), kGradTol);
}

// Clamped branch: y = x / 1e-12 is linear, so dx = dy / 1e-12 exactly (torch's gradient too).
// A central difference cannot straddle a 1e-12 ball usefully, hence a known-value check.
TEST(L2Normalize, ClampedBranchGradient) {
    std::vector<double> inp = {0, 0, 1e-13, 0}, dy = {0.5, -2, 1, 3};
    std::vector<double> out(4), norm(2), dinp(4, 0.0);
    l2_normalize_forward(out.data(), norm.data(), inp.data(), 2, 2);
    l2_normalize_backward(dinp.data(), dy.data(), out.data(), norm.data(), 2, 2);
    for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(std::isfinite(dinp[i]));
        EXPECT_DOUBLE_EQ(dinp[i], dy[i] / 1e-12) << i;
    }
}

// ---------------------------------------------------------------- cosine cross-entropy

// 64-byte aligned like the Trainer's buffers: Eigen's small (lazy) products round differently
// with the operands' alignment, and BackwardWithDLogitsAliasingProbs compares two of them bit for
// bit (with std::vector it failed or passed depending on what earlier tests left on the heap).
template <typename T> struct CeStore {
    AlignedBuffer<T> s_hat, s_norm, e_hat, e_norm, probs, d_logits, d_s_hat, d_e_hat;
    CeStore(int64_t B, int64_t V1, int64_t C)
        : s_hat(B * C), s_norm(B), e_hat(V1 * C), e_norm(V1), probs(B * V1), d_logits(B * V1),
          d_s_hat(B * C), d_e_hat(V1 * C) {}
    CosineCeBuffers<T> view() {
        return {s_hat.data(), s_norm.data(),   e_hat.data(),   e_norm.data(),
                probs.data(), d_logits.data(), d_s_hat.data(), d_e_hat.data()};
    }
};

TEST(CosineCe, ForwardKnownValues) {
    // s = (2,0) -> ŝ = (1,0); E rows (0,3), (1,1), (-4,0) -> cosines 0, 1/√2, -1.
    const int64_t B = 2, V1 = 3, C = 2;
    std::vector<double> s = {2, 0, 0, -1}, E = {0, 3, 1, 1, -4, 0};
    std::vector<int32_t> targets = {1, 2};
    const double tau = 0.5, r = 1 / std::sqrt(2.0);
    CeStore<double> st(B, V1, C);
    const double loss =
        cosine_ce_forward(st.view(), s.data(), E.data(), targets.data(), B, V1, C, tau);
    // row 0: z = (0, √2, -2), target 1; row 1: ŝ = (0,-1): z = (-2, -√2, 0), target 2
    const double z0[3] = {0, r / tau, -1 / tau}, z1[3] = {-1 / tau, -r / tau, 0};
    auto lse = [](const double* z) {
        return std::log(std::exp(z[0]) + std::exp(z[1]) + std::exp(z[2]));
    };
    const double l0 = lse(z0) - z0[1], l1 = lse(z1) - z1[2];
    EXPECT_NEAR(loss, (l0 + l1) / 2, 1e-15);
    for (int j = 0; j < 3; ++j) {
        EXPECT_NEAR(st.probs[j], std::exp(z0[j] - lse(z0)), 1e-15);
        EXPECT_NEAR(st.probs[3 + j], std::exp(z1[j] - lse(z1)), 1e-15);
    }
}

// GEMM path vs plain loops, double: both are exact up to summation order (C = 6 terms), so
// agreement to 1e-13 relative is the rounding of a handful of operations.
TEST(CosineCe, MatchesReference) {
    const int64_t B = 5, V1 = 9, C = 6;
    std::vector<double> s = probe_weights(B * C, 41), E = probe_weights(V1 * C, 42);
    std::vector<int32_t> targets = {3, 3, 8, 1, 5};
    const double tau = 0.07;
    CeStore<double> a(B, V1, C), r(B, V1, C);
    const double la =
        cosine_ce_forward(a.view(), s.data(), E.data(), targets.data(), B, V1, C, tau);
    const double lr =
        cosine_ce_forward_reference(r.view(), s.data(), E.data(), targets.data(), B, V1, C, tau);
    EXPECT_NEAR(la, lr, 1e-13 * std::abs(lr));
    for (int64_t i = 0; i < a.probs.size(); ++i) EXPECT_NEAR(a.probs[i], r.probs[i], 1e-13);

    std::vector<double> dsa(B * C, 0.0), dEa(V1 * C, 0.0), dsr(B * C, 0.0), dEr(V1 * C, 0.0);
    cosine_ce_backward(dsa.data(), dEa.data(), a.view(), targets.data(), B, V1, C, tau, 0.7);
    cosine_ce_backward_reference(dsr.data(), dEr.data(), r.view(), targets.data(), B, V1, C, tau,
                                 0.7);
    for (size_t i = 0; i < dsa.size(); ++i) EXPECT_NEAR(dsa[i], dsr[i], 1e-12) << i;
    for (size_t i = 0; i < dEa.size(); ++i) EXPECT_NEAR(dEa[i], dEr[i], 1e-12) << i;

    // scores used by evaluation: GEMM vs loops, and the same logits the loss saw
    std::vector<double> sc(B * V1), scr(B * V1);
    cosine_scores(sc.data(), a.s_hat.data(), a.e_hat.data(), B, V1, C, tau);
    cosine_scores_reference(scr.data(), a.s_hat.data(), a.e_hat.data(), B, V1, C, tau);
    for (size_t i = 0; i < sc.size(); ++i) EXPECT_NEAR(sc[i], scr[i], 1e-12) << i;
}

// float vs double on the same inputs: logits are |z| <= 1/0.07 ≈ 14.3 and a float cosine carries
// ~1e-7 relative error, so 1e-5 on the loss and probabilities leaves ample room.
TEST(CosineCe, FloatMatchesDouble) {
    const int64_t B = 4, V1 = 7, C = 8;
    std::vector<double> s = probe_weights(B * C, 51), E = probe_weights(V1 * C, 52);
    std::vector<float> sf(s.begin(), s.end()), Ef(E.begin(), E.end());
    std::vector<int32_t> targets = {1, 6, 6, 2};
    CeStore<double> d(B, V1, C);
    CeStore<float> f(B, V1, C);
    const double ld =
        cosine_ce_forward(d.view(), s.data(), E.data(), targets.data(), B, V1, C, 0.07);
    const float lf =
        cosine_ce_forward(f.view(), sf.data(), Ef.data(), targets.data(), B, V1, C, 0.07f);
    EXPECT_NEAR(lf, ld, 1e-5 * std::abs(ld));
    for (int64_t i = 0; i < d.probs.size(); ++i) EXPECT_NEAR(f.probs[i], d.probs[i], 1e-5);
}

// ds and dE with tau = 0.07 (the paper value), repeated targets, padding candidate row 0 present
// (always, as a class) and an upstream dloss != 1.
TEST(CosineCe, GradCheckSequenceAndCandidates) {
    const int64_t B = 4, V1 = 6, C = 5;
    std::vector<double> s = probe_weights(B * C, 61), E = probe_weights(V1 * C, 62);
    std::vector<int32_t> targets = {2, 2, 5, 1};
    const double tau = 0.07, dloss = 0.7;
    CeStore<double> st(B, V1, C);
    cosine_ce_forward(st.view(), s.data(), E.data(), targets.data(), B, V1, C, tau);
    std::vector<double> ds(B * C, 0.0), dE(V1 * C, 0.0);
    cosine_ce_backward(ds.data(), dE.data(), st.view(), targets.data(), B, V1, C, tau, dloss);
    auto f = [&] {
        CeStore<double> t(B, V1, C);
        return dloss *
               cosine_ce_forward(t.view(), s.data(), E.data(), targets.data(), B, V1, C, tau);
    };
    EXPECT_LT(gradcheck_rel_error(s, ds, f), kGradTol);
    EXPECT_LT(gradcheck_rel_error(E, dE, f), kGradTol);
    double pad2 = 0;
    for (int64_t k = 0; k < C; ++k) pad2 += dE[k] * dE[k];
    EXPECT_GT(pad2, 0.0) << "the padding class must receive gradient (docs/METHOD.md §5)";
}

// d_logits may alias probs.
TEST(CosineCe, BackwardWithDLogitsAliasingProbs) {
    const int64_t B = 3, V1 = 5, C = 4;
    std::vector<double> s = probe_weights(B * C, 71), E = probe_weights(V1 * C, 72);
    std::vector<int32_t> targets = {4, 1, 4};
    CeStore<double> a(B, V1, C), b(B, V1, C);
    cosine_ce_forward(a.view(), s.data(), E.data(), targets.data(), B, V1, C, 0.07);
    cosine_ce_forward(b.view(), s.data(), E.data(), targets.data(), B, V1, C, 0.07);
    auto bv = b.view();
    bv.d_logits = bv.probs;
    std::vector<double> dsa(B * C, 0.0), dEa(V1 * C, 0.0), dsb(B * C, 0.0), dEb(V1 * C, 0.0);
    cosine_ce_backward(dsa.data(), dEa.data(), a.view(), targets.data(), B, V1, C, 0.07);
    cosine_ce_backward(dsb.data(), dEb.data(), bv, targets.data(), B, V1, C, 0.07);
    EXPECT_EQ(dsa, dsb);
    EXPECT_EQ(dEa, dEb);
}

// A zero candidate embedding (e.g. an all-zero code row) gives cosine 0, a finite loss and
// finite gradients, as F.normalize(eps=1e-12) does.
TEST(CosineCe, ZeroRowsAreSafe) {
    const int64_t B = 2, V1 = 4, C = 3;
    std::vector<double> s = probe_weights(B * C, 81), E = probe_weights(V1 * C, 82);
    for (int64_t k = 0; k < C; ++k) E[k] = 0;     // padding item embedding = 0
    for (int64_t k = 0; k < C; ++k) s[C + k] = 0; // a zero sequence representation
    std::vector<int32_t> targets = {3, 1};
    CeStore<double> st(B, V1, C);
    const double loss =
        cosine_ce_forward(st.view(), s.data(), E.data(), targets.data(), B, V1, C, 0.07);
    EXPECT_TRUE(std::isfinite(loss));
    for (int64_t j = 0; j < V1; ++j) EXPECT_NEAR(st.probs[V1 + j], 0.25, 1e-15); // all z = 0
    std::vector<double> ds(B * C, 0.0), dE(V1 * C, 0.0);
    cosine_ce_backward(ds.data(), dE.data(), st.view(), targets.data(), B, V1, C, 0.07);
    for (double g : ds) EXPECT_TRUE(std::isfinite(g));
    for (double g : dE) EXPECT_TRUE(std::isfinite(g));
}

// The whole head as PFCR trains it: code table -> candidate matrix -> cosine CE; the code table
// gradient (rows >= 1; row 0 is padding_idx) reaches every code row of every candidate.
TEST(CosineCe, GradCheckThroughCodeTable) {
    const int64_t B = 3, C = 4;
    std::vector<double> table = probe_weights(kR * C, 91), s = probe_weights(B * C, 92);
    std::vector<int32_t> targets = {2, 3, 2};
    const double tau = 0.07;
    auto run = [&](std::vector<double>* d_table) {
        std::vector<double> E(kV1 * C);
        all_item_embeddings_forward(E.data(), kItemCodes.data(), table.data(), kV1, kM, C);
        CeStore<double> st(B, kV1, C);
        const double loss =
            cosine_ce_forward(st.view(), s.data(), E.data(), targets.data(), B, kV1, C, tau);
        if (d_table) {
            std::vector<double> ds(B * C, 0.0), dE(kV1 * C, 0.0);
            cosine_ce_backward(ds.data(), dE.data(), st.view(), targets.data(), B, kV1, C, tau);
            all_item_embeddings_backward(d_table->data(), dE.data(), kItemCodes.data(), kV1, kM, C);
        }
        return loss;
    };
    std::vector<double> d_table(kR * C, 0.0);
    run(&d_table);
    std::vector<double> x(table.begin() + C, table.end());
    std::vector<double> analytic(d_table.begin() + C, d_table.end());
    auto f = [&] {
        std::copy(x.begin(), x.end(), table.begin() + C);
        return run(nullptr);
    };
    EXPECT_LT(gradcheck_rel_error(x, analytic, f), kGradTol);
}

// ---------------------------------------------------------------- Adam

// Hand derivation with b1 = 0.9, b2 = 0.999, gradients 1, -1, 2 on one parameter p0 = 0.5:
//   t=1: m = 0.1,   v = 0.001;                 m̂ = 1,       v̂ = 1
//   t=2: m = -0.01, v = 0.001999, bc1 = 0.19;   m̂ = -1/19,   v̂ = 0.001999/0.001999 = 1
//   t=3: m = 0.191, v = 0.005997001, bc1 = 0.271, bc2 = 0.002997001;
//        m̂ = 191/271, v̂ = 5997001/2997001
// p_t = p_{t-1} - lr m̂ / (sqrt(v̂) + eps). A zero-gradient parameter never moves.
TEST(Adam, KnownValuesThreeSteps) {
    const double lr = 1e-3, eps = 1e-8;
    const double g[3] = {1, -1, 2};
    double expect[3];
    expect[0] = 0.5 - lr * 1.0 / (1.0 + eps);
    expect[1] = expect[0] - lr * (-1.0 / 19) / (1.0 + eps);
    expect[2] = expect[1] - lr * (191.0 / 271) / (std::sqrt(5997001.0 / 2997001) + eps);

    std::vector<double> p = {0.5, 0.25}, m(2, 0.0), v(2, 0.0);
    std::vector<float> pf = {0.5f, 0.25f}, mf(2, 0.f), vf(2, 0.f);
    for (int t = 1; t <= 3; ++t) {
        std::vector<double> grad = {g[t - 1], 0.0};
        std::vector<float> gradf = {float(g[t - 1]), 0.f};
        adam_step(p.data(), grad.data(), m.data(), v.data(), 2, lr, 0.9, 0.999, eps, t);
        adam_step(pf.data(), gradf.data(), mf.data(), vf.data(), 2, lr, 0.9, 0.999, eps, t);
        // double: a few roundings of O(1) numbers
        EXPECT_NEAR(p[0], expect[t - 1], 1e-15) << "t=" << t;
        EXPECT_EQ(p[1], 0.25);
        // float: p ~ 0.5 carries 3e-8 rounding per update; the moments' relative float error
        // (~1e-7) scales the lr-sized step, so 1e-7 absolute is a safe bound after 3 steps.
        EXPECT_NEAR(pf[0], expect[t - 1], 1e-7) << "t=" << t;
        EXPECT_EQ(pf[1], 0.25f);
    }
    EXPECT_NEAR(m[0], 0.191, 1e-15);
    EXPECT_NEAR(v[0], 0.005997001, 1e-15);
}

// Constant gradient: m̂ = g and v̂ = g² at every step, so every step moves by lr·g/(|g|+eps).
TEST(Adam, ConstantGradientMovesLrPerStep) {
    const double lr = 0.01, eps = 1e-8;
    std::vector<double> p = {1.0, -3.0}, grad = {0.2, -5.0}, m(2, 0.0), v(2, 0.0);
    for (int t = 1; t <= 5; ++t) {
        adam_step(p.data(), grad.data(), m.data(), v.data(), 2, lr, 0.9, 0.999, eps, t);
        EXPECT_NEAR(p[0], 1.0 - t * lr * 0.2 / (0.2 + eps), 1e-14);
        EXPECT_NEAR(p[1], -3.0 + t * lr * 5.0 / (5.0 + eps), 1e-14);
    }
}

// ---------------------------------------------------------------- ranking metrics

TEST(Metrics, RankBestWorstAndPaddingIgnored) {
    const double inf = std::numeric_limits<double>::infinity();
    // V = 5; column 0 = padding with a huge score must not count
    std::vector<double> row = {1e9, 0.1, 0.9, 0.3, -0.2, 0.5};
    EXPECT_EQ(rank_of_target(row.data(), 5, 2), 1); // best
    EXPECT_EQ(rank_of_target(row.data(), 5, 4), 5); // worst = V
    EXPECT_EQ(rank_of_target(row.data(), 5, 5), 2);
    EXPECT_EQ(rank_of_target(row.data(), 5, 1), 4);
    row[0] = inf;
    EXPECT_EQ(rank_of_target(row.data(), 5, 2), 1);
    std::vector<float> rowf(row.begin(), row.end());
    EXPECT_EQ(rank_of_target(rowf.data(), 5, 3), 3);
}

// Ties: an equally scored item with a LOWER id ranks ahead of the target, a higher id behind.
TEST(Metrics, TiesBrokenByLowerItemIdFirst) {
    std::vector<double> all_equal = {0, 7, 7, 7, 7, 7};
    for (int32_t t = 1; t <= 5; ++t) EXPECT_EQ(rank_of_target(all_equal.data(), 5, t), t);
    // target 3 (score 0.5): item 5 strictly better; item 1 ties with lower id (ahead);
    // item 4 ties with higher id (behind); item 2 worse -> rank 1 + 1 + 1 = 3
    std::vector<double> row = {9, 0.5, 0.1, 0.5, 0.5, 0.8};
    EXPECT_EQ(rank_of_target(row.data(), 5, 3), 3);
    EXPECT_EQ(rank_of_target(row.data(), 5, 1), 2); // only item 5 ahead
    EXPECT_EQ(rank_of_target(row.data(), 5, 4), 4); // 5, 1, 3 ahead
}

TEST(Metrics, BadInputsThrow) {
    std::vector<double> row = {0, 1, std::nan(""), 2};
    EXPECT_THROW(rank_of_target(row.data(), 3, 2), Error); // NaN target score
    EXPECT_THROW(rank_of_target(row.data(), 3, 0), Error); // padding is never a target
    EXPECT_THROW(rank_of_target(row.data(), 3, 4), Error);
    EXPECT_EQ(rank_of_target(row.data(), 3, 1), 2); // a NaN elsewhere never ranks ahead
    EXPECT_THROW(RankAccumulator({0}), Error);
}

TEST(Metrics, RecallNdcgAtKBoundaries) {
    RankAccumulator acc({10, 50});
    for (int64_t r : {1, 3, 10, 11, 50, 51, 1000}) acc.add(r);
    EXPECT_EQ(acc.rows, 7);
    EXPECT_DOUBLE_EQ(acc.recall(10), 3.0 / 7);                // 1, 3, 10
    EXPECT_DOUBLE_EQ(acc.recall(50), 5.0 / 7);                // + 11, 50
    const double n10 = 1.0 + 1.0 / 2 + 1.0 / std::log2(11.0); // log2(3+1) = 2
    const double n50 = n10 + 1.0 / std::log2(12.0) + 1.0 / std::log2(51.0);
    EXPECT_NEAR(acc.ndcg(10), n10 / 7, 1e-15);
    EXPECT_NEAR(acc.ndcg(50), n50 / 7, 1e-15);
    EXPECT_THROW(acc.recall(51), Error);
    RankAccumulator empty({10});
    EXPECT_EQ(empty.recall(10), 0.0);
    EXPECT_EQ(empty.ndcg(10), 0.0);
}

// Sums are integer histograms: merging in any grouping gives identical bits.
TEST(Metrics, MergeAndBatchAreOrderIndependent) {
    const int64_t B = 6, V = 4;
    std::vector<double> scores = probe_weights(B * (V + 1), 101);
    std::vector<int32_t> targets = {1, 4, 2, 2, 3, 4};
    RankAccumulator whole({1, 3});
    whole.add_batch(scores.data(), targets.data(), B, V, TieRule::lower_id);
    RankAccumulator a({1, 3}), b({1, 3});
    b.add_batch(scores.data() + 3 * (V + 1), targets.data() + 3, 3, V,
                TieRule::lower_id); // second half first
    a.add_batch(scores.data(), targets.data(), 3, V, TieRule::lower_id);
    b.merge(a);
    EXPECT_EQ(b.rows, whole.rows);
    EXPECT_EQ(b.spans, whole.spans);
    EXPECT_EQ(b.ndcg(3), whole.ndcg(3));
    int64_t hits = 0;
    for (int64_t r = 0; r < B; ++r)
        hits += rank_of_target(scores.data() + r * (V + 1), V, targets[r]) <= 3;
    EXPECT_DOUBLE_EQ(whole.recall(3), double(hits) / B);
    EXPECT_THROW(b.merge(RankAccumulator({10})), Error);
}

// ---------------------------------------------------------------- ties (eval.ties)

// Hand-computed standings and the rank span each rule gives.
TEST(MetricsTies, StandingAndRuleSpans) {
    // V = 6, target 4 (score 0.5): items 6 and 2 strictly better; items 1, 5 tie (1 lower id)
    std::vector<double> row = {9, 0.5, 0.7, 0.1, 0.5, 0.5, 0.9};
    const TargetStanding s = target_standing(row.data(), 6, 4);
    EXPECT_EQ(s.ahead, 2);
    EXPECT_EQ(s.tied, 2);
    EXPECT_EQ(s.tied_lower, 1);
    EXPECT_EQ(rank_span(s, TieRule::expected).first, 3);
    EXPECT_EQ(rank_span(s, TieRule::expected).span, 3); // ranks 3, 4, 5 equally likely
    EXPECT_EQ(rank_span(s, TieRule::optimistic).first, 3);
    EXPECT_EQ(rank_span(s, TieRule::pessimistic).first, 5);
    EXPECT_EQ(rank_span(s, TieRule::lower_id).first, 4);
    EXPECT_EQ(rank_of_target(row.data(), 6, 4), 4);
    for (TieRule t : {TieRule::pessimistic, TieRule::optimistic, TieRule::lower_id})
        EXPECT_EQ(rank_span(s, t).span, 1);
    for (TieRule t :
         {TieRule::expected, TieRule::pessimistic, TieRule::optimistic, TieRule::lower_id})
        EXPECT_EQ(parse_tie_rule(tie_rule_name(t)), t);
    EXPECT_THROW(parse_tie_rule("random"), Error);
}

// Expected Recall@K / NDCG@K of a span, against values worked out by hand.
TEST(MetricsTies, ExpectedSpanByHand) {
    RankAccumulator acc({10, 50});
    acc.add(RankSpan{9, 4}); // ranks 9..12: half of them within 10
    EXPECT_DOUBLE_EQ(acc.recall(10), 0.5);
    EXPECT_DOUBLE_EQ(acc.recall(50), 1.0);
    EXPECT_NEAR(acc.ndcg(10), (1 / std::log2(10.0) + 1 / std::log2(11.0)) / 4, 1e-16);
    EXPECT_NEAR(
        acc.ndcg(50),
        (1 / std::log2(10.0) + 1 / std::log2(11.0) + 1 / std::log2(12.0) + 1 / std::log2(13.0)) / 4,
        1e-16);
    acc.add(RankSpan{11, 1}); // a definite miss at 10
    acc.add(RankSpan{60, 7}); // starts beyond every K: counted as a row, nowhere else
    EXPECT_EQ(acc.rows, 3);
    EXPECT_DOUBLE_EQ(acc.recall(10), 0.5 / 3);
    EXPECT_DOUBLE_EQ(acc.recall(50), 2.0 / 3);
    // 1 relevant item among 5 all tied at the top: Recall@1 = 1/5, NDCG@1 = 1/5
    RankAccumulator top({1});
    top.add(rank_span(TargetStanding{0, 4, 0}, TieRule::expected));
    EXPECT_DOUBLE_EQ(top.recall(1), 0.2);
    EXPECT_DOUBLE_EQ(top.ndcg(1), 0.2);
}

// The expected rule equals the average over every order of the tied items, enumerated.
TEST(MetricsTies, ExpectedEqualsMeanOverAllTieOrders) {
    // V = 7; scores with two tie classes; K = 3
    const std::vector<double> row = {0, 0.4, 0.8, 0.4, 0.8, 0.4, 0.1, 0.8};
    for (int32_t target = 1; target <= 7; ++target) {
        // every permutation of item ids is an order of the tied items (strict order kept)
        std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7};
        std::vector<int64_t> orders_with_rank(8, 0); // exact counts; summed once below
        int64_t orders = 0;
        do {
            // rank = 1 + strictly better + tied items placed before the target in `ids`
            int64_t rank = 1;
            for (int32_t j = 1; j <= 7; ++j)
                if (j != target && row[size_t(j)] > row[size_t(target)]) ++rank;
            for (int32_t j : ids) {
                if (j == target) break;
                if (row[size_t(j)] == row[size_t(target)]) ++rank;
            }
            ++orders_with_rank[size_t(rank)];
            ++orders;
        } while (std::next_permutation(ids.begin(), ids.end()));
        double hit = 0, gain = 0;
        for (int64_t r = 1; r <= 3; ++r) {
            hit += double(orders_with_rank[size_t(r)]);
            gain += double(orders_with_rank[size_t(r)]) / std::log2(double(r + 1));
        }
        RankAccumulator acc({3});
        acc.add(rank_span(target_standing(row.data(), 7, target), TieRule::expected));
        EXPECT_NEAR(acc.recall(3), hit / double(orders), 1e-15) << "target " << target;
        EXPECT_NEAR(acc.ndcg(3), gain / double(orders), 1e-15) << "target " << target;
        // and it lies between the pessimistic and optimistic bounds
        RankAccumulator lo({3}), hi({3});
        lo.add(rank_span(target_standing(row.data(), 7, target), TieRule::pessimistic));
        hi.add(rank_span(target_standing(row.data(), 7, target), TieRule::optimistic));
        EXPECT_LE(lo.recall(3), acc.recall(3));
        EXPECT_GE(hi.recall(3), acc.recall(3));
    }
}

// Grouping items by code row: each group scored once gives the same standing as every item
// scored separately with the group's score, for every target and rule, also when two groups
// tie by coincidence of their scores.
TEST(MetricsTies, DistinctItemsStandingEqualsExpandedRow) {
    const int64_t V = 9, M = 2;
    // codes of items 0..9 (row 0 padding): groups {1,4,9}, {2}, {3,7}, {5}, {6,8}
    const std::vector<int32_t> codes = {0, 0, 1, 1, 2, 2, 3, 3, 1, 1, 4, 4, 5, 5, 3, 3, 5, 5, 1, 1};
    const DistinctItems items(codes.data(), V, M);
    ASSERT_EQ(items.groups(), 5);
    EXPECT_EQ(items.representative, (std::vector<int32_t>{1, 2, 3, 5, 6}));
    EXPECT_EQ(items.size, (std::vector<int64_t>{3, 1, 2, 1, 2}));
    EXPECT_EQ(items.rank_in_group[9], 2);
    EXPECT_EQ(items.group_of[8], 4);
    // group scores; group 3 ({5}) ties group 0 by coincidence
    const std::vector<float> group_scores = {0.25f, 0.75f, -0.5f, 0.25f, 0.5f};
    std::vector<float> expanded(size_t(V + 1), 0.f);
    expanded[0] = 1e9f;
    for (int64_t j = 1; j <= V; ++j)
        expanded[size_t(j)] = group_scores[size_t(items.group_of[size_t(j)])];
    for (int32_t t = 1; t <= V; ++t) {
        const TargetStanding a = target_standing(expanded.data(), V, t);
        const TargetStanding b = target_standing(group_scores.data(), items, t);
        EXPECT_EQ(a.ahead, b.ahead) << "target " << t;
        EXPECT_EQ(a.tied, b.tied) << "target " << t;
        EXPECT_EQ(a.tied_lower, b.tied_lower) << "target " << t;
    }
    // target 9 (group 0): ahead 2, 6, 8; tied 1, 4 (its group) and 5 (equal score)
    const TargetStanding s9 = target_standing(group_scores.data(), items, 9);
    EXPECT_EQ(s9.ahead, 3);
    EXPECT_EQ(s9.tied, 3);
    EXPECT_EQ(s9.tied_lower, 3);
}

// The same on enough groups for the vectorised path (8 groups a step, AVX-512 builds), with many
// cross-group ties, the target's group in every lane position and a NaN group score.
TEST(MetricsTies, DistinctItemsStandingEqualsExpandedRowManyGroups) {
    const int64_t V = 300, M = 1;
    std::vector<int32_t> codes(size_t(V + 1));
    for (int64_t j = 1; j <= V; ++j) codes[size_t(j)] = int32_t((j * 7919) % 83); // 83 groups
    const DistinctItems items(codes.data(), V, M);
    ASSERT_EQ(items.groups(), 83);
    std::vector<float> group_scores(size_t(items.groups()));
    for (int64_t g = 0; g < items.groups(); ++g)
        group_scores[size_t(g)] = float((g * 37) % 11) * 0.125f; // 11 values: many ties
    group_scores[40] = std::nanf("");
    std::vector<float> expanded(size_t(V + 1), 1e9f);
    for (int64_t j = 1; j <= V; ++j)
        expanded[size_t(j)] = group_scores[size_t(items.group_of[size_t(j)])];
    for (int32_t t = 1; t <= V; ++t) {
        if (items.group_of[size_t(t)] == 40) continue; // a NaN target score throws
        const TargetStanding a = target_standing(expanded.data(), V, t);
        const TargetStanding b = target_standing(group_scores.data(), items, t);
        EXPECT_EQ(a.ahead, b.ahead) << "target " << t;
        EXPECT_EQ(a.tied, b.tied) << "target " << t;
        EXPECT_EQ(a.tied_lower, b.tied_lower) << "target " << t;
    }
}

} // namespace
} // namespace pfcr
