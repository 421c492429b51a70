// Element-wise and dense layers of the encoder (LayerNorm, Linear, GELU, Dropout): known-value
// forwards, double-precision central-difference gradient checks (gradcheck.hpp, tol 1e-6),
// Eigen GEMM vs plain-loop reference, dropout mask statistics and chunking invariance, and
// float instantiations compared against double with error bounds derived in each test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <type_traits>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "gradcheck.hpp"
#include "model/dropout.hpp"
#include "model/gelu.hpp"
#include "model/layernorm.hpp"
#include "model/linear.hpp"
#include "model/vmath.hpp"

using namespace pfcr;
using pfcr::test::gradcheck_rel_error;
using pfcr::test::probe_weights;

namespace {

constexpr double kGradTol = 1e-6; // see gradcheck.hpp for why 1e-6 is the right scale
constexpr double kUf = 0x1.0p-24; // unit roundoff of float (eps/2)
constexpr double kUd = 0x1.0p-53; // unit roundoff of double

// n standard-normal values * scale + shift, from a keyed test stream (reproducible).
std::vector<double> randn(size_t n, uint32_t stream, double scale = 1.0, double shift = 0.0) {
    auto s = KeyedRng(2020, RngPurpose::synth).stream(stream, 0xC0FFEE);
    std::vector<double> v(n);
    for (auto& x : v) x = shift + scale * s.normal();
    return v;
}

// Values rounded to float and back, so float and double paths see identical inputs.
std::vector<double> float_exact(std::vector<double> v) {
    for (auto& x : v) x = double(float(x));
    return v;
}
std::vector<float> to_float(const std::vector<double>& v) {
    return {v.begin(), v.end()};
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// gamma_k = k u / (1 - k u): the classic bound on the relative error of a k-term dot product
// or sum evaluated in any order (Higham, Accuracy and Stability, Thm 3.1 / §4.2).
double gamma(int64_t k, double u) {
    return double(k) * u / (1.0 - double(k) * u);
}

} // namespace

// ------------------------------------------------------------------------------ LayerNorm

TEST(LayerNorm, KnownValues) {
    const int64_t C = 4;
    // Row 0: [1,2,3,4], mean 2.5, biased var 1.25, rstd 1/sqrt(1.25), weight 1, bias 0.
    // Row 1: a constant row: variance exactly 0, so out = bias (normalised values are 0).
    std::vector<double> inp = {1, 2, 3, 4, 3, 3, 3, 3};
    std::vector<double> w = {1, 1, 1, 1}, b = {0, 0, 0, 0};
    std::vector<double> out(8), mean(2), rstd(2);
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(),
                      int64_t(2), C, 1e-12);
    const double big = 1.3416407864998738, small = 0.4472135954999579; // 1.5, 0.5 / sqrt(1.25)
    const double expect0[4] = {-big, -small, small, big};
    // eps = 1e-12 shifts rstd by a relative 4e-13; 1e-12 absolute covers it and rounding.
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], expect0[i], 1e-12);
    EXPECT_DOUBLE_EQ(mean[0], 2.5);
    EXPECT_NEAR(rstd[0], 0.8944271909999159, 1e-12);
    EXPECT_DOUBLE_EQ(mean[1], 3.0);
    EXPECT_DOUBLE_EQ(rstd[1], 1e6); // 1/sqrt(0 + 1e-12)
    for (int i = 4; i < 8; ++i) EXPECT_EQ(out[i], 0.0);

    // Affine part and eps inside the sqrt: x = [-0.003, 0.003], var 9e-6, eps 1e-5:
    // out = +-0.003 / sqrt(1.9e-5) * weight + bias.
    std::vector<double> x2 = {-0.003, 0.003}, w2 = {2.0, -1.0}, b2 = {0.5, 0.25};
    std::vector<double> out2(2), m2(1), r2(1);
    layernorm_forward(out2.data(), m2.data(), r2.data(), x2.data(), w2.data(), b2.data(),
                      int64_t(1), int64_t(2), 1e-5);
    const double z = 0.6882472016116853;
    EXPECT_NEAR(out2[0], -z * 2.0 + 0.5, 1e-14);
    EXPECT_NEAR(out2[1], z * -1.0 + 0.25, 1e-14);
}

// Two-pass statistics stay accurate in float when |mean| >> std: with x = 1e4 + k/4 the
// one-pass E[x^2]-E[x]^2 would lose everything (x^2 ~ 1e8, float ulp there ~ 8 > var ~ 5),
// while the two-pass mean and deviations are exact here (all values exactly representable).
TEST(LayerNorm, TwoPassIsAccurateInFloatWithLargeMean) {
    const int64_t C = 8;
    std::vector<double> xd(C), wd(C, 1.0), bd(C, 0.0);
    for (int64_t i = 0; i < C; ++i) xd[i] = 1e4 + 0.25 * double(i - 3);
    std::vector<double> od(C), md(1), rd(1);
    layernorm_forward(od.data(), md.data(), rd.data(), xd.data(), wd.data(), bd.data(), int64_t(1),
                      C, 1e-12);
    auto xf = to_float(xd), wf = to_float(wd), bf = to_float(bd);
    std::vector<float> of(C), mf(1), rf(1);
    layernorm_forward(of.data(), mf.data(), rf.data(), xf.data(), wf.data(), bf.data(), int64_t(1),
                      C, 1e-12f);
    // Mean and deviations exact; only the variance sum, sqrt and products round: a few ulp.
    for (int64_t i = 0; i < C; ++i) EXPECT_NEAR(of[i], od[i], 8 * kUf * 2.0);
}

TEST(LayerNorm, GradCheckDouble) {
    const int64_t N = 3, C = 7;
    auto inp = randn(N * C, 1, 1.5, 0.3), w = randn(C, 2, 0.5, 1.0), b = randn(C, 3, 0.2);
    const double eps = 1e-12; // PFCR's layer_norm_eps
    std::vector<double> out(N * C), mean(N), rstd(N);
    const auto probe = probe_weights(out.size());
    auto loss = [&] {
        layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                          C, eps);
        return dot(probe, out);
    };
    loss();
    // Gradients start at 0.25 to check that backward accumulates (+=) instead of assigning.
    std::vector<double> dinp(N * C, 0.25), dw(C, 0.25), db(C, 0.25);
    layernorm_backward(dinp.data(), dw.data(), db.data(), probe.data(), inp.data(), w.data(),
                       mean.data(), rstd.data(), N, C);
    for (auto* g : {&dinp, &dw, &db})
        for (auto& v : *g) v -= 0.25;
    EXPECT_LT(gradcheck_rel_error(inp, dinp, loss), kGradTol);
    EXPECT_LT(gradcheck_rel_error(w, dw, loss), kGradTol);
    EXPECT_LT(gradcheck_rel_error(b, db, loss), kGradTol);
}

