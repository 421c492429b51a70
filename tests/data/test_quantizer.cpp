// Joint faiss quantizer: code shapes and ranges, identical codes for a fixed seed and thread
// setting, a different seed changing them, non-8-bit codes unpacked correctly (codes of the
// same data at 4 bits decode close to the data), and reconstruction better than chance.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "data/quantizer.hpp"

using namespace pfcr;

namespace {

// Clustered data: 40 centres in 16-d, 1200 points with small noise.
std::vector<float> clustered(int64_t n, int64_t d, uint64_t seed) {
    const KeyedRng rng(seed, RngPurpose::synth);
    auto s = rng.stream(0);
    std::vector<float> centres(size_t(40 * d));
    for (auto& c : centres) c = float(s.normal());
    std::vector<float> x(size_t(n * d));
    for (int64_t i = 0; i < n; ++i) {
        const auto c = s.below(40);
        for (int64_t j = 0; j < d; ++j)
            x[size_t(i * d + j)] = centres[c * d + j] + 0.1f * float(s.normal());
    }
    return x;
}

QuantizerOptions small(int64_t cap) {
    QuantizerOptions o;
    o.code_dim = 4;
    o.code_cap = cap;
    o.kmeans_iterations = 10;
    o.opq_iterations = 3;
    return o;
}

} // namespace

TEST(Quantizer, CodeShapesRangesAndDeterminism) {
    const auto x = clustered(1200, 16, 1);
    const auto a = fit_joint_quantizer(x, 1200, 16, small(256));
    EXPECT_EQ(a.factory, "OPQ4,IVF1,PQ4x8np");
    ASSERT_EQ(a.codes.size(), 1200u * 4u);
    for (int32_t c : a.codes) {
        ASSERT_GE(c, 0);
        ASSERT_LT(c, 256);
    }
    EXPECT_EQ(a.opq_matrix.size(), 16u * 16u);
    EXPECT_EQ(a.pq_centroids.size(), 4u * 256u * 4u);
    const auto b = fit_joint_quantizer(x, 1200, 16, small(256));
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.opq_matrix, b.opq_matrix);
    EXPECT_EQ(a.pq_centroids, b.pq_centroids);
    // 40 tight clusters, 256 centroids per sub-space: reconstruction is near perfect.
    EXPECT_LT(a.relative_mse, 0.05);
    auto other = small(256);
    other.seed = 99;
    EXPECT_NE(fit_joint_quantizer(x, 1200, 16, other).codes, a.codes);
}

TEST(Quantizer, FourBitCodesAreUnpackedCorrectly) {
    const auto x = clustered(1200, 16, 2);
    const auto r = fit_joint_quantizer(x, 1200, 16, small(16));
    EXPECT_EQ(r.factory, "OPQ4,IVF1,PQ4x4np");
    // Decode by hand: rotated x ~ centroid + pq_centroids[m][code]; compare with x rotated.
    const int64_t d = 16, M = 4, dsub = 4;
    double err = 0, norm = 0;
    for (int64_t i = 0; i < 1200; ++i) {
        for (int64_t m = 0; m < M; ++m) {
            const int32_t c = r.codes[size_t(i * M + m)];
            ASSERT_GE(c, 0);
            ASSERT_LT(c, 16);
            for (int64_t j = 0; j < dsub; ++j) {
                const int64_t row = m * dsub + j;
                double y = 0;
                for (int64_t k = 0; k < d; ++k)
                    y += double(r.opq_matrix[size_t(row * d + k)]) * x[size_t(i * d + k)];
                const double rec =
                    r.ivf_centroid[size_t(row)] + r.pq_centroids[size_t((m * 16 + c) * dsub + j)];
                err += (y - rec) * (y - rec);
                norm += y * y;
            }
        }
    }
    // Wrongly unpacked 4-bit codes would pick unrelated centroids (relative error ~1-2).
    EXPECT_NEAR(err / norm, r.relative_mse, 1e-3);
    EXPECT_LT(err / norm, 0.5);
}

TEST(Quantizer, RejectsTooFewItemsAndBadShapes) {
    const auto x = clustered(100, 16, 3);
    EXPECT_THROW(fit_joint_quantizer(x, 100, 16, small(256)), Error); // 100 < 256 centroids
    auto bad = small(16);
    bad.code_dim = 5; // 16 % 5 != 0
    EXPECT_THROW(fit_joint_quantizer(x, 100, 16, bad), Error);
}
