// Privatized uploads (federation/privacy.hpp): each mechanism's defining probabilities and
// decoding checked against statistics with derived k-sigma bounds (fixed seeds, so every run
// sees the same draws), the exact/deterministic parts checked exactly, plus order
// independence, keyed determinism, error messages, accounting formulas and config keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../support/test_helpers.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "federation/fixed_point.hpp"
#include "federation/privacy.hpp"
#include "io/config.hpp"
#include "options/options.hpp"

using namespace pfcr;
using namespace pfcr::test;
using ::testing::HasSubstr;

namespace {

PrivacyOptions options(PrivacyMechanism m) {
    PrivacyOptions o;
    o.mechanism = m;
    return o;
}

// n values uniform in [-lo_hi, lo_hi], keyed by (tag, client).
std::vector<float> uniform_values(uint32_t tag, uint32_t client, int64_t n, double lo_hi) {
    auto s = KeyedRng(4242, RngPurpose::synth).stream(tag, client);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = float((2.0 * s.uniform() - 1.0) * lo_hi);
    return x;
}

// One client that holds all rows: acc = its contribution alone.
std::vector<int64_t> single(const PrivacyOptions& o, const std::vector<float>& x, int64_t round = 0,
                            int64_t client = 0, uint64_t seed = 11) {
    std::vector<int64_t> acc(x.size(), 0);
    privatize_add(o, seed, round, client, 1, 1, 1, x.data(), int64_t(x.size()), acc.data());
    return acc;
}

const PrivacyMechanism all_mechanisms[] = {PrivacyMechanism::none, PrivacyMechanism::pfcr_reference,
                                           PrivacyMechanism::randomized_response,
                                           PrivacyMechanism::gaussian};

} // namespace

// --- config and parsing ------------------------------------------------------------------

TEST(PrivacyConfig, ParsesTheFourMechanismsAndRejectsOthers) {
    for (auto m : all_mechanisms) EXPECT_EQ(parse_privacy_mechanism(mechanism_name(m)), m);
    EXPECT_EQ(parse_privacy_mechanism("pfcr-reference"), PrivacyMechanism::pfcr_reference);
    EXPECT_THAT(error_of([] { parse_privacy_mechanism("laplace"); }), HasSubstr("'laplace'"));
}

TEST(PrivacyConfig, OptionsComeFromThePrivacyKeys) {
    const PrivacyOptions d = resolve_options(Config()).federation.privacy;
    EXPECT_EQ(d.mechanism, PrivacyMechanism::none);
    EXPECT_EQ(d.epsilon, 0.3);
    EXPECT_EQ(d.clip, 0.12);
    EXPECT_EQ(d.buckets, 256);
    EXPECT_EQ(d.clip_norm, 1.0);
    EXPECT_EQ(d.noise_multiplier, 1.0);
    EXPECT_EQ(d.delta, 1e-5);
    EXPECT_EQ(d.fixed_point_bits, 40);

    const auto cfg = Config::from_yaml_text("privacy:\n  mechanism: randomized-response\n"
                                            "  epsilon: 1.5\n  buckets: 16\n"
                                            "federation.fixed_point_bits: 32\n",
                                            "test.yaml");
    const PrivacyOptions o = resolve_options(cfg).federation.privacy;
    EXPECT_EQ(o.mechanism, PrivacyMechanism::randomized_response);
    EXPECT_EQ(o.epsilon, 1.5);
    EXPECT_EQ(o.buckets, 16);
    EXPECT_EQ(o.fixed_point_bits, 32);

    EXPECT_THAT(error_of([] { Config::from_yaml_text("privacy.epsilon: 0\n", "t.yaml"); }),
                HasSubstr("privacy.epsilon"));
    EXPECT_THAT(error_of([] { Config::from_yaml_text("privacy.delta: 1\n", "t.yaml"); }),
                HasSubstr("privacy.delta"));
    EXPECT_THAT(error_of([] { Config::from_yaml_text("privacy.mechanism: dp\n", "t.yaml"); }),
                HasSubstr("privacy.mechanism"));
}