// ------------------------------------------------------------------------------ Linear

TEST(Linear, KnownValues) {
    // inp (2,3), weight (2,3) [out, in], bias (2):
    //   row0: [1-3+0.1, 0.5*6-0.2] = [-1.9, 2.8];  row1: [4-6+0.1, 0.5*15-0.2] = [-1.9, 7.3]
    const std::vector<double> inp = {1, 2, 3, 4, 5, 6}, w = {1, 0, -1, 0.5, 0.5, 0.5},
                              b = {0.1, -0.2};
    const std::vector<double> expect = {-1.9, 2.8, -1.9, 7.3}, expect_nb = {-2, 3, -2, 7.5};
    std::vector<double> out(4), out_ref(4);
    linear_forward(out.data(), inp.data(), w.data(), b.data(), 2, 3, 2);
    linear_forward_reference(out_ref.data(), inp.data(), w.data(), b.data(), 2, 3, 2);
    for (int i = 0; i < 4; ++i) {
        EXPECT_NEAR(out[i], expect[i], 1e-15);
        EXPECT_NEAR(out_ref[i], expect[i], 1e-15);
    }
    linear_forward(out.data(), inp.data(), w.data(), static_cast<const double*>(nullptr), 2, 3, 2);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], expect_nb[i]);

    // dout = I: dinp rows are the weight rows, dweight = dout^T inp = inp, dbias = [1, 1].
    const std::vector<double> dout = {1, 0, 0, 1};
    std::vector<double> dinp(6, 0.0), dw(6, 0.0), db(2, 0.0);
    linear_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), 2, 3, 2);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(dinp[i], w[i]);
        EXPECT_EQ(dw[i], inp[i]);
    }
    EXPECT_EQ(db[0], 1.0);
    EXPECT_EQ(db[1], 1.0);
    // nullptr dinp / dbias are skipped; dweight still accumulates (now 2 * inp).
    linear_backward(static_cast<double*>(nullptr), dw.data(), static_cast<double*>(nullptr),
                    dout.data(), inp.data(), w.data(), 2, 3, 2);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(dw[i], 2 * inp[i]);
}

TEST(Linear, GradCheckDouble) {
    const int64_t N = 4, C = 5, OC = 3;
    auto inp = randn(N * C, 11), w = randn(OC * C, 12, 0.3), b = randn(OC, 13, 0.1);
    std::vector<double> out(N * OC);
    const auto probe = probe_weights(out.size(), 2);
    auto loss = [&] {
        linear_forward(out.data(), inp.data(), w.data(), b.data(), N, C, OC);
        return dot(probe, out);
    };
    std::vector<double> dinp(N * C, 0.25), dw(OC * C, 0.25), db(OC, 0.25);
    linear_backward(dinp.data(), dw.data(), db.data(), probe.data(), inp.data(), w.data(), N, C,
                    OC);
    for (auto* g : {&dinp, &dw, &db})
        for (auto& v : *g) v -= 0.25;
    EXPECT_LT(gradcheck_rel_error(inp, dinp, loss), kGradTol);
    EXPECT_LT(gradcheck_rel_error(w, dw, loss), kGradTol);
    EXPECT_LT(gradcheck_rel_error(b, db, loss), kGradTol);
}

// Eigen GEMM path vs plain loops, forward and backward (with non-zero starting gradients).
// Both paths compute each output as a sum of K+1 terms (K products plus bias or the previous
// gradient value) in some order, so each is within gamma_{K+1} * sum|terms| of the exact value
// and they differ by at most 2 * gamma_{K+1} * sum|terms|. This is rigorous (no fudge factor)
// and, with u = 2^-53 for double, tight: ~1e-13 relative for K = 300.
template <typename T> void expect_linear_paths_agree(int64_t N, int64_t C, int64_t OC) {
    const double u = std::is_same_v<T, float> ? kUf : kUd;
    const auto inp_d = float_exact(randn(N * C, 21)), w_d = float_exact(randn(OC * C, 22, 0.1)),
               b_d = float_exact(randn(OC, 23, 0.1)), dout_d = float_exact(randn(N * OC, 24)),
               g0_d = float_exact(randn(N * C + OC * C + OC, 25));
    const std::vector<T> inp(inp_d.begin(), inp_d.end()), w(w_d.begin(), w_d.end()),
        b(b_d.begin(), b_d.end()), dout(dout_d.begin(), dout_d.end());
    auto abs_of = [](T x) { return std::abs(double(x)); };

    std::vector<T> out(N * OC), out_ref(N * OC);
    linear_forward_reference(out_ref.data(), inp.data(), w.data(), b.data(), N, C, OC);
    // |out - out_ref| within 2 gamma(C+1) of the magnitudes summed, for each forward path.
    const auto expect_forward_close = [&](const std::vector<T>& got, const char* path) {
        for (int64_t n = 0; n < N; ++n)
            for (int64_t o = 0; o < OC; ++o) {
                double mag = abs_of(b[o]);
                for (int64_t c = 0; c < C; ++c)
                    mag += abs_of(inp[n * C + c]) * abs_of(w[o * C + c]);
                ASSERT_LE(std::abs(double(got[n * OC + o]) - double(out_ref[n * OC + o])),
                          2 * gamma(C + 1, u) * mag)
                    << path << " n=" << n << " o=" << o;
            }
    };
    linear_forward(out.data(), inp.data(), w.data(), b.data(), N, C, OC);
    expect_forward_close(out, "forward");
    // The prepared-weight path (prepare_weight's per-step forms, as the Trainer uses them).
    AlignedBuffer<T> fwd(prepared_fwd_size<T>(OC, C)), bwd(prepared_bwd_size<T>(OC, C) + 1);
    prepare_weight(fwd.data(), bwd.data(), w.data(), OC, C);
    std::vector<T> out_p(N * OC);
    linear_forward_prepared(out_p.data(), inp.data(), fwd.data(), b.data(), N, C, OC);
    expect_forward_close(out_p, "forward (prepared weight)");
    if constexpr (kFastGemm<T>) { // the packed weight gives exactly the unpacked product's bits
        ASSERT_EQ(std::memcmp(out.data(), out_p.data(), out.size() * sizeof(T)), 0);
    }

    std::vector<T> g(g0_d.begin(), g0_d.end()), g_ref = g;
    T *dinp = g.data(), *dw = dinp + N * C, *db = dw + OC * C;
    T *dinp_r = g_ref.data(), *dw_r = dinp_r + N * C, *db_r = dw_r + OC * C;
    linear_backward(dinp, dw, db, dout.data(), inp.data(), w.data(), N, C, OC);
    linear_backward_reference(dinp_r, dw_r, db_r, dout.data(), inp.data(), w.data(), N, C, OC);
    if constexpr (kFastGemm<T>) { // dinp through the packed weight: the same bits
        std::vector<T> dinp_p(g0_d.begin(), g0_d.begin() + N * C);
        linear_backward<T>(dinp_p.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), N, C,
                           OC, bwd.data());
        ASSERT_EQ(std::memcmp(dinp_p.data(), dinp, dinp_p.size() * sizeof(T)), 0);
    }
    for (int64_t n = 0; n < N; ++n) // dinp[n,c] = g0 + sum_o dout[n,o] w[o,c]   (K = OC)
        for (int64_t c = 0; c < C; ++c) {
            double mag = std::abs(g0_d[n * C + c]);
            for (int64_t o = 0; o < OC; ++o) mag += abs_of(dout[n * OC + o]) * abs_of(w[o * C + c]);
            ASSERT_LE(std::abs(double(dinp[n * C + c]) - double(dinp_r[n * C + c])),
                      2 * gamma(OC + 1, u) * mag);
        }
    for (int64_t o = 0; o < OC; ++o) { // dw[o,c] = g0 + sum_n dout[n,o] inp[n,c]   (K = N)
        double mag_b = std::abs(g0_d[N * C + OC * C + o]);
        for (int64_t n = 0; n < N; ++n) mag_b += abs_of(dout[n * OC + o]);
        ASSERT_LE(std::abs(double(db[o]) - double(db_r[o])), 2 * gamma(N + 1, u) * mag_b);
        for (int64_t c = 0; c < C; ++c) {
            double mag = std::abs(g0_d[N * C + o * C + c]);
            for (int64_t n = 0; n < N; ++n)
                mag += abs_of(dout[n * OC + o]) * abs_of(inp[n * C + c]);
            ASSERT_LE(std::abs(double(dw[o * C + c]) - double(dw_r[o * C + c])),
                      2 * gamma(N + 1, u) * mag);
        }
    }
}

