// CompactMoments: storing a client's Adam moments without all-zero rows is lossless (every bit
// comes back, -0.0f and NaN payloads included) and keeps only the touched rows.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "federation/compact_moments.hpp"

namespace pfcr {
namespace {

ModelShape small_shape() {
    ModelShape s;
    s.hidden = 8;
    s.inner = 8;
    s.layers = 1;
    s.heads = 2;
    s.max_positions = 5;
    s.code_dim = 4;
    s.code_cap = 16;
    return s;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CompactMoments, EmptyUntilTouchedAndLosslessBitForBit) {
    const ParamLayout layout(small_shape());
    const int64_t n = layout.total();
    const auto& table = layout.at("pq_code_embedding.weight");
    const int64_t hidden = table.shape[1];
    std::vector<float> m(size_t(n), 0.0f), v(size_t(n), 0.0f);
    CompactMoments c;
    c.store(layout, m.data(), v.data());
    EXPECT_EQ(c.kept(), 0);

    // Touch 3 table rows (one only through v, one holding -0.0f and a NaN payload) and one
    // 1-D entry (a whole LayerNorm weight is one row).
    m[size_t(table.offset + 2 * hidden + 1)] = 0.25f;
    v[size_t(table.offset + 7 * hidden)] = 1e-30f;
    m[size_t(table.offset + 9 * hidden + 3)] = -0.0f;
    v[size_t(table.offset + 9 * hidden + 4)] = std::numeric_limits<float>::quiet_NaN();
    const auto& ln = layout.at("LayerNorm.weight");
    v[size_t(ln.offset)] = 3.0f;
    c.store(layout, m.data(), v.data());
    EXPECT_EQ(c.kept(), 3 * hidden + ln.size);
    EXPECT_LT(c.bytes(), int64_t(2 * n * sizeof(float)));

    std::vector<float> m2(size_t(n), 7.0f), v2(size_t(n), 7.0f); // load overwrites everything
    c.load(layout, m2.data(), v2.data());
    EXPECT_TRUE(same_bits(m, m2));
    EXPECT_TRUE(same_bits(v, v2));

    // Dense moments (also in the layout's alignment gaps): everything is kept and comes back.
    for (int64_t i = 0; i < n; ++i) {
        m[size_t(i)] = float(i % 13) * 0.5f - 1.0f;
        v[size_t(i)] = float(i % 7);
    }
    c.store(layout, m.data(), v.data());
    EXPECT_EQ(c.kept(), n);
    c.load(layout, m2.data(), v2.data());
    EXPECT_TRUE(same_bits(m, m2));
    EXPECT_TRUE(same_bits(v, v2));
}

} // namespace
} // namespace pfcr