TEST(PrivacyConfig, DescribeNamesMechanismAndParameters) {
    auto o = options(PrivacyMechanism::randomized_response);
    EXPECT_THAT(describe(o), HasSubstr("randomized-response epsilon=0.3 clip=0.12 buckets=256"));
    EXPECT_THAT(describe(o), HasSubstr("513 levels"));
    o.mechanism = PrivacyMechanism::pfcr_reference;
    EXPECT_THAT(describe(o), HasSubstr("WARNING"));
    o.mechanism = PrivacyMechanism::gaussian;
    EXPECT_THAT(describe(o), HasSubstr("noise_multiplier=1"));
}

// --- none ------------------------------------------------------------------------------

TEST(PrivacyNone, IsExactlyTheFixedPointEncoding) {
    const auto x = uniform_values(1, 0, 1000, 3.0);
    const auto o = options(PrivacyMechanism::none);
    std::vector<int64_t> acc(x.size(), 0), ref(x.size(), 0);
    privatize_add(o, 1, 0, 0, 3, 10, 7, x.data(), int64_t(x.size()), acc.data());
    encode_add(ref.data(), x.data(), int64_t(x.size()), 0.3, 40, fixed_point_max_abs(7));
    EXPECT_EQ(acc, ref);
    std::vector<float> out(x.size()), ref_out(x.size());
    privatize_decode(o, acc.data(), int64_t(acc.size()), 10, out.data());
    decode(ref_out.data(), ref.data(), int64_t(ref.size()), 40);
    EXPECT_EQ(0, std::memcmp(out.data(), ref_out.data(), out.size() * sizeof(float)));
}

// --- every mechanism: order independence, keyed determinism, errors ------------------------

TEST(PrivacyAll, AccumulatorIsIdenticalForAnyClientOrder) {
    const int64_t K = 12, n = 300;
    std::vector<int64_t> rows;
    int64_t total = 0;
    for (int64_t k = 0; k < K; ++k) total += rows.emplace_back(1 + (k * 5) % 9);
    for (auto m : all_mechanisms) {
        auto o = options(m);
        o.clip_norm = 4.0;
        auto sum_in = [&](const std::vector<int64_t>& order) {
            std::vector<int64_t> acc(size_t(n), 0);
            for (int64_t k : order) {
                const auto x = uniform_values(2, uint32_t(k), n, 0.2);
                privatize_add(o, 3, 5, k, rows[size_t(k)], total, K, x.data(), n, acc.data());
            }
            return acc;
        };
        const std::vector<int64_t> forward = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        const std::vector<int64_t> shuffled = {7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 6, 4};
        EXPECT_EQ(sum_in(forward), sum_in(shuffled)) << mechanism_name(m);
    }
}

TEST(PrivacyAll, ContributionIsAPureFunctionOfSeedRoundClientAndElement) {
    const auto x = uniform_values(3, 0, 2000, 0.2);
    for (auto m : {PrivacyMechanism::pfcr_reference, PrivacyMechanism::randomized_response,
                   PrivacyMechanism::gaussian}) {
        auto o = options(m);
        o.clip_norm = 100.0; // no clipping, so a prefix of x is privatized like the whole
        const auto a = single(o, x, 3, 7, 5);
        EXPECT_EQ(a, single(o, x, 3, 7, 5)) << mechanism_name(m);
        // Another client, round or seed draws other noise (nearly every element differs for
        // gaussian; for the bucket mechanisms at least a large share).
        for (const auto& other :
             {single(o, x, 3, 8, 5), single(o, x, 4, 7, 5), single(o, x, 3, 7, 6)}) {
            int64_t differ = 0;
            for (size_t i = 0; i < x.size(); ++i) differ += a[i] != other[i];
            EXPECT_GT(differ, int64_t(x.size()) / 3) << mechanism_name(m);
        }
        // Draws are addressed by element: the first 100 elements alone get the same noise.
        const std::vector<float> head(x.begin(), x.begin() + 100);
        const auto h = single(o, head, 3, 7, 5);
        EXPECT_TRUE(std::equal(h.begin(), h.end(), a.begin())) << mechanism_name(m);
    }
}