TEST(Linear, EigenMatchesReferenceDouble) {
    expect_linear_paths_agree<double>(37, 300, 256); // FFN-like GEMM
    expect_linear_paths_agree<double>(1, 300, 300);  // N = 1: Eigen's GEMV path
    expect_linear_paths_agree<double>(5, 3, 1);      // OC = 1
}

TEST(Linear, EigenMatchesReferenceFloat) {
    expect_linear_paths_agree<float>(37, 300, 256);
    expect_linear_paths_agree<float>(1, 300, 300);
    expect_linear_paths_agree<float>(5, 3, 1);
}

// ------------------------------------------------------------------------------ GELU

TEST(Vmath, ExpWithinTwoUlpOfDoubleExp) {
    // A 1e-4 grid over [-87.3, 88.7] and tiny arguments: relative error against the double exp
    // <= 2 ulp = 2^-22 relative (the polynomial adds ~1e-7, the Cody-Waite reduction and the
    // 2^n scaling are exact or one rounding).
    double worst = 0;
    std::vector<float> xs = {1e-30f, -1e-30f, 1e-7f, -1e-7f};
    for (int i = -873000; i <= 887000; ++i) xs.push_back(float(i) * 1e-4f);
    for (const float x : xs) {
        const double ref = std::exp(double(x));
        const double rel = std::abs(double(vexp(x)) - ref) / ref;
        worst = std::max(worst, rel);
        ASSERT_LE(rel, 0x1.0p-22) << "x=" << x;
    }
    EXPECT_GT(worst, 0.0); // the loop ran
    EXPECT_EQ(vexp(0.0f), 1.0f);
    EXPECT_EQ(vexp(-100.0f), 0.0f);        // below the normal range: 0 (callers never go there)
    EXPECT_EQ(vexp(-1.5), std::exp(-1.5)); // double is std::exp
}

TEST(Vmath, ErfWithin3E7OfDoubleErfAndRelativeNearZero) {
    // |x| >= 0.5: Abramowitz & Stegun 7.1.26 is within 1.5e-7 of erf in exact arithmetic, and
    // evaluating 1 - q t e^{-x^2} in float adds about two roundings of values <= 1 (1.2e-7):
    // 3e-7. |x| < 0.5: the series is within 3e-8 relative, plus a few roundings: 2 ulp relative.
    for (int i = -60000; i <= 60000; ++i) {
        const float x = float(i) * 1e-4f;
        const double ref = std::erf(double(x));
        const double err = std::abs(double(verf(x)) - ref);
        ASSERT_LE(err, 3e-7) << "x=" << x;
        if (std::abs(x) < 0.5f) {
            ASSERT_LE(err, 0x1.0p-22 * std::abs(ref)) << "x=" << x;
        }
        ASSERT_EQ(verf(-x), -verf(x));
    }
    EXPECT_EQ(verf(0.7), std::erf(0.7));
}

TEST(Vmath, LaneReductionsHaveTheDocumentedOrder) {
    const int64_t n = 37; // two full groups of 16 and a tail of 5
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(std::sin(double(i) * 1.7)) * 1e3f;
    // Written out: lane l sums x[l] + x[16 + l]; lanes combine pairwise (l + 8, then + 4, ...);
    // the tail is summed separately and added last.
    float acc[16];
    for (int l = 0; l < 16; ++l) acc[l] = (0.0f + x[size_t(l)]) + x[size_t(16 + l)];
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    float tail = 0;
    for (int64_t i = 32; i < n; ++i) tail += x[size_t(i)];
    EXPECT_EQ(lane_sum(x.data(), n), acc[0] + tail);
    EXPECT_EQ(lane_max(x.data(), n), *std::max_element(x.begin(), x.end()));
    EXPECT_EQ(lane_max(x.data(), 3), *std::max_element(x.begin(), x.begin() + 3));
}

