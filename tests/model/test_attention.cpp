// Attention core (src/model/attention.hpp): hand-computed forward, dropout keying, packed kernel
// vs the padded RecBole-style reference (double and float), double-precision gradient checks
// with and without dropout for all-queries and last-query-only, and batch-chunking invariance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.hpp"
#include "gradcheck.hpp"
#include "model/attention.hpp"

using namespace pfcr;

namespace {

// Index arrays of one packed batch (see the header of attention.hpp).
struct Batch {
    int64_t B = 0, C = 0, NH = 0, T_max = 0, N = 0, NQ = 0, NP = 0;
    std::vector<int64_t> len, off, first_query, qoff, probs_off;
    std::vector<uint64_t> row_base; // documented intended value: b * NH * T_max * T_max
};

Batch make_batch(const std::vector<int64_t>& len, const std::vector<int64_t>& first_query,
                 int64_t C, int64_t NH, int64_t T_max) {
    Batch bt;
    bt.B = int64_t(len.size());
    bt.C = C;
    bt.NH = NH;
    bt.T_max = T_max;
    bt.len = len;
    bt.first_query = first_query;
    bt.off.assign(bt.B + 1, 0);
    for (int64_t b = 0; b < bt.B; ++b) bt.off[b + 1] = bt.off[b] + len[b];
    bt.N = bt.off[bt.B];
    bt.qoff.resize(bt.B + 1);
    bt.probs_off.resize(bt.B + 1);
    bt.NQ = attention_query_offsets(bt.off.data(), first_query.data(), bt.B, bt.qoff.data());
    bt.NP =
        attention_probs_offsets(bt.off.data(), first_query.data(), bt.B, NH, bt.probs_off.data());
    for (int64_t b = 0; b < bt.B; ++b) bt.row_base.push_back(uint64_t(b * NH * T_max * T_max));
    return bt;
}

std::vector<int64_t> all_queries(const std::vector<int64_t>& len) {
    return std::vector<int64_t>(len.size(), 0);
}
std::vector<int64_t> last_query(const std::vector<int64_t>& len) {
    std::vector<int64_t> fq;
    for (int64_t l : len) fq.push_back(l - 1);
    return fq;
}

template <typename T>
std::vector<T> uniform(size_t n, uint32_t stream, double lo = -1, double hi = 1) {
    KeyedRng rng(12345, RngPurpose::synth);
    auto s = rng.stream(stream);
    std::vector<T> x(n);
    for (auto& v : x) v = T(lo + (hi - lo) * s.uniform());
    return x;
}

AttentionDropout make_dropout(const Batch& bt, const KeyedRng& rng, double p) {
    AttentionDropout d;
    d.p = p;
    d.rng = &rng;
    d.a = 3;
    d.b = 1;
    d.c = 4;
    d.row_base = bt.row_base.data();
    d.T_max = bt.T_max;
    return d;
}

template <typename T> struct Fwd { std::vector<T> out, probs, probs_drop; };

template <typename T>
Fwd<T> forward(const Batch& bt, const std::vector<T>& q, const std::vector<T>& k,
               const std::vector<T>& v, const AttentionDropout& drop) {
    Fwd<T> f{std::vector<T>(bt.NQ * bt.C), std::vector<T>(bt.NP), std::vector<T>(bt.NP)};
    attention_forward(f.out.data(), f.probs.data(), f.probs_drop.data(), q.data(), k.data(),
                      v.data(), bt.off.data(), bt.qoff.data(), bt.first_query.data(),
                      bt.probs_off.data(), bt.B, bt.C, bt.NH, drop);
    return f;
}

// A float batch at the paper's width (C = 300, 2 heads, T_max = 12) with random q, k, v, dout
// (test streams seed .. seed + 3) and its forward pass with dropout 0.5.
struct FloatCase {
    Batch bt;
    std::vector<float> q, k, v, dout;
    Fwd<float> f;
};
FloatCase float_case(const std::vector<int64_t>& len, const std::vector<int64_t>& fq,
                     uint32_t seed) {
    FloatCase c;
    c.bt = make_batch(len, fq, 300, 2, 12);
    c.q = uniform<float>(c.bt.NQ * 300, seed);
    c.k = uniform<float>(c.bt.N * 300, seed + 1);
    c.v = uniform<float>(c.bt.N * 300, seed + 2);
    c.dout = uniform<float>(c.bt.NQ * 300, seed + 3);
    const KeyedRng rng(2020, RngPurpose::dropout);
    c.f = forward(c.bt, c.q, c.k, c.v, make_dropout(c.bt, rng, 0.5));
    return c;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Known values.

// One head, C = 2, one sequence of length 2. Keys are the unit vectors, so with
// q1 = (0, sqrt(2) ln 3) the scores of query 1 are (0, ln 3) (after / sqrt(2)) and
// P[1,:] = (1/4, 3/4); query 0 sees only key 0, P[0,0] = 1.
//   out0 = v0 = (1, 2),   out1 = 1/4 (1, 2) + 3/4 (3, 4) = (2.5, 3.5).
TEST(AttentionForward, KnownValueTinyCase) {
    const std::vector<double> q = {0.3, -0.7, 0.0, std::sqrt(2.0) * std::log(3.0)};
    const std::vector<double> k = {1, 0, 0, 1};
    const std::vector<double> v = {1, 2, 3, 4};
    const Batch all = make_batch({2}, {0}, 2, 1, 2);
    ASSERT_EQ(all.NP, 3); // rows of length 1 and 2
    const auto f = forward(all, q, k, v, AttentionDropout{});
    const std::vector<double> out = {1, 2, 2.5, 3.5}, probs = {1, 0.25, 0.75};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(f.out[i], out[i], 1e-15) << i;
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(f.probs[i], probs[i], 1e-15) << i;
    EXPECT_EQ(f.probs_drop, f.probs); // p = 0: identity

    // Last query only: Q holds just position 1; probs holds just its row.
    const Batch last = make_batch({2}, {1}, 2, 1, 2);
    ASSERT_EQ(last.NQ, 1);
    ASSERT_EQ(last.NP, 2);
    const std::vector<double> q_last(q.begin() + 2, q.end());
    const auto g = forward(last, q_last, k, v, AttentionDropout{});
    EXPECT_NEAR(g.out[0], 2.5, 1e-15);
    EXPECT_NEAR(g.out[1], 3.5, 1e-15);
    EXPECT_NEAR(g.probs[0], 0.25, 1e-15);
    EXPECT_NEAR(g.probs[1], 0.75, 1e-15);
}

// Same case with p = 0.5: every probability is either dropped (0) or doubled, exactly as
// attn_dropout_keep decides at e = row_base + (h*T_max + t)*T_max + j, and the output is P_d · V.
TEST(AttentionForward, DropoutZeroesOrRescalesEachProbability) {
    const std::vector<double> q = {0.3, -0.7, 0.0, std::sqrt(2.0) * std::log(3.0)};
    const std::vector<double> k = {1, 0, 0, 1}, v = {1, 2, 3, 4};
    Batch bt = make_batch({2}, {0}, 2, 1, 2);
    bt.row_base = {1000}; // any base: the decisions follow it
    const KeyedRng rng(7, RngPurpose::dropout);
    const auto d = make_dropout(bt, rng, 0.5);
    const auto f = forward(bt, q, k, v, d);
    // (t, j) of the packed entries 0, 1, 2 and their element index e = 1000 + t*2 + j.
    const int tj[3][2] = {{0, 0}, {1, 0}, {1, 1}};
    for (int i = 0; i < 3; ++i) {
        const uint64_t e = 1000 + uint64_t(tj[i][0] * 2 + tj[i][1]);
        const bool keep = attn_dropout_keep(rng, d.a, d.b, d.c, e, 0.5);
        EXPECT_EQ(f.probs_drop[i], keep ? 2 * f.probs[i] : 0.0) << i;
    }
    const double* pd = f.probs_drop.data();
    const double out[4] = {pd[0] * 1, pd[0] * 2, pd[1] * 1 + pd[2] * 3, pd[1] * 2 + pd[2] * 4};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(f.out[i], out[i], 1e-15) << i;
}

TEST(AttentionDropoutKeep, RateKeyingAndZeroProbability) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int n = 200000;
    int kept50 = 0, kept20 = 0, agree = 0;
    for (int e = 0; e < n; ++e) {
        EXPECT_TRUE(attn_dropout_keep(rng, 1, 2, 3, uint64_t(e), 0.0));
        const bool k50 = attn_dropout_keep(rng, 1, 2, 3, uint64_t(e), 0.5);
        kept50 += k50;
        kept20 += attn_dropout_keep(rng, 1, 2, 3, uint64_t(e), 0.2);
        agree += (k50 == attn_dropout_keep(rng, 1, 2, 4, uint64_t(e), 0.5)); // other stream
        // Pure function of (key, a, b, c, e).
        if (e < 100) {
            EXPECT_EQ(k50, attn_dropout_keep(rng, 1, 2, 3, uint64_t(e), 0.5));
        }
    }
    // Binomial standard deviations are about 0.0011 and 0.0009: 0.005 is > 4.5 sigma.
    EXPECT_NEAR(double(kept50) / n, 0.5, 0.005);
    EXPECT_NEAR(double(kept20) / n, 0.8, 0.005);
    EXPECT_NEAR(double(agree) / n, 0.5, 0.005); // independent streams agree half the time
}

// ---------------------------------------------------------------------------------------------
// Packed kernel vs the padded reference (RecBole's formulation with the -10000 additive mask).

namespace {

// Builds random padded q/k/v (padding rows hold random values too, as RecBole's padded rows
// hold the padding embedding + position, to show they never leak), runs both paths and returns
// the largest absolute difference over computed output rows and probabilities. Also checks that
// the reference's masked probabilities of computed queries are exactly 0 (the underflow claim).
template <typename T>
double max_diff_vs_reference(const std::vector<int64_t>& len, const std::vector<int64_t>& fq,
                             int64_t C, int64_t NH, int64_t T_max, double p) {
    const Batch bt = make_batch(len, fq, C, NH, T_max);
    const int64_t B = bt.B;
    const auto q_pad = uniform<T>(B * T_max * C, 1), k_pad = uniform<T>(B * T_max * C, 2),
               v_pad = uniform<T>(B * T_max * C, 3);
    std::vector<T> q(bt.NQ * C), k(bt.N * C), v(bt.N * C);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < len[b]; ++t)
            for (int64_t i = 0; i < C; ++i) {
                k[(bt.off[b] + t) * C + i] = k_pad[(b * T_max + t) * C + i];
                v[(bt.off[b] + t) * C + i] = v_pad[(b * T_max + t) * C + i];
                if (t >= fq[b])
                    q[(bt.qoff[b] + t - fq[b]) * C + i] = q_pad[(b * T_max + t) * C + i];
            }
    const KeyedRng rng(99, RngPurpose::dropout);
    const auto drop = make_dropout(bt, rng, p);
    const auto f = forward(bt, q, k, v, drop);
    std::vector<T> out_pad(B * T_max * C), probs_pad(B * NH * T_max * T_max);
    attention_forward_reference(out_pad.data(), probs_pad.data(), q_pad.data(), k_pad.data(),
                                v_pad.data(), len.data(), B, T_max, C, NH, drop);
    double diff = 0;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = fq[b]; t < len[b]; ++t) {
            for (int64_t i = 0; i < C; ++i)
                diff = std::max(diff, double(std::abs(f.out[(bt.qoff[b] + t - fq[b]) * C + i] -
                                                      out_pad[(b * T_max + t) * C + i])));
            for (int64_t h = 0; h < NH; ++h) {
                const int64_t S = attn_tri(len[b]) - attn_tri(fq[b]);
                const T* pk =
                    f.probs.data() + bt.probs_off[b] + h * S + attn_tri(t) - attn_tri(fq[b]);
                const T* pr = probs_pad.data() + ((b * NH + h) * T_max + t) * T_max;
                for (int64_t j = 0; j <= t; ++j)
                    diff = std::max(diff, double(std::abs(pk[j] - pr[j])));
                for (int64_t j = t + 1; j < T_max; ++j)
                    EXPECT_EQ(pr[j], T(0)) << b << " " << t << " " << j;
            }
        }
    return diff;
}

} // namespace