TEST(PrivacyAll, NonFiniteInputNamesTheElement) {
    for (auto m : all_mechanisms) {
        auto x = uniform_values(4, 0, 50, 0.1);
        x[17] = std::numeric_limits<float>::quiet_NaN();
        EXPECT_THAT(error_of([&] { single(options(m), x); }), HasSubstr("element 17"))
            << mechanism_name(m);
        x[17] = 0.0f;
        x[3] = -std::numeric_limits<float>::infinity();
        EXPECT_THAT(error_of([&] { single(options(m), x); }), HasSubstr("element 3"))
            << mechanism_name(m);
    }
}

TEST(PrivacyAll, OverflowIsAnErrorNotAWrap) {
    std::vector<float> x(10, 0.01f);
    x[5] = 3.0e30f; // 3e30 * 2^40 > 2^63
    EXPECT_THAT(error_of([&] { single(options(PrivacyMechanism::none), x); }),
                HasSubstr("element 5"));
    auto g = options(PrivacyMechanism::gaussian);
    g.clip_norm = 1e31;
    g.noise_multiplier = 0.0;
    EXPECT_THAT(error_of([&] { single(g, x); }), HasSubstr("element 5"));
    // Bucket mechanisms: rows * largest bucket must fit the per-contribution bound.
    const auto rr = options(PrivacyMechanism::randomized_response);
    std::vector<int64_t> acc(x.size(), 0);
    x[5] = 0.0f;
    EXPECT_THAT(error_of([&] {
                    privatize_add(rr, 1, 0, 0, int64_t(1) << 60, int64_t(1) << 60, 1, x.data(),
                                  int64_t(x.size()), acc.data());
                }),
                HasSubstr("overflow"));
}

// --- pfcr-reference ----------------------------------------------------------------------

TEST(PfcrReference, BucketsRoundHalfToEvenAndClamp) {
    // c = 1, K = 4: s = 0.25, so (x + 1) / 0.25 is exact and ties are real ties.
    EXPECT_EQ(pfcr_reference_bucket(-0.875f, 1.0, 4), 0); // 0.5 -> 0
    EXPECT_EQ(pfcr_reference_bucket(-0.625f, 1.0, 4), 2); // 1.5 -> 2
    EXPECT_EQ(pfcr_reference_bucket(-0.375f, 1.0, 4), 2); // 2.5 -> 2
    EXPECT_EQ(pfcr_reference_bucket(-0.125f, 1.0, 4), 4); // 3.5 -> 4
    EXPECT_EQ(pfcr_reference_bucket(0.125f, 1.0, 4), 4);  // 4.5 -> 4
    EXPECT_EQ(pfcr_reference_bucket(0.375f, 1.0, 4), 6);  // 5.5 -> 6
    EXPECT_EQ(pfcr_reference_bucket(0.3f, 1.0, 4), 5);    // 5.2 -> 5
    EXPECT_EQ(pfcr_reference_bucket(1.0f, 1.0, 4), 8);
    EXPECT_EQ(pfcr_reference_bucket(5.0f, 1.0, 4), 8);  // clamped to c
    EXPECT_EQ(pfcr_reference_bucket(-7.0f, 1.0, 4), 0); // clamped to -c
    // PFCR's defaults: c = 0.12, K = 256 gives buckets 0..512 with 0 at 256.
    EXPECT_EQ(pfcr_reference_bucket(-0.12f, 0.12, 256), 0);
    EXPECT_EQ(pfcr_reference_bucket(0.0f, 0.12, 256), 256);
    EXPECT_EQ(pfcr_reference_bucket(0.12f, 0.12, 256), 512);
    EXPECT_EQ(pfcr_reference_bucket(1.0f, 0.12, 256), 512);
    // The published flaw: x and x - c land in the same bucket mod K (the sign is lost).
    EXPECT_EQ(pfcr_reference_bucket(0.06f, 0.12, 256) % 256,
              pfcr_reference_bucket(-0.06f, 0.12, 256) % 256);
}