// scale_and_max: the same products as x[i] * s and their max, for lengths around the 16-lane
// groups, all-negative rows and a zero maximum.
TEST(Vmath, ScaleAndMaxEqualsScalarLoops) {
    for (int64_t n = 1; n <= 50; ++n) {
        for (float shift : {0.0f, -5.0f}) {
            std::vector<float> x(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i)
                x[size_t(i)] = float(std::sin(double(i) * 2.3 + double(n))) + shift;
            if (shift == 0.0f && n > 3) x[size_t(n / 2)] = 0.0f; // not the max unless all < 0
            const float s = 14.285714f;
            std::vector<float> expect = x;
            float m = -std::numeric_limits<float>::infinity();
            for (float& v : expect) m = std::max(m, v *= s);
            EXPECT_EQ(scale_and_max(x.data(), n, s), m) << n;
            EXPECT_EQ(x, expect) << n;
        }
    }
    std::vector<float> zeros(20, -1.0f);
    zeros[7] = 0.0f;
    EXPECT_EQ(scale_and_max(zeros.data(), 20, 3.0f), 0.0f);
}

TEST(Gelu, KnownValues) {
    // Reference values: Python math.erf, 0.5*x*(1+erf(x/sqrt(2))) and Phi(x) + x*phi(x).
    const std::vector<double> x = {0.0, 1.0, -1.0, 0.5, -2.0, 3.0};
    const std::vector<double> y = {0.0,
                                   0.8413447460685429,
                                   -0.15865525393145707,
                                   0.34573123063700656,
                                   -0.04550026389635842,
                                   2.99595030590511};
    std::vector<double> out(x.size());
    gelu_forward(out.data(), x.data(), int64_t(x.size()));
    // glibc erf is accurate to ~1 ulp; a few more roundings follow: 1e-15 absolute suffices.
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(out[i], y[i], 1e-15) << "x=" << x[i];

    const std::vector<double> xd = {0.0, 1.0, -1.0, 2.5};
    const std::vector<double> dy = {0.5, 1.0833154705876864, -0.08331547058768629,
                                    1.037611085908145};
    std::vector<double> ones(xd.size(), 1.0), dinp(xd.size(), 0.0);
    gelu_backward(dinp.data(), xd.data(), ones.data(), int64_t(xd.size()));
    for (size_t i = 0; i < xd.size(); ++i) EXPECT_NEAR(dinp[i], dy[i], 1e-15) << "x=" << xd[i];
}

// Saving Phi(x) in the forward changes no bits: the same output, and the backward from the
// saved values equals the backward that computes them (accumulating and written).
TEST(Gelu, SavedCdfGivesTheSameBits) {
    const int64_t n = 1000;
    std::vector<float> x(static_cast<size_t>(n)), dy(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        x[size_t(i)] = float(std::sin(double(i) * 0.37)) * 6.0f; // both erf branches
        dy[size_t(i)] = float(std::cos(double(i) * 0.11));
    }
    std::vector<float> out(x.size()), out_saved(x.size()), cdf(x.size());
    const float inv_sqrt2 = float(0.70710678118654752440084436210485);
    for (size_t i = 0; i < x.size(); ++i) // the formula as the forward had it before Phi was kept
        out[i] = 0.5f * x[i] * (1.0f + verf(x[i] * inv_sqrt2));
    gelu_forward(out_saved.data(), cdf.data(), x.data(), n);
    EXPECT_EQ(out, out_saved);
    for (bool acc : {false, true}) {
        std::vector<float> dx(x.size(), 0.25f), dx_saved(x.size(), 0.25f);
        gelu_backward(dx.data(), x.data(), dy.data(), n, acc);
        gelu_backward(dx_saved.data(), x.data(), dy.data(), n, acc,
                      static_cast<const float*>(cdf.data()));
        EXPECT_EQ(dx, dx_saved) << acc;
    }
}

TEST(Gelu, GradCheckDouble) {
    const int64_t n = 40;
    std::vector<double> inp(n);
    for (int64_t i = 0; i < n; ++i) inp[i] = -4.0 + 8.0 * double(i) / double(n - 1) + 0.013;
    std::vector<double> out(n);
    const auto probe = probe_weights(n, 3);
    auto loss = [&] {
        gelu_forward(out.data(), inp.data(), n);
        return dot(probe, out);
    };
    std::vector<double> dinp(n, 0.25);
    gelu_backward(dinp.data(), inp.data(), probe.data(), n);
    for (auto& v : dinp) v -= 0.25;
    EXPECT_LT(gradcheck_rel_error(inp, dinp, loss), kGradTol);
}

// ------------------------------------------------------------------------------ Dropout

TEST(Dropout, ZeroProbabilityIsIdentity) {
    const KeyedRng rng(7, RngPurpose::dropout);
    auto inp = randn(50, 31);
    std::vector<double> out(50, -1.0);
    std::vector<uint8_t> mask(50, 0);
    dropout_forward(out.data(), mask.data(), inp.data(), 5, 10, 0.0, rng, 1, 2, 3, nullptr);
    for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(out[i], inp[i]);
        EXPECT_EQ(mask[i], 1);
    }
    std::vector<double> dinp(50, 0.0);
    dropout_backward(dinp.data(), inp.data(), mask.data(), 50, 0.0);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(dinp[i], inp[i]);
}

TEST(Dropout, KnownValuesAndDrawScheme) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const double p = 0.25;
    const int64_t rows = 3, C = 7;
    const std::vector<uint64_t> row_base = {0, 1000, 3}; // arbitrary, even overlapping, indices
    auto inp = randn(rows * C, 32);
    std::vector<double> out(rows * C);
    std::vector<uint8_t> mask(rows * C);
    dropout_forward(out.data(), mask.data(), inp.data(), rows, C, p, rng, 4, 5, 6, row_base.data());
    const uint64_t threshold = uint64_t(std::llround(p * 4294967296.0));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t col = 0; col < C; ++col) {
            const int64_t i = r * C + col;
            const uint64_t e = row_base[r] + uint64_t(col);
            // The documented scheme, written out: word e%4 of Philox block (a, b, c, e/4).
            const uint32_t u = rng.block(4, 5, 6, uint32_t(e / 4))[e % 4];
            EXPECT_EQ(bool(mask[i]), u >= threshold);
            EXPECT_EQ(bool(mask[i]), dropout_keep(rng, 4, 5, 6, e, p));
            // Inverted dropout multiplies by the scale 1/(1-p) = 4/3 (as PyTorch), bit for bit.
            EXPECT_EQ(out[i], mask[i] ? inp[i] * (1.0 / 0.75) : 0.0);
        }
    // Overlapping indices (row 2 starts at e = 3, inside row 0) get the same decision.
    for (int64_t col = 0; col + 3 < C; ++col) EXPECT_EQ(mask[2 * C + col], mask[col + 3]);

    // p = 1 drops everything (PyTorch returns zeros), gradients are zero.
    dropout_forward(out.data(), mask.data(), inp.data(), rows, C, 1.0, rng, 4, 5, 6, nullptr);
    for (int64_t i = 0; i < rows * C; ++i) {
        EXPECT_EQ(mask[i], 0);
        EXPECT_EQ(out[i], 0.0);
    }
}