// Double: both paths evaluate the same expressions, differing only in summation order of the
// HS-term dot products (Eigen's vectorised dot vs a sequential loop), so they agree to a few ulps
// of O(1) quantities; 1e-12 leaves three orders of margin.
TEST(AttentionReference, PackedMatchesPaddedDouble) {
    const int64_t T_max = 8;
    const std::vector<int64_t> len = {1, T_max, 3, 7, 2, T_max, 1, 5};
    std::vector<int64_t> mid; // an arbitrary suffix: middle position
    for (int64_t l : len) mid.push_back(l / 2);
    for (double p : {0.0, 0.5}) {
        for (const auto& fq : {all_queries(len), last_query(len), mid}) {
            EXPECT_LE(max_diff_vs_reference<double>(len, fq, 60, 3, T_max, p), 1e-12) << p;
        }
    }
}

// Float at the real sizes (C 300, NH 2, HS 150, T_max 50), inputs in [-1, 1]. Each score is a
// 150-term dot product divided by sqrt(150): sum |q_i k_i| / sqrt(HS) is about 3, so each path's
// rounding error is at most gamma_150 * 3 ~ 3e-5 in the worst case and ~ sqrt(150) u * 3 ~ 2e-6
// typically; softmax and the convex combination P·V (|v| <= 1, dropout scale 2) pass that on with a
// factor of at most a few. Measured max difference: 2.4e-7; 2e-5 (~100x that, below the worst-case
// bound) still sits four orders below the O(0.1) errors of a wrong mask or index.
TEST(AttentionReference, PackedMatchesPaddedFloat) {
    const int64_t T_max = 50;
    const std::vector<int64_t> len = {1, T_max, 7, 3, 12, T_max, 2, 9};
    for (double p : {0.0, 0.5}) {
        for (const auto& fq : {all_queries(len), last_query(len)}) {
            const double d = max_diff_vs_reference<float>(len, fq, 300, 2, T_max, p);
            EXPECT_LE(d, 2e-5) << p;
            RecordProperty("max_diff", std::to_string(d));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient checks (double, central differences, tol 1e-6; see gradcheck.hpp).

namespace {

void check_gradients(const std::vector<int64_t>& len, const std::vector<int64_t>& fq, double p) {
    const int64_t C = 6, NH = 2, T_max = 4;
    const Batch bt = make_batch(len, fq, C, NH, T_max);
    auto q = uniform<double>(bt.NQ * C, 11), k = uniform<double>(bt.N * C, 12),
         v = uniform<double>(bt.N * C, 13);
    const KeyedRng rng(5, RngPurpose::dropout);
    const auto drop = make_dropout(bt, rng, p); // fixed keys: a fixed mask under perturbation
    const auto w = test::probe_weights(bt.NQ * C, 3);
    const auto loss = [&] {
        const auto f = forward(bt, q, k, v, drop);
        double l = 0;
        for (size_t i = 0; i < w.size(); ++i) l += w[i] * f.out[i];
        return l;
    };
    const auto f = forward(bt, q, k, v, drop);
    if (p > 0) { // the dropout path is really exercised: some entries dropped, some kept
        int dropped = 0;
        for (double x : f.probs_drop) dropped += (x == 0);
        EXPECT_GT(dropped, 0);
        EXPECT_LT(dropped, int(f.probs_drop.size()));
    }
    std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
    attention_backward(dq.data(), dk.data(), dv.data(), w.data(), f.probs.data(),
                       f.probs_drop.data(), q.data(), k.data(), v.data(), bt.off.data(),
                       bt.qoff.data(), bt.first_query.data(), bt.probs_off.data(), bt.B, C, NH);
    EXPECT_LT(test::gradcheck_rel_error(q, dq, loss), 1e-6) << "dq";
    EXPECT_LT(test::gradcheck_rel_error(k, dk, loss), 1e-6) << "dk";
    EXPECT_LT(test::gradcheck_rel_error(v, dv, loss), 1e-6) << "dv";
}

const std::vector<int64_t> kGradLens = {1, 4, 3, 2};

} // namespace

TEST(AttentionGradcheck, AllQueriesNoDropout) {
    check_gradients(kGradLens, all_queries(kGradLens), 0.0);
}
TEST(AttentionGradcheck, AllQueriesDropout) {
    check_gradients(kGradLens, all_queries(kGradLens), 0.5);
}
TEST(AttentionGradcheck, LastQueryNoDropout) {
    check_gradients(kGradLens, last_query(kGradLens), 0.0);
}
TEST(AttentionGradcheck, LastQueryDropout) {
    check_gradients(kGradLens, last_query(kGradLens), 0.5);
}

// Backward accumulates (+=) into existing gradients rather than overwriting them.
TEST(AttentionGradcheck, BackwardAccumulates) {
    const std::vector<int64_t> len = {3, 2};
    const Batch bt = make_batch(len, all_queries(len), 4, 2, 3);
    const auto q = uniform<double>(bt.NQ * 4, 21), k = uniform<double>(bt.N * 4, 22),
               v = uniform<double>(bt.N * 4, 23), dout = uniform<double>(bt.NQ * 4, 24);
    const auto f = forward(bt, q, k, v, AttentionDropout{});
    auto run = [&](std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv) {
        attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), f.probs.data(),
                           f.probs_drop.data(), q.data(), k.data(), v.data(), bt.off.data(),
                           bt.qoff.data(), bt.first_query.data(), bt.probs_off.data(), bt.B, 4, 2);
    };
    std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
    run(dq, dk, dv);
    auto dq2 = dq, dk2 = dk, dv2 = dv;
    run(dq2, dk2, dv2);
    for (size_t i = 0; i < dq.size(); ++i) EXPECT_DOUBLE_EQ(dq2[i], 2 * dq[i]);
    for (size_t i = 0; i < dk.size(); ++i) EXPECT_DOUBLE_EQ(dk2[i], 2 * dk[i]);
    for (size_t i = 0; i < dv.size(); ++i) EXPECT_DOUBLE_EQ(dv2[i], 2 * dv[i]);
}

// ---------------------------------------------------------------------------------------------
// Chunking invariance: the same (rng, a, b, c, row_base) gives bit-identical forward outputs,
// probabilities and gradients whether the batch is processed in one call or split in two calls
// over the same buffers (absolute offsets; pointers advanced by b0).
TEST(AttentionChunking, SplitBatchGivesIdenticalBits) {
    const std::vector<int64_t> len = {5, 1, 9, 3, 12, 2, 7};
    const std::vector<int64_t> fq = {0, 0, 8, 1, 0, 1, 6}; // a mix of all/last/suffix
    const int64_t C = 300, NH = 2, T_max = 12, b0 = 3;
    const Batch bt = make_batch(len, fq, C, NH, T_max);
    const auto q = uniform<float>(bt.NQ * C, 31), k = uniform<float>(bt.N * C, 32),
               v = uniform<float>(bt.N * C, 33), dout = uniform<float>(bt.NQ * C, 34);
    const KeyedRng rng(2020, RngPurpose::dropout);
    const auto drop = make_dropout(bt, rng, 0.5);
    const auto whole = forward(bt, q, k, v, drop);
    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), whole.probs.data(),
                       whole.probs_drop.data(), q.data(), k.data(), v.data(), bt.off.data(),
                       bt.qoff.data(), bt.first_query.data(), bt.probs_off.data(), bt.B, C, NH);

    Fwd<float> split{std::vector<float>(whole.out.size()), std::vector<float>(bt.NP),
                     std::vector<float>(bt.NP)};
    std::vector<float> dq2(q.size()), dk2(k.size()), dv2(v.size());
    for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, b0}, {b0, bt.B}}) {
        AttentionDropout d = drop;
        d.row_base = bt.row_base.data() + lo;
        attention_forward(split.out.data(), split.probs.data(), split.probs_drop.data(), q.data(),
                          k.data(), v.data(), bt.off.data() + lo, bt.qoff.data() + lo,
                          bt.first_query.data() + lo, bt.probs_off.data() + lo, hi - lo, C, NH, d);
        attention_backward(dq2.data(), dk2.data(), dv2.data(), dout.data(), split.probs.data(),
                           split.probs_drop.data(), q.data(), k.data(), v.data(),
                           bt.off.data() + lo, bt.qoff.data() + lo, bt.first_query.data() + lo,
                           bt.probs_off.data() + lo, hi - lo, C, NH);
    }
    EXPECT_EQ(split.out, whole.out);
    EXPECT_EQ(split.probs, whole.probs);
    EXPECT_EQ(split.probs_drop, whole.probs_drop);
    EXPECT_EQ(dq2, dq);
    EXPECT_EQ(dk2, dk);
    EXPECT_EQ(dv2, dv);
}