TEST(PfcrReference, ReportsBucketsModKWithTheAddProbability) {
    // r = q + u mod K with probability p, else q mod K; u uniform on 0..K-1 makes q + u mod K
    // uniform, so P(r = q + d mod K) = 1 - p + p/K for d = 0 and p/K for d = 1..K-1.
    for (double eps : {0.3, 3.0}) {
        auto o = options(PrivacyMechanism::pfcr_reference);
        o.epsilon = eps;
        o.clip = 1.0;
        o.buckets = 4;
        const int64_t K = 4, n = 200000;
        const auto x = uniform_values(5, 0, n, 1.3);
        const auto acc = single(o, x);
        std::vector<int64_t> count(size_t(K), 0);
        for (int64_t i = 0; i < n; ++i) {
            ASSERT_GE(acc[size_t(i)], 0);
            ASSERT_LT(acc[size_t(i)], K);
            const int64_t q = pfcr_reference_bucket(x[size_t(i)], 1.0, K);
            ++count[size_t(((acc[size_t(i)] - q) % K + K) % K)];
        }
        const double p = pfcr_reference_add_probability(eps);
        EXPECT_NEAR(p, (std::exp(eps) + 1) / (std::exp(eps) + 2), 1e-15);
        for (int64_t d = 0; d < K; ++d) {
            const double expected = d == 0 ? 1 - p + p / K : p / K;
            // Binomial count: 5 standard deviations (two-sided miss probability 6e-7).
            const double bound = 5 * std::sqrt(expected * (1 - expected) / n);
            EXPECT_NEAR(double(count[size_t(d)]) / n, expected, bound)
                << "eps " << eps << " d " << d;
        }
    }
    // Its actual LDP level: ln(1 + K (1-p)/p) = 4.70 at PFCR's eps = 0.3, K = 256.
    EXPECT_NEAR(pfcr_reference_effective_epsilon(0.3, 256), 4.700, 0.001);
    EXPECT_LT(pfcr_reference_effective_epsilon(3.0, 256),
              pfcr_reference_effective_epsilon(0.3, 256));
}

TEST(PfcrReference, DecodeIsThePublishedFormula) {
    const auto o = options(PrivacyMechanism::pfcr_reference); // c = 0.12, K = 256
    const std::vector<int64_t> acc = {0, 1000, 2550, 12345, 7};
    std::vector<float> out(acc.size());
    privatize_decode(o, acc.data(), int64_t(acc.size()), 10, out.data());
    for (size_t i = 0; i < acc.size(); ++i)
        EXPECT_EQ(out[i], float((double(acc[i]) / 10.0 - 0.12) * (0.12 / 256.0))) << i;
    // ... which maps the all-zero gradient's buckets (q = K, r = 0 without noise) to -c*s,
    // not to 0: the offset is not undone.
    EXPECT_FLOAT_EQ(out[0], float(-0.12 * 0.12 / 256));
}

TEST(PfcrReference, AccountingSaysItIsNotValidLdp) {
    const auto ps = privacy_spent(options(PrivacyMechanism::pfcr_reference), 10);
    EXPECT_FALSE(ps.valid_ldp);
    EXPECT_EQ(ps.epsilon_round, 0.3);
    EXPECT_NEAR(ps.epsilon_total, 3.0, 1e-12);
    EXPECT_THAT(ps.note, HasSubstr("NOT a valid LDP"));
    EXPECT_THAT(ps.note, HasSubstr("4.7"));
}

// --- randomized-response -----------------------------------------------------------------