TEST(Dropout, FusedResidualEqualsSeparateAddBitForBit) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int64_t rows = 5, C = 300; // segments of 256 and a tail per row
    const std::vector<uint64_t> row_base = {0, 4000, 77, 9001, 123457};
    for (const double p : {0.0, 0.3, 1.0}) {
        const auto inp_d = randn(rows * C, 41), res_d = randn(rows * C, 42);
        const std::vector<float> inp(inp_d.begin(), inp_d.end()), res(res_d.begin(), res_d.end());
        std::vector<float> sep(rows * C), fused(rows * C);
        std::vector<uint8_t> m1(rows * C), m2(rows * C);
        dropout_forward(sep.data(), m1.data(), inp.data(), rows, C, p, rng, 1, 2, 3,
                        row_base.data());
        for (int64_t i = 0; i < rows * C; ++i) sep[size_t(i)] += res[size_t(i)];
        dropout_forward(fused.data(), m2.data(), inp.data(), rows, C, p, rng, 1, 2, 3,
                        row_base.data(), res.data());
        EXPECT_EQ(m1, m2) << "p=" << p;
        EXPECT_EQ(std::memcmp(sep.data(), fused.data(), sep.size() * sizeof(float)), 0)
            << "p=" << p;
    }
}

// The float kernel (16 draws at a time on AVX-512 builds, a masked tail per segment) against
// the draw scheme written out element by element, with and without the fused residual.
TEST(Dropout, FloatKernelFollowsTheDrawSchemeBitForBit) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int64_t rows = 4, C = 300;
    const std::vector<uint64_t> row_base = {0, 4001, 78, 123457}; // any alignment mod 4
    const double p = 0.3;
    const uint64_t threshold = uint64_t(std::llround(p * 4294967296.0));
    const float scale = float(1.0 / (1.0 - p));
    const auto inp_d = randn(rows * C, 43), res_d = randn(rows * C, 44);
    const std::vector<float> inp(inp_d.begin(), inp_d.end()), res(res_d.begin(), res_d.end());
    for (const bool with_residual : {false, true}) {
        std::vector<float> out(rows * C, std::numeric_limits<float>::quiet_NaN());
        std::vector<uint8_t> mask(rows * C, 7);
        dropout_forward(out.data(), mask.data(), inp.data(), rows, C, p, rng, 1, 2, 3,
                        row_base.data(), with_residual ? res.data() : nullptr);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t col = 0; col < C; ++col) {
                const size_t i = size_t(r * C + col);
                const uint64_t e = row_base[size_t(r)] + uint64_t(col);
                const bool keep = rng.block(1, 2, 3, uint32_t(e / 4))[e % 4] >= threshold;
                const float kept = keep ? inp[i] * scale : 0.0f;
                const float want = with_residual ? kept + res[i] : kept;
                ASSERT_EQ(mask[i], keep ? 1 : 0) << "r=" << r << " col=" << col;
                ASSERT_EQ(std::memcmp(&out[i], &want, sizeof(float)), 0)
                    << "r=" << r << " col=" << col << " residual=" << with_residual;
            }
    }
}

// Regression pin of the draw scheme: these bits were recorded from this implementation (not an
// independent source). If they change, every dropout mask, and so every training run, changes.
TEST(Dropout, FrozenMaskBits) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    uint64_t bits = 0;
    for (uint64_t e = 0; e < 64; ++e)
        if (dropout_keep(rng, 0, 0, 0, e, 0.5)) bits |= uint64_t(1) << e;
    EXPECT_EQ(bits, 0x867e2fc1ebcc1d8bull) << std::hex << "actual 0x" << bits;
}

TEST(Dropout, KeepRateWithinFiveSigma) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int64_t n = 1000000;
    std::vector<float> inp(n, 1.0f), out(n);
    std::vector<uint8_t> mask(n);
    for (double p : {0.1, 0.5, 0.9}) {
        dropout_forward(out.data(), mask.data(), inp.data(), int64_t(1000), int64_t(1000), p, rng,
                        3, 17, 5, nullptr);
        int64_t kept = 0;
        for (auto m : mask) kept += m;
        const double rate = double(kept) / double(n);
        const double sigma = std::sqrt(p * (1 - p) / double(n)); // binomial std of the rate
        EXPECT_LE(std::abs(rate - (1 - p)), 5 * sigma) << "p=" << p << " rate=" << rate;
    }
}

// The encoder's use: packed rows, e = (batch_row * T_max + t) * C + ch. Processing the batch in
// chunks, in any order, must give exactly the masks of one whole-batch call.
TEST(Dropout, MaskIndependentOfChunkingAndCallOrder) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int64_t B = 4, T_max = 6, C = 5;
    const std::vector<int64_t> off = {0, 3, 9, 10, 14}; // true lengths 3, 6, 1, 4
    const int64_t N = off[B];
    auto inp = randn(N * C, 33);
    std::vector<uint64_t> base(N);
    dropout_row_base_packed(base.data(), off.data(), B, 0, T_max, C);
    EXPECT_EQ(base[0], 0u);
    EXPECT_EQ(base[4], (1u * T_max + 1) * C); // batch row 1, t = 1
    EXPECT_EQ(base[13], (3u * T_max + 3) * C);
    std::vector<double> out(N * C);
    std::vector<uint8_t> mask(N * C);
    dropout_forward(out.data(), mask.data(), inp.data(), N, C, 0.5, rng, 1, 2, 3, base.data());

    // Chunk 2 = batch rows {2, 3} first, then chunk 1 = rows {0, 1}; each with its own offsets
    // (offsets are only shifted for chunk 2: the chunk's first token row is off[2]).
    std::vector<double> out_c(N * C);
    std::vector<uint8_t> mask_c(N * C);
    for (int64_t first : {2, 0}) {
        const int64_t r0 = off[first], rows = off[first + 2] - r0;
        std::vector<uint64_t> base_c(rows);
        dropout_row_base_packed(base_c.data(), off.data() + first, 2, first, T_max, C);
        dropout_forward(out_c.data() + r0 * C, mask_c.data() + r0 * C, inp.data() + r0 * C, rows, C,
                        0.5, rng, 1, 2, 3, base_c.data());
    }
    EXPECT_EQ(mask_c, mask);
    EXPECT_EQ(out_c, out);
    // Element-by-element queries in reverse order agree too (no hidden state).
    for (int64_t i = N * C - 1; i >= 0; --i)
        EXPECT_EQ(bool(mask[i]), dropout_keep(rng, 1, 2, 3, base[i / C] + uint64_t(i % C), 0.5));
    int64_t kept = 0;
    for (auto m : mask) kept += m;
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, N * C);
}