// attn_dot's documented order, written out with attn_madd (std::fma where the target has FMA,
// as attn_dot's own scalar path): 16 lane partials over the full
// groups, a sequential tail, the lanes combined pairwise (l + 8, + 4, + 2, + 1), the tail last.
// The AVX-512 path keeps the partials in a register and combines them with shuffles.
TEST(AttentionKernels, DotHasTheDocumentedOrderBitForBit) {
    for (int64_t n : {1, 6, 15, 16, 17, 31, 32, 33, 64, 150, 300}) {
        const auto x = uniform<float>(n, 70 + n);
        const auto y = uniform<float>(n, 80 + n);
        float acc[16] = {};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; ++l)
                acc[l] = attn_madd(x[size_t(i + l)], y[size_t(i + l)], acc[l]);
        float tail = 0;
        for (; i < n; ++i) tail = attn_madd(x[size_t(i)], y[size_t(i)], tail);
        for (int w = 8; w > 0; w /= 2)
            for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
        EXPECT_EQ(attn_dot(x.data(), y.data(), n), acc[0] + tail) << n;
    }
}

// attn_axpy_rows (registers across rows, AVX-512 float) against its plain definition, one
// attn_axpy per row in row order: bit for bit, for widths around the 16- and 64-column tiles
// (HS = 150 is the paper's) and 0 to 7 rows.
TEST(AttentionKernels, AxpyRowsEqualsOneAxpyPerRowBitForBit) {
    for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 150, 300}) {
        for (int64_t count : {0, 1, 2, 7}) {
            const int64_t stride = n + 3;
            const auto x = uniform<float>(count * stride + 1, 40 + n);
            const auto a = uniform<float>(count + 1, 50 + count);
            auto y = uniform<float>(n, 60);
            auto expect = y;
            for (int64_t i = 0; i < count; ++i)
                attn_axpy(a[size_t(i)], x.data() + i * stride, expect.data(), n);
            attn_axpy_rows(y.data(), a.data(), x.data(), stride, count, n);
            EXPECT_EQ(y, expect) << n << " " << count;
        }
    }
}

