// Counter-based RNG: known-answer test against the Philox4x32-10 reference vectors
// (Random123 kat_vectors), keyed-stream independence and basic distribution checks.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.hpp"

using namespace pfcr;

TEST(Philox, MatchesRandom123KnownAnswers) {
    // Random123 kat_vectors: philox4x32 10 rounds.
    EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}),
              (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
    EXPECT_EQ(philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                         {0xffffffffu, 0xffffffffu}),
              (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
    EXPECT_EQ(philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                         {0xa4093822u, 0x299f31d0u}),
              (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(KeyedRng, SameKeyAndCounterGiveSameDrawsRegardlessOfOrder) {
    const KeyedRng rng(2020, RngPurpose::dropout);
    auto a = rng.stream(3, 7, 1);
    std::vector<uint32_t> first;
    for (int i = 0; i < 10; ++i) first.push_back(a.next_u32());
    // Draw from another stream in between: no shared state.
    auto other = rng.stream(4, 7, 1);
    (void)other.next_u32();
    auto b = KeyedRng(2020, RngPurpose::dropout).stream(3, 7, 1);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(b.next_u32(), first[size_t(i)]);
}

TEST(KeyedRng, BlocksEqualsBlockByBlock) {
    const KeyedRng rng(77, RngPurpose::dropout);
    // Lengths around the groups of 8 (AVX-512) or 4 (AVX2) blocks and the interleaved sets of 4
    // groups (a partial last set is computed whole and cut: rest <= 1, 2 or 4 groups), and
    // starts that wrap the 32-bit counter at a group boundary and inside a group. Nothing is
    // written past the 4n words.
    for (const uint32_t d0 : {0u, 5u, 0xFFFFFFF0u, 0xFFFFFFFBu})
        for (const int64_t n :
             {1, 3, 7, 8, 9, 15, 16, 17, 24, 25, 32, 33, 40, 63, 64, 65, 76, 100}) {
            std::vector<uint32_t> words(size_t(4 * n + 32), 0xDEADBEEFu);
            rng.blocks(3, 4, 5, d0, n, words.data());
            for (int64_t i = 0; i < n; ++i) {
                const PhiloxCounter ref = rng.block(3, 4, 5, d0 + uint32_t(i));
                for (int w = 0; w < 4; ++w)
                    ASSERT_EQ(words[size_t(4 * i + w)], ref[size_t(w)])
                        << "d0 " << d0 << " n " << n << " block " << i;
            }
            for (size_t i = size_t(4 * n); i < words.size(); ++i)
                ASSERT_EQ(words[i], 0xDEADBEEFu) << "n " << n << " word " << i;
        }
}

TEST(KeyedRng, PurposeSeedAndCounterSeparateStreams) {
    const auto draw = [](uint64_t seed, RngPurpose p, uint32_t a) {
        return KeyedRng(seed, p).stream(a).next_u64();
    };
    const uint64_t base = draw(1, RngPurpose::shuffle, 0);
    EXPECT_NE(base, draw(2, RngPurpose::shuffle, 0));
    EXPECT_NE(base, draw(1, RngPurpose::dropout, 0));
    EXPECT_NE(base, draw(1, RngPurpose::shuffle, 1));
}

TEST(KeyedRng, UniformAndNormalMoments) {
    // 200k draws: the standard error of the mean is ~0.0007 (uniform) and ~0.0022 (normal), so
    // 5-sigma bounds of 0.004 / 0.012 fail only if the generator is broken.
    auto s = KeyedRng(7, RngPurpose::init).stream(0);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; ++i) {
        const double u = s.uniform();
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        su += u;
        const double z = s.normal();
        sn += z;
        sn2 += z * z;
    }
    EXPECT_NEAR(su / n, 0.5, 0.004);
    EXPECT_NEAR(sn / n, 0.0, 0.012);
    EXPECT_NEAR(sn2 / n, 1.0, 0.02);
}

TEST(KeyedRng, BelowIsInRangeAndCoversAllValues) {
    auto s = KeyedRng(9, RngPurpose::sampling).stream(0);
    std::vector<int> hits(7, 0);
    for (int i = 0; i < 7000; ++i) {
        const auto v = s.below(7);
        ASSERT_LT(v, 7u);
        ++hits[v];
    }
    for (int h : hits) EXPECT_GT(h, 800); // expectation 1000, sd ~29
}