// Masks for different (a, b, c) or seed behave as independent: with p = 0.5 two independent
// masks agree on each element with probability 1/2; test the agreement rate within 5 sigma.
TEST(Dropout, DifferentCountersGiveIndependentMasks) {
    const KeyedRng rng(2020, RngPurpose::dropout), other_seed(2021, RngPurpose::dropout);
    const int64_t n = 1 << 16;
    std::vector<float> inp(n, 1.0f), out(n);
    auto mask_of = [&](const KeyedRng& r, uint32_t a, uint32_t b, uint32_t c) {
        std::vector<uint8_t> m(n);
        dropout_forward(out.data(), m.data(), inp.data(), int64_t(1), n, 0.5, r, a, b, c, nullptr);
        return m;
    };
    const auto ref = mask_of(rng, 1, 2, 3);
    EXPECT_EQ(mask_of(rng, 1, 2, 3), ref);
    const double sigma = std::sqrt(0.25 / double(n));
    for (const auto& m : {mask_of(rng, 2, 2, 3), mask_of(rng, 1, 3, 3), mask_of(rng, 1, 2, 4),
                          mask_of(other_seed, 1, 2, 3)}) {
        int64_t agree = 0;
        for (int64_t i = 0; i < n; ++i) agree += m[i] == ref[i];
        EXPECT_NE(m, ref);
        EXPECT_LE(std::abs(double(agree) / double(n) - 0.5), 5 * sigma);
    }
}

// With fixed counters the mask is fixed, so dropout is linear in inp: check d/d inp.
TEST(Dropout, GradCheckDoubleFixedMask) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int64_t rows = 4, C = 9;
    const double p = 0.3;
    auto inp = randn(rows * C, 34);
    std::vector<double> out(rows * C);
    std::vector<uint8_t> mask(rows * C), mask0;
    const auto probe = probe_weights(out.size(), 4);
    auto loss = [&] {
        dropout_forward(out.data(), mask.data(), inp.data(), rows, C, p, rng, 0, 1, 2, nullptr);
        return dot(probe, out);
    };
    loss();
    mask0 = mask;
    std::vector<double> dinp(rows * C, 0.25);
    dropout_backward(dinp.data(), probe.data(), mask.data(), rows * C, p);
    for (auto& v : dinp) v -= 0.25;
    EXPECT_LT(gradcheck_rel_error(inp, dinp, loss), kGradTol);
    EXPECT_EQ(mask, mask0); // perturbing inputs never changes the mask
}

// ------------------------------------------------------------------------------ float vs double
// Every kernel instantiated with float on float-representable inputs (so input rounding plays no
// part) and compared with the double result, which serves as the exact value. Bounds come from
// standard rounding-error analysis with u = 2^-24 (Higham), stated per kernel.

TEST(FloatVsDouble, LayerNorm) {
    const int64_t N = 6, C = 300;
    const auto x = float_exact(randn(N * C, 41, 1.0, 0.2)), w = float_exact(randn(C, 42, 0.3, 1.0)),
               b = float_exact(randn(C, 43, 0.1)), dy = float_exact(randn(N * C, 44));
    std::vector<double> out(N * C), mean(N), rstd(N), dx(N * C, 0.0), dw(C, 0.0), db(C, 0.0);
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C,
                      1e-12);
    layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), mean.data(),
                       rstd.data(), N, C);
    const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);
    std::vector<float> outf(N * C), meanf(N), rstdf(N), dxf(N * C, 0.0f), dwf(C, 0.0f),
        dbf(C, 0.0f);
    layernorm_forward(outf.data(), meanf.data(), rstdf.data(), xf.data(), wf.data(), bf.data(), N,
                      C, 1e-12f);
    layernorm_backward(dxf.data(), dwf.data(), dbf.data(), dyf.data(), xf.data(), wf.data(),
                       meanf.data(), rstdf.data(), N, C);
    // Error budget per row (u = 2^-24): the mean is a C-term sum, |d mean| <= C u mean|x|; the
    // variance is a sum of C non-negative terms, relative error <= (C+2) u, so rstd has relative
    // error <= (C/2 + 3) u. Hence norm = (x - mean) rstd has absolute error
    //   err_norm <= rstd C u mean|x| + (C/2 + 4) u |norm|,
    // and out = norm w + b adds 2u|out|. Checked with a factor 2 of slack.
    std::vector<double> err_norm(N * C), norm(N * C);
    for (int64_t n = 0; n < N; ++n) {
        double mean_abs = 0;
        for (int64_t i = 0; i < C; ++i) mean_abs += std::abs(x[n * C + i]) / double(C);
        for (int64_t i = 0; i < C; ++i) {
            const int64_t k = n * C + i;
            norm[k] = (x[k] - mean[n]) * rstd[n];
            err_norm[k] = rstd[n] * C * kUf * mean_abs + (C / 2.0 + 4) * kUf * std::abs(norm[k]);
            const double tol = 2 * (std::abs(w[i]) * err_norm[k] + 2 * kUf * std::abs(out[k]));
            ASSERT_LE(std::abs(double(outf[k]) - out[k]), tol) << "out n=" << n << " i=" << i;
        }
    }
    // Backward, dx = rstd (dn - mean(dn) - norm mean(dn norm)), dn = w dy: the two means are
    // C-term sums (error <= C u mean|.|), every norm carries err_norm, every product/sum a few u.
    // Propagating gives the bound below (first order in u); checked with a factor 2 of slack.
    for (int64_t n = 0; n < N; ++n) {
        double m_dn = 0, m_dnn = 0, a_dnn = 0, m_dn_err = 0;
        for (int64_t i = 0; i < C; ++i) {
            const int64_t k = n * C + i;
            const double dn = w[i] * dy[k];
            m_dn += std::abs(dn) / double(C);
            m_dnn += dn * norm[k] / double(C);
            a_dnn += std::abs(dn * norm[k]) / double(C);
            m_dn_err += std::abs(dn) * err_norm[k] / double(C);
        }
        for (int64_t i = 0; i < C; ++i) {
            const int64_t k = n * C + i;
            const double dn = std::abs(w[i] * dy[k]);
            const double err_mean_dn = C * kUf * m_dn;              // mean(dn)
            const double err_mean_dnn = C * kUf * a_dnn + m_dn_err; // mean(dn norm)
            const double inner_err = err_mean_dn + std::abs(norm[k]) * err_mean_dnn +
                                     err_norm[k] * std::abs(m_dnn) + // norm factor
                                     4 * kUf * (dn + m_dn + std::abs(norm[k]) * a_dnn);
            const double tol = 2 * (rstd[n] * inner_err + (C / 2.0 + 4) * kUf * std::abs(dx[k]));
            ASSERT_LE(std::abs(double(dxf[k]) - dx[k]), tol) << "dx n=" << n << " i=" << i;
        }
    }
    // dweight[i] = sum_n norm dy (N terms, each norm with err_norm), dbias[i] = sum_n dy.
    for (int64_t i = 0; i < C; ++i) {
        double mag_w = 0, err_w = 0, mag_b = 0;
        for (int64_t n = 0; n < N; ++n) {
            mag_w += std::abs(norm[n * C + i] * dy[n * C + i]);
            err_w += err_norm[n * C + i] * std::abs(dy[n * C + i]);
            mag_b += std::abs(dy[n * C + i]);
        }
        EXPECT_LE(std::abs(double(dwf[i]) - dw[i]), 2 * (gamma(N + 1, kUf) * mag_w + err_w));
        EXPECT_LE(std::abs(double(dbf[i]) - db[i]), 2 * gamma(N, kUf) * mag_b);
    }
}