// Write mode (accumulate = false): each sequence's dq/dk/dv rows are zeroed by the kernel, so
// buffers holding anything give the values of accumulating into zeros.
TEST(AttentionKernels, BackwardWriteModeEqualsAccumulatingIntoZeros) {
    const FloatCase fc = float_case({5, 1, 9, 3}, {0, 0, 8, 1}, 31);
    const auto& [bt, q, k, v, dout, f] = fc;
    const int64_t C = 300, NH = 2;
    const auto run = [&](float fill, bool accumulate) {
        std::vector<float> dq(q.size(), fill), dk(k.size(), fill), dv(v.size(), fill);
        attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), f.probs.data(),
                           f.probs_drop.data(), q.data(), k.data(), v.data(), bt.off.data(),
                           bt.qoff.data(), bt.first_query.data(), bt.probs_off.data(), bt.B, C, NH,
                           accumulate);
        dq.insert(dq.end(), dk.begin(), dk.end());
        dq.insert(dq.end(), dv.begin(), dv.end());
        return dq;
    };
    EXPECT_EQ(run(0.0f, true), run(std::numeric_limits<float>::quiet_NaN(), false));
}

namespace {
// The backward as one axpy per (query t, key j) pair, in t order (the kernel before it summed
// dk and dv per key in registers): the scheme whose bits attention_backward keeps.
template <typename T>
void backward_pairs_scheme(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* probs_drop,
                           const T* q, const T* k, const T* v, const Batch& bt, int64_t C,
                           int64_t NH) {
    const int64_t HS = C / NH;
    const T sqrt_hs = T(std::sqrt(double(HS)));
    for (int64_t b = 0; b < bt.B; ++b) {
        const int64_t o = bt.off[size_t(b)], len = bt.off[size_t(b + 1)] - o;
        const int64_t fq = bt.first_query[size_t(b)];
        const int64_t S_b = attn_tri(len) - attn_tri(fq);
        for (int64_t h = 0; h < NH; ++h) {
            for (int64_t t = fq; t < len; ++t) {
                const int64_t row = bt.qoff[size_t(b)] + t - fq;
                const int64_t pidx = bt.probs_off[size_t(b)] + h * S_b + attn_tri(t) - attn_tri(fq);
                const T* do_t = dout + row * C + h * HS;
                std::vector<T> d_pd(size_t(t + 1)), d_s(size_t(t + 1));
                T pd_dot = 0;
                for (int64_t j = 0; j <= t; ++j) {
                    d_pd[size_t(j)] = attn_dot(do_t, v + (o + j) * C + h * HS, HS);
                    pd_dot = attn_madd(probs_drop[pidx + j], d_pd[size_t(j)], pd_dot);
                    attn_axpy(probs_drop[pidx + j], do_t, dv + (o + j) * C + h * HS, HS);
                }
                for (int64_t j = 0; j <= t; ++j) {
                    d_s[size_t(j)] = attn_madd(probs_drop[pidx + j], d_pd[size_t(j)],
                                               -(probs[pidx + j] * pd_dot)) /
                                     sqrt_hs;
                    attn_axpy(d_s[size_t(j)], q + row * C + h * HS, dk + (o + j) * C + h * HS, HS);
                }
                for (int64_t j = 0; j <= t; ++j)
                    attn_axpy(d_s[size_t(j)], k + (o + j) * C + h * HS, dq + row * C + h * HS, HS);
            }
        }
    }
}
} // namespace