TEST(RandomizedResponse, KeepsTheBucketWithProbabilityPElseUniformOtherBucket) {
    // c = 1, K = 4, B = 9; x on the grid j*s - c, so q = j without any rounding draw.
    auto o = options(PrivacyMechanism::randomized_response);
    o.clip = 1.0;
    o.buckets = 4;
    o.epsilon = 1.0;
    const int64_t B = 9, n = 180000;
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(i % B) * 0.25f - 1.0f;
    const auto y = single(o, x);
    int64_t kept = 0;
    std::vector<int64_t> offset(size_t(B), 0);
    for (int64_t i = 0; i < n; ++i) {
        ASSERT_GE(y[size_t(i)], 0);
        ASSERT_LT(y[size_t(i)], B);
        kept += y[size_t(i)] == i % B;
        ++offset[size_t((y[size_t(i)] - i % B + B) % B)];
    }
    const double p = rr_keep_probability(1.0, 4);
    EXPECT_NEAR(p, std::exp(1.0) / (std::exp(1.0) + 8), 1e-15);
    EXPECT_NEAR(double(kept) / n, p, 5 * std::sqrt(p * (1 - p) / n)); // binomial, 5 sigma
    // Not kept: each of the B - 1 other buckets equally likely. Chi-square with B - 2 = 7
    // degrees of freedom (the total is fixed), mean 7, sd sqrt(14): bound mean + 5 sd.
    const double e = double(n - kept) / double(B - 1);
    double chi2 = 0;
    for (int64_t d = 1; d < B; ++d) chi2 += std::pow(double(offset[size_t(d)]) - e, 2) / e;
    EXPECT_LT(chi2, 7 + 5 * std::sqrt(14.0));
}

namespace {

// Exact variance of one client's report y for input x (stochastic rounding, then RR).
double rr_report_variance(double x, double c, int64_t K, double eps) {
    const double B = double(2 * K + 1), s = c / double(K), p = rr_keep_probability(eps, K);
    const double S1 = B * (B - 1) / 2, S2 = (B - 1) * B * (2 * B - 1) / 6;
    const double t = (std::clamp(x, -c, c) + c) / s, lo = std::floor(t), f = t - lo;
    double ey = 0, ey2 = 0;
    for (auto [q, pq] : {std::pair<double, double>{lo, 1 - f}, {lo + 1, f}}) {
        if (pq == 0) continue;
        ey += pq * (p * q + (1 - p) / (B - 1) * (S1 - q));
        ey2 += pq * (p * q * q + (1 - p) / (B - 1) * (S2 - q * q));
    }
    return ey2 - ey * ey;
}

} // namespace