TEST(FloatVsDouble, Linear) {
    const int64_t N = 9, C = 300, OC = 256;
    const auto x = float_exact(randn(N * C, 51)), w = float_exact(randn(OC * C, 52, 0.05)),
               b = float_exact(randn(OC, 53, 0.1)), dy = float_exact(randn(N * OC, 54));
    std::vector<double> out(N * OC), dx(N * C, 0.0), dw(OC * C, 0.0), db(OC, 0.0);
    linear_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
    linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C, OC);
    const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);
    std::vector<float> outf(N * OC), dxf(N * C, 0.0f), dwf(OC * C, 0.0f), dbf(OC, 0.0f);
    linear_forward(outf.data(), xf.data(), wf.data(), bf.data(), N, C, OC);
    linear_backward(dxf.data(), dwf.data(), dbf.data(), dyf.data(), xf.data(), wf.data(), N, C, OC);
    // Each output is a K-term dot product (+ bias): |float - exact| <= gamma_{K+1} sum|terms|;
    // the double result is within 1e-13 of exact, so the float bound alone (x1.01) applies.
    auto check = [](const std::vector<float>& got, const std::vector<double>& ref,
                    const std::vector<double>& mag, int64_t K, const char* what) {
        for (size_t i = 0; i < got.size(); ++i)
            ASSERT_LE(std::abs(double(got[i]) - ref[i]), 1.01 * gamma(K + 1, kUf) * mag[i])
                << what << " i=" << i;
    };
    std::vector<double> mag_out(N * OC), mag_dx(N * C, 0.0), mag_dw(OC * C, 0.0), mag_db(OC, 0.0);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o) {
            mag_out[n * OC + o] = std::abs(b[o]);
            mag_db[o] += std::abs(dy[n * OC + o]);
            for (int64_t c = 0; c < C; ++c) {
                mag_out[n * OC + o] += std::abs(x[n * C + c] * w[o * C + c]);
                mag_dx[n * C + c] += std::abs(dy[n * OC + o] * w[o * C + c]);
                mag_dw[o * C + c] += std::abs(dy[n * OC + o] * x[n * C + c]);
            }
        }
    check(outf, out, mag_out, C, "out");
    check(dxf, dx, mag_dx, OC, "dinp");
    check(dwf, dw, mag_dw, N, "dweight");
    check(dbf, db, mag_db, N, "dbias");
}

TEST(FloatVsDouble, Gelu) {
    const int64_t n = 2001;
    std::vector<double> x(n), dy = float_exact(randn(n, 61));
    for (int64_t i = 0; i < n; ++i) x[i] = double(float(-6.0 + 12.0 * double(i) / double(n - 1)));
    std::vector<double> out(n), dx(n, 0.0);
    gelu_forward(out.data(), x.data(), n);
    gelu_backward(dx.data(), x.data(), dy.data(), n);
    const auto xf = to_float(x), dyf = to_float(dy);
    std::vector<float> outf(n), dxf(n, 0.0f);
    gelu_forward(outf.data(), xf.data(), n);
    gelu_backward(dxf.data(), xf.data(), dyf.data(), n);
    for (int64_t i = 0; i < n; ++i) {
        // Forward: verf is within 3e-7 ~ 5u of erf (Vmath test), so |d erf| <= 5u; the
        // scaled argument moves erf by <= u |z| 2/sqrt(pi) e^{-z^2} <= u/2; 1 + erf and the two
        // products add <= 4u of relative error: |d gelu| <= 0.5|x| (5u + u/2 + 2u) + 3u|gelu|
        // <= 3.8u|x|. Bound used: 4u|x| + 4u|gelu|.
        const double tol_f = 4 * kUf * (std::abs(x[i]) + std::abs(out[i])) + 1e-30;
        ASSERT_LE(std::abs(double(outf[i]) - out[i]), tol_f) << "x=" << x[i];
        // Backward: cdf error <= 3u as above; x^2/2 carries 2u relative error, so expf's argument
        // is off by u x^2 and pdf by a relative (x^2 + 3) u; the rest is a few u relative.
        const double pdf = std::exp(-0.5 * x[i] * x[i]) / std::sqrt(2 * std::numbers::pi);
        const double tol_b =
            2 * std::abs(dy[i]) * (3 * kUf + std::abs(x[i]) * pdf * (x[i] * x[i] + 4) * kUf) +
            4 * kUf * std::abs(dx[i]);
        ASSERT_LE(std::abs(double(dxf[i]) - dx[i]), tol_b) << "x=" << x[i];
    }
}

