// Parameter layout: PyTorch state_dict names and shapes of PFCR's encoder, the paper-config
// parameter count, alignment, and keyed initialisation statistics.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "model/params.hpp"

using namespace pfcr;

TEST(ParamLayout, PaperConfigNamesShapesAndCount) {
    const ParamLayout layout{ModelShape{}};
    const auto& q = layout.at("trm_encoder.layer.1.multi_head_attention.query.weight");
    EXPECT_EQ(q.shape, (std::vector<int64_t>{300, 300}));
    EXPECT_EQ(layout.at("trm_encoder.layer.0.feed_forward.dense_1.weight").shape,
              (std::vector<int64_t>{256, 300})); // [out, in] as PyTorch stores Linear weights
    EXPECT_EQ(layout.at("pq_code_embedding.weight").shape, (std::vector<int64_t>{8224, 300}));
    EXPECT_TRUE(layout.at("pq_code_embedding.weight").shared);
    EXPECT_FALSE(layout.at("position_embedding.weight").shared);
    EXPECT_THROW(layout.at("nope"), Error);
    // Count as PyTorch would: per layer 4*(C*C + C) + 2C + (F*C + F) + (C*F + C) + 2C.
    const int64_t C = 300, F = 256;
    const int64_t per_layer = 4 * (C * C + C) + 2 * C + (F * C + F) + (C * F + C) + 2 * C;
    int64_t sum = 0;
    for (const auto& e : layout.entries()) {
        sum += e.size;
        EXPECT_EQ(e.offset % 16, 0) << e.name;
    }
    EXPECT_EQ(sum, 8224 * C + 2 * per_layer + 50 * C + 2 * C);
    EXPECT_EQ(layout.entries().size(), 2u * 16u + 4u);
}

TEST(ParamLayout, InitMatchesRecBoleStatisticsAndIsKeyed) {
    const ParamLayout layout{ModelShape{}};
    AlignedBuffer<float> a(layout.total()), b(layout.total());
    init_params(layout, a.data(), 2020, 0.02);
    init_params(layout, b.data(), 2020, 0.02);
    for (int64_t i = 0; i < layout.total(); ++i) ASSERT_EQ(a[i], b[i]);
    const auto& table = layout.at("pq_code_embedding.weight");
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < table.size; ++i) {
        s += a[table.offset + i];
        s2 += double(a[table.offset + i]) * a[table.offset + i];
    }
    const double n = double(table.size);
    // 2.47M draws: the std estimate's relative standard error is ~1/sqrt(2n) = 0.05 %, so 1 %
    // is a wide but still meaningful bound; the mean's standard error is 0.02/sqrt(n) ~ 1.3e-5.
    EXPECT_NEAR(std::sqrt(s2 / n), 0.02, 0.0002);
    EXPECT_NEAR(s / n, 0.0, 1e-4);
    EXPECT_EQ(a[layout.at("LayerNorm.weight").offset], 1.0f);
    EXPECT_EQ(a[layout.at("trm_encoder.layer.0.multi_head_attention.query.bias").offset], 0.0f);
    // Keyed per name: a different layer count leaves the code table's values unchanged.
    ModelShape three;
    three.layers = 3;
    const ParamLayout l3{three};
    AlignedBuffer<float> c(l3.total());
    init_params(l3, c.data(), 2020, 0.02);
    for (int64_t i = 0; i < 1000; ++i)
        ASSERT_EQ(c[l3.at("pq_code_embedding.weight").offset + i], a[table.offset + i]);
}