TEST(RandomizedResponse, DecodedAggregateIsUnbiasedForTheClampedMean) {
    // 40 clients with unequal rows, 3000 coordinates, inputs uniform in [-1.2c, 2.4c] (clamped
    // on both sides; mean of the clamped values c/3, so a decoding that shrinks is visible;
    // the midpoint bucket is a fixed point of E[y|q], so a zero-mean input would hide it). For each
    // coordinate the decoded value est = ((m - b)/a) s - c has variance
    // (s/a)^2 sum_k w_k^2 Var(y_k) (computed exactly above). Checks: the summed error over all
    // coordinates is within 5 of its own sd (bias), and mean z^2 is 1 within 5 sd of a mean of
    // 3000 z^2; Var(z^2) = 2 + excess kurtosis <= 2.5 for a sum of 40 bounded reports.
    const int64_t n_clients = 40, n = 3000;
    const double c = 0.5;
    std::vector<int64_t> rows;
    int64_t total = 0;
    for (int64_t k = 0; k < n_clients; ++k) total += rows.emplace_back(1 + (k * 7) % 13);
    for (double eps : {2.0, 0.5}) {
        auto o = options(PrivacyMechanism::randomized_response);
        o.clip = c;
        o.buckets = 4;
        o.epsilon = eps;
        const double s = c / 4, B = 9, p = rr_keep_probability(eps, 4);
        const double a = (B * p - 1) / (B - 1);
        std::vector<int64_t> acc(size_t(n), 0);
        std::vector<double> truth(size_t(n), 0.0), var(size_t(n), 0.0);
        for (int64_t k = 0; k < n_clients; ++k) {
            auto x = uniform_values(6, uint32_t(k), n, 1.8 * c);
            for (auto& v : x) v += float(0.6 * c);
            privatize_add(o, 9, 2, k, rows[size_t(k)], total, n_clients, x.data(), n, acc.data());
            const double w = double(rows[size_t(k)]) / double(total);
            for (int64_t i = 0; i < n; ++i) {
                truth[size_t(i)] += w * std::clamp(double(x[size_t(i)]), -c, c);
                var[size_t(i)] +=
                    w * w * (s / a) * (s / a) * rr_report_variance(x[size_t(i)], c, 4, eps);
            }
        }
        std::vector<float> est(static_cast<size_t>(n));
        privatize_decode(o, acc.data(), n, total, est.data());
        double err = 0, var_sum = 0, z2 = 0, naive_err = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double e = double(est[size_t(i)]) - truth[size_t(i)];
            err += e;
            var_sum += var[size_t(i)];
            z2 += e * e / var[size_t(i)];
            // Decoding without the (m - b)/a correction: m s - c.
            naive_err += double(acc[size_t(i)]) / double(total) * s - c - truth[size_t(i)];
        }
        EXPECT_LT(std::fabs(err), 5 * std::sqrt(var_sum)) << "eps " << eps;
        EXPECT_NEAR(z2 / n, 1.0, 5 * std::sqrt(2.5 / n)) << "eps " << eps;
        // The bound has power: the uncorrected decoding m s - c (E = a * truth, a < 1) fails
        // it (expected by ~10 sd at eps 0.5, ~40 sd at eps 2).
        EXPECT_GT(std::fabs(naive_err), 5 * std::sqrt(var_sum)) << "eps " << eps;
    }
}

TEST(RandomizedResponse, HugeEpsilonIsTheIdentityOnTheGrid) {
    // p = 1 exactly, a = 1, b = 0: only the (here trivial) stochastic rounding remains.
    auto o = options(PrivacyMechanism::randomized_response);
    o.clip = 1.0;
    o.buckets = 4;
    o.epsilon = 1e4;
    EXPECT_EQ(rr_keep_probability(o.epsilon, 4), 1.0);
    std::vector<float> x;
    for (int j = 0; j <= 8; ++j) x.push_back(float(j) * 0.25f - 1.0f);
    const auto acc = single(o, x);
    std::vector<float> out(x.size());
    privatize_decode(o, acc.data(), int64_t(acc.size()), 1, out.data());
    EXPECT_EQ(out, x);
}

TEST(RandomizedResponse, AccountingIsPerCoordinateBasicComposition) {
    auto o = options(PrivacyMechanism::randomized_response);
    o.epsilon = 0.7;
    const auto ps = privacy_spent(o, 12);
    EXPECT_TRUE(ps.valid_ldp);
    EXPECT_EQ(ps.epsilon_round, 0.7);
    EXPECT_NEAR(ps.epsilon_total, 8.4, 1e-12);
    EXPECT_EQ(ps.delta, 0.0);
    EXPECT_THAT(ps.note, HasSubstr("per coordinate"));
    EXPECT_THAT(ps.note, HasSubstr("n*epsilon"));
}

// --- gaussian ----------------------------------------------------------------------------

TEST(Gaussian, ClipsTheWholeVectorToTheL2Norm) {
    auto o = options(PrivacyMechanism::gaussian);
    o.noise_multiplier = 0.0; // no noise: clipping alone
    o.clip_norm = 1.0;
    for (double scale : {0.01, 0.2}) { // norms ~0.58 (kept) and ~11.5 (clipped)
        const auto x = uniform_values(7, 0, 10000, scale);
        double norm2 = 0;
        for (float v : x) norm2 += double(v) * v;
        const double norm = std::sqrt(norm2);
        EXPECT_DOUBLE_EQ(l2_clip_factor(x.data(), int64_t(x.size()), 1.0),
                         std::min(1.0, 1.0 / norm));
        const auto acc = single(o, x);
        std::vector<float> out(x.size());
        privatize_decode(o, acc.data(), int64_t(acc.size()), 1, out.data());
        double out2 = 0;
        for (float v : out) out2 += double(v) * v;
        // Fixed point (2^-41 per element) and float rounding (2^-24 relative) only.
        EXPECT_NEAR(std::sqrt(out2), std::min(norm, 1.0), 1e-6) << "scale " << scale;
        if (norm <= 1.0) { // zero noise and no clipping == identity: bitwise the same as none
            EXPECT_EQ(acc, single(options(PrivacyMechanism::none), x));
        }
    }
}