// The kernel's two passes (queries, then keys with dk and dv in registers) give the bits of the
// pairwise scheme above, accumulating or writing, for all / last / suffix queries, with dropout,
// at the paper's head size (HS = 150: a full and a short 64-column tile).
TEST(AttentionKernels, BackwardEqualsPairwiseSchemeBitForBit) {
    const FloatCase fc = float_case({5, 1, 9, 3, 12, 2, 7}, {0, 0, 8, 1, 0, 1, 6}, 71);
    const auto& [bt, q, k, v, dout, f] = fc;
    const int64_t C = 300, NH = 2;
    for (bool accumulate : {true, false}) {
        const float fill = accumulate ? 0.25f : std::numeric_limits<float>::quiet_NaN();
        std::vector<float> dq(q.size(), fill), dk(k.size(), fill), dv(v.size(), fill);
        attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), f.probs.data(),
                           f.probs_drop.data(), q.data(), k.data(), v.data(), bt.off.data(),
                           bt.qoff.data(), bt.first_query.data(), bt.probs_off.data(), bt.B, C, NH,
                           accumulate);
        const float start = accumulate ? 0.25f : 0.0f;
        std::vector<float> eq(q.size(), start), ek(k.size(), start), ev(v.size(), start);
        backward_pairs_scheme(eq.data(), ek.data(), ev.data(), dout.data(), f.probs.data(),
                              f.probs_drop.data(), q.data(), k.data(), v.data(), bt, C, NH);
        EXPECT_EQ(dq, eq) << "accumulate " << accumulate;
        EXPECT_EQ(dk, ek) << "accumulate " << accumulate;
        EXPECT_EQ(dv, ev) << "accumulate " << accumulate;
    }
}