TEST(FloatVsDouble, Dropout) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    const int64_t rows = 20, C = 300;
    const double p = 0.1; // scale 1/0.9 is inexact in float: the only rounding besides products
    const auto x = float_exact(randn(rows * C, 71)), dy = float_exact(randn(rows * C, 72));
    std::vector<double> out(rows * C), dx(rows * C, 0.0);
    std::vector<uint8_t> mask(rows * C), maskf(rows * C);
    dropout_forward(out.data(), mask.data(), x.data(), rows, C, p, rng, 9, 8, 7, nullptr);
    dropout_backward(dx.data(), dy.data(), mask.data(), rows * C, p);
    const auto xf = to_float(x), dyf = to_float(dy);
    std::vector<float> outf(rows * C), dxf(rows * C, 0.0f);
    dropout_forward(outf.data(), maskf.data(), xf.data(), rows, C, p, rng, 9, 8, 7, nullptr);
    dropout_backward(dxf.data(), dyf.data(), maskf.data(), rows * C, p);
    EXPECT_EQ(maskf, mask); // the mask does not depend on T
    // float(scale) and the product each round once: relative error <= 2u (+u^2).
    for (int64_t i = 0; i < rows * C; ++i) {
        ASSERT_LE(std::abs(double(outf[i]) - out[i]), 2.01 * kUf * std::abs(out[i]));
        ASSERT_LE(std::abs(double(dxf[i]) - dx[i]), 2.01 * kUf * std::abs(dx[i]));
    }
}

// The backward kernels' write mode (accumulate = false: the encoder's scratch buffers are not
// zeroed first) gives the values of accumulating into zeros, whatever the buffer held before
// (NaN here). Float, the training path (the own GEMM on AVX-512 builds).
TEST(WriteMode, BackwardKernelsEqualAccumulatingIntoZeros) {
    const int64_t N = 13, C = 37, OC = 21;
    const auto inp = to_float(randn(N * C, 70)), dout = to_float(randn(N * C, 71));
    const auto w = to_float(randn(C, 72, 0.5, 1.0)), b = to_float(randn(C, 73));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const auto check = [&](const char* what, auto&& run) {
        std::vector<float> zeros(size_t(N * C), 0.0f), garbage(size_t(N * C), nan);
        run(zeros.data(), true);
        run(garbage.data(), false);
        for (size_t i = 0; i < zeros.size(); ++i)
            ASSERT_EQ(zeros[i], garbage[i]) << what << " " << i; // == : +0 and -0 agree
    };
    std::vector<float> out(size_t(N * C)), mean(static_cast<size_t>(N)),
        rstd(static_cast<size_t>(N));
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C,
                      1e-12f);
    check("layernorm", [&](float* d, bool acc) {
        layernorm_backward(d, static_cast<float*>(nullptr), static_cast<float*>(nullptr),
                           dout.data(), inp.data(), w.data(), mean.data(), rstd.data(), N, C, acc);
    });
    std::vector<uint8_t> mask(size_t(N * C));
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t(i % 3 != 0);
    check("dropout", [&](float* d, bool acc) {
        dropout_backward(d, dout.data(), mask.data(), N * C, 0.25, acc);
    });
    check("gelu",
          [&](float* d, bool acc) { gelu_backward(d, inp.data(), dout.data(), N * C, acc); });
    const auto weight = to_float(randn(OC * C, 74)), dy = to_float(randn(N * OC, 75));
    check("linear", [&](float* d, bool acc) {
        linear_backward(d, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dy.data(),
                        inp.data(), weight.data(), N, C, OC, static_cast<const float*>(nullptr),
                        acc);
    });
}

// linear_backward's optional packed input (one packing shared by the q, k and v weight
// gradients) gives the weight gradient of packing inside the GEMM, bit for bit.
TEST(Linear, PackedInputGivesTheSameWeightGradientBits) {
    if constexpr (!kHaveFastGemm) {
        GTEST_SKIP() << "no AVX-512: the Eigen path has no packed forms";
    } else {
        const int64_t N = 401, C = 37, OC = 21; // N above one K block of the GEMM (384)
        const auto inp = to_float(randn(N * C, 80)), dy = to_float(randn(N * OC, 81));
        const auto weight = to_float(randn(OC * C, 82));
        AlignedBuffer<float> packed(gemm_packed_b_size(N, C));
        gemm_pack_b(packed.data(), {inp.data(), C, 1}, N, C);
        std::vector<float> dw(size_t(OC * C), 0.5f), dw_packed = dw;
        linear_backward(static_cast<float*>(nullptr), dw.data(), static_cast<float*>(nullptr),
                        dy.data(), inp.data(), weight.data(), N, C, OC);
        linear_backward(static_cast<float*>(nullptr), dw_packed.data(),
                        static_cast<float*>(nullptr), dy.data(), inp.data(), weight.data(), N, C,
                        OC, static_cast<const float*>(nullptr), true, packed.data());
        EXPECT_EQ(dw, dw_packed);
    }
}

// The bias gradient's column sums (linear.hpp's detail::add_column_sums, AVX-512 float) against
// the Eigen expression they replace, bit for bit: row counts around the 4-row groups, widths
// with and without a partial packet, db at every float offset from a 64-byte boundary (Eigen
// sums the columns before it row by row).
TEST(Linear, BiasGradientColumnSumsEqualEigenBitForBit) {
#if defined(__AVX512F__)
    for (int64_t R : {0, 1, 2, 3, 4, 5, 6, 9, 256, 995})
        for (int64_t OC : {1, 15, 16, 17, 256, 300})
            for (int64_t shift = 0; shift < 16; shift += 5) {
                const auto dy = to_float(randn(size_t(R * OC), uint32_t(7 + R + OC)));
                AlignedBuffer<float> store(OC + 16), ref(OC + 16);
                const auto db0 = to_float(randn(size_t(OC), 99));
                float* db = store.data() + shift;
                float* expect = ref.data() + shift; // same alignment: Eigen's split depends on it
                std::copy(db0.begin(), db0.end(), db);
                std::copy(db0.begin(), db0.end(), expect);
                detail::add_column_sums(db, dy.data(), R, OC);
                vec(expect, OC) += mat(dy.data(), R, OC).colwise().sum();
                EXPECT_EQ(std::memcmp(db, expect, size_t(OC) * sizeof(float)), 0)
                    << R << " x " << OC << " shift " << shift;
            }
#else
    GTEST_SKIP() << "AVX-512 kernel only";
#endif
}
