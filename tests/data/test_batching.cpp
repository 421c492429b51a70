// Batching: the epoch shuffle is a keyed permutation (same keys -> same order, other epoch or
// client -> other order) and packed batches hold exactly the split's rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "data/batching.hpp"

using namespace pfcr;

TEST(Batching, EpochPermutationIsKeyedAndComplete) {
    const auto a = epoch_permutation(1000, 2020, 3, 7);
    EXPECT_EQ(a, epoch_permutation(1000, 2020, 3, 7));
    EXPECT_NE(a, epoch_permutation(1000, 2020, 3, 8));
    EXPECT_NE(a, epoch_permutation(1000, 2020, 4, 7));
    EXPECT_NE(a, epoch_permutation(1000, 2021, 3, 7));
    auto sorted = a;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> expect(1000);
    std::iota(expect.begin(), expect.end(), 0);
    EXPECT_EQ(sorted, expect);
    // A shuffle, not the identity: fixed points of a random permutation ~ Poisson(1).
    int fixed = 0;
    for (int64_t i = 0; i < 1000; ++i) fixed += a[size_t(i)] == i;
    EXPECT_LT(fixed, 10);
    EXPECT_TRUE(epoch_permutation(0, 1, 0, 0).empty());
}

TEST(Batching, GatherPacksTrueLengthHistories) {
    Split s;
    s.indptr = {0, 2, 3, 7};
    s.items = {5, 6, 7, 1, 2, 3, 4};
    s.targets = {9, 8, 7};
    s.users = {0, 1, 2};
    PackedBatch b;
    const int64_t rows[] = {2, 0};
    gather_batch(s, rows, 2, b);
    EXPECT_EQ(b.off, (std::vector<int64_t>{0, 4, 6}));
    EXPECT_EQ(b.items, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(b.targets, (std::vector<int32_t>{7, 9}));
    EXPECT_EQ(b.max_len, 4);
    EXPECT_EQ(b.tokens(), 6);
    const int64_t one[] = {1};
    gather_batch(s, one, 1, b); // reuse: previous contents are replaced
    EXPECT_EQ(b.items, (std::vector<int32_t>{7}));
    EXPECT_EQ(b.size(), 1);
}