TEST(Gaussian, NoiseIsNormalWithStdSigmaTimesC) {
    auto o = options(PrivacyMechanism::gaussian);
    o.noise_multiplier = 0.5;
    o.clip_norm = 2.0; // std 1
    const int64_t n = 200000;
    const std::vector<float> x(static_cast<size_t>(n), 0.0f);
    const auto acc = single(o, x);
    std::vector<double> z(static_cast<size_t>(n));
    decode(z.data(), acc.data(), n, o.fixed_point_bits);
    double sum = 0, sum2 = 0, within1 = 0, pair = 0;
    for (int64_t i = 0; i < n; ++i) {
        sum += z[size_t(i)];
        sum2 += z[size_t(i)] * z[size_t(i)];
        within1 += std::fabs(z[size_t(i)]) < 1.0;
        if (i % 2 == 1) pair += z[size_t(i)] * z[size_t(i - 1)];
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    EXPECT_NEAR(mean, 0.0, 5 / std::sqrt(double(n)));
    // n var / sigma^2 ~ chi^2(n - 1): sd of var / sigma^2 is sqrt(2 / n).
    EXPECT_NEAR(var, 1.0, 5 * std::sqrt(2.0 / n));
    // P(|z| < 1) = 0.682689 for a standard normal; binomial bound.
    EXPECT_NEAR(within1 / n, 0.682689, 5 * std::sqrt(0.682689 * 0.317311 / n));
    // The two Box-Muller outputs of one pair are uncorrelated: sd of the mean product 1/sqrt(n/2).
    EXPECT_NEAR(pair / (n / 2), 0.0, 5 / std::sqrt(n / 2.0));
}

TEST(Gaussian, AccountingIsZcdpComposedAndConverted) {
    auto o = options(PrivacyMechanism::gaussian);
    o.noise_multiplier = 1.0;
    o.delta = 1e-5;
    // rho = 2 / sigma^2 = 2 per round; eps = rho + 2 sqrt(rho ln(1/delta)).
    const auto ps = privacy_spent(o, 10);
    EXPECT_TRUE(ps.valid_ldp);
    EXPECT_EQ(ps.delta, 1e-5);
    EXPECT_NEAR(ps.epsilon_round, 2 + 2 * std::sqrt(2 * std::log(1e5)), 1e-12);
    EXPECT_NEAR(ps.epsilon_round, 11.59705, 1e-5);
    EXPECT_NEAR(ps.epsilon_total, 20 + 2 * std::sqrt(20 * std::log(1e5)), 1e-12);
    EXPECT_NEAR(ps.epsilon_total, 50.34854, 1e-5);
    o.noise_multiplier = 4.0; // rho = 1/8
    EXPECT_NEAR(privacy_spent(o, 1).epsilon_round, 0.125 + 2 * std::sqrt(0.125 * std::log(1e5)),
                1e-12);
    EXPECT_EQ(privacy_spent(o, 0).epsilon_total, 0.0);
    EXPECT_THAT(ps.note, HasSubstr("2*clip_norm"));
}

TEST(PrivacyNone, AccountingIsInfinite) {
    const auto ps = privacy_spent(options(PrivacyMechanism::none), 3);
    EXPECT_FALSE(ps.valid_ldp);
    EXPECT_TRUE(std::isinf(ps.epsilon_round));
    EXPECT_TRUE(std::isinf(ps.epsilon_total));
}
