// Federation building blocks without MPI: fixed-point exactness and order independence, the
// overflow and NaN guards, client-to-rank assignment, per-round client sampling, SerialComm.
// Cross-rank behaviour (MpiComm, 1/2/4 ranks) is in test_mpi_allreduce.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "../support/test_helpers.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "federation/clients.hpp"
#include "federation/fixed_point.hpp"
#include "io/comm.hpp"

using namespace pfcr;
using namespace pfcr::test;
using ::testing::HasSubstr;

namespace {

// Contribution c: n values spread over several orders of magnitude, keyed by c.
std::vector<float> contribution(int64_t c, int64_t n) {
    auto s = KeyedRng(99, RngPurpose::synth).stream(uint32_t(c));
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = float(s.normal() * std::pow(10.0, 4.0 * s.uniform() - 3.0));
    return x;
}

constexpr int S = default_fixed_point_scale_bits;

} // namespace

TEST(FixedPoint, ExactlyRepresentableValuesRoundTripExactly) {
    const std::vector<float> x = {0.0f, 1.0f, -1.5f, 0.25f, -1024.125f, 0x1p-32f, 3.0e6f};
    std::vector<int64_t> acc(x.size(), 0);
    encode_add(acc.data(), x.data(), int64_t(x.size()), 1.0, S, fixed_point_max_abs(1));
    EXPECT_EQ(acc[1], int64_t(1) << 32);
    EXPECT_EQ(acc[5], 1);
    std::vector<float> out(x.size());
    decode(out.data(), acc.data(), int64_t(acc.size()), S);
    EXPECT_TRUE(same_bits(out, x));
}

TEST(FixedPoint, EncodingErrorIsAtMostHalfTheResolution) {
    const auto x = contribution(1, 5000);
    const double w = 0.3;
    std::vector<int64_t> acc(x.size(), 0);
    encode_add(acc.data(), x.data(), int64_t(x.size()), w, S, fixed_point_max_abs(1));
    std::vector<double> out(x.size());
    decode(out.data(), acc.data(), int64_t(acc.size()), S);
    const double half_step = 0.5 * FixedPoint{S}.resolution();
    EXPECT_DOUBLE_EQ(FixedPoint{}.resolution(), 0x1p-32);
    for (size_t i = 0; i < x.size(); ++i)
        ASSERT_LE(std::fabs(out[i] - double(x[i]) * w), half_step) << "element " << i;
}

TEST(FixedPoint, SumIsIdenticalForAnyOrderAndGrouping) {
    // 1000 contributions of 64 elements with unequal weights, summed in id order, in random
    // permutations and as three separately accumulated groups added together (what ranks do).
    const int64_t K = 1000, n = 64;
    std::vector<std::vector<float>> xs;
    std::vector<double> w;
    for (int64_t c = 0; c < K; ++c) {
        xs.push_back(contribution(c, n));
        w.push_back(double(1 + c % 17) / 9000.0);
    }
    const int64_t max_abs = fixed_point_max_abs(K);
    auto sum_in = [&](const std::vector<int64_t>& order) {
        std::vector<int64_t> acc(size_t(n), 0);
        for (int64_t c : order)
            encode_add(acc.data(), xs[size_t(c)].data(), n, w[size_t(c)], S, max_abs);
        std::vector<float> out(static_cast<size_t>(n));
        decode(out.data(), acc.data(), n, S);
        return out;
    };
    std::vector<int64_t> order(static_cast<size_t>(K));
    std::iota(order.begin(), order.end(), int64_t(0));
    const auto reference = sum_in(order);

    // Sanity: the fixed-point sum is the float sum, not something merely consistent.
    for (int64_t i = 0; i < n; ++i) {
        double exact = 0.0;
        for (int64_t c = 0; c < K; ++c) exact += double(xs[size_t(c)][size_t(i)]) * w[size_t(c)];
        EXPECT_NEAR(reference[size_t(i)], exact, 1e-6 * std::fabs(exact) + 1e-7);
    }

    for (uint32_t trial = 0; trial < 5; ++trial) {
        auto s = KeyedRng(7, RngPurpose::shuffle).stream(trial);
        for (int64_t i = K - 1; i > 0; --i)
            std::swap(order[size_t(i)], order[size_t(s.below(uint64_t(i) + 1))]);
        EXPECT_TRUE(same_bits(sum_in(order), reference)) << "permutation " << trial;
    }

    // Three groups of sizes 1, 400, 599 accumulated apart, then the integers added.
    std::vector<int64_t> total(size_t(n), 0);
    for (auto [lo, hi] :
         {std::pair<int64_t, int64_t>{600, 601}, {0, 400}, {601, 1000}, {400, 600}}) {
        std::vector<int64_t> part(size_t(n), 0);
        for (int64_t c = hi - 1; c >= lo; --c)
            encode_add(part.data(), xs[size_t(c)].data(), n, w[size_t(c)], S, max_abs);
        for (int64_t i = 0; i < n; ++i) total[size_t(i)] += part[size_t(i)];
    }
    std::vector<float> grouped(static_cast<size_t>(n));
    decode(grouped.data(), total.data(), n, S);
    EXPECT_TRUE(same_bits(grouped, reference));
}

TEST(FixedPoint, OverflowGuardThrowsNamingTheElement) {
    // K = 4 at scale 32 allows |weight * x| < 2^31 / 4 = 536870912.
    const int64_t max_abs = fixed_point_max_abs(4);
    const std::vector<float> x = {1.0f, -5.0e8f, 6.0e8f, 1.0f};
    std::vector<int64_t> acc(x.size(), 0);
    const auto msg = error_of([&] { encode_add(acc.data(), x.data(), 4, 1.0, S, max_abs); });
    EXPECT_THAT(msg, HasSubstr("element 2"));
    EXPECT_THAT(msg, HasSubstr("overflow bound"));
    // The weight counts: the same value passes with weight 0.5.
    std::vector<int64_t> acc2(x.size(), 0);
    EXPECT_NO_THROW(encode_add(acc2.data(), x.data(), 4, 0.5, S, max_abs));
    // Values whose encoding does not even fit int64 are caught before conversion, not UB.
    const float huge = 1e30f;
    EXPECT_THAT(error_of([&] { encode_add(acc.data(), &huge, 1, -1.0, S, max_abs); }),
                HasSubstr("element 0"));
}

TEST(FixedPoint, BoundIsInclusiveAndKContributionsAtTheBoundNeverOverflow) {
    // Scale 0 makes the integers visible: max_abs 100 admits 100 and rejects 101.
    const float ok = 100.0f, bad = 101.0f, neg = -100.0f;
    int64_t acc = 0;
    EXPECT_NO_THROW(encode_add(&acc, &ok, 1, 1.0, 0, 100));
    EXPECT_NO_THROW(encode_add(&acc, &neg, 1, 1.0, 0, 100));
    EXPECT_ANY_THROW(encode_add(&acc, &bad, 1, 1.0, 0, 100));
    EXPECT_EQ(acc, 0);

    // K = 7 values as close to max_abs as float allows: 7 fit, an 8th overflows and is caught.
    const int64_t K = 7, max_abs = fixed_point_max_abs(K);
    EXPECT_EQ(max_abs, INT64_MAX / 7);
    const float near = std::nextafter(float(max_abs), 0.0f);
    ASSERT_LE(int64_t(near), max_abs);
    int64_t sum = 0;
    for (int64_t k = 0; k < K; ++k) ASSERT_NO_THROW(encode_add(&sum, &near, 1, 1.0, 0, max_abs));
    EXPECT_EQ(sum, K * int64_t(near));
    EXPECT_THAT(error_of([&] { encode_add(&sum, &near, 1, 1.0, 0, max_abs); }),
                HasSubstr("accumulator overflow"));
}

TEST(FixedPoint, NonFiniteValuesThrowNamingTheElement) {
    std::vector<float> x(10, 1.0f);
    std::vector<int64_t> acc(x.size(), 0);
    x[3] = std::nanf("");
    EXPECT_THAT(error_of([&] { encode_add(acc.data(), x.data(), 10, 1.0, S, INT64_MAX); }),
                HasSubstr("element 3 is nan"));
    x[3] = 0.0f;
    x[7] = -INFINITY;
    EXPECT_THAT(error_of([&] { encode_add(acc.data(), x.data(), 10, 1.0, S, INT64_MAX); }),
                HasSubstr("element 7 is -inf"));
}

TEST(FixedPoint, RejectsBadParameters) {
    const float x = 1.0f;
    int64_t acc = 0;
    float out = 0.0f;
    EXPECT_THAT(error_of([&] { encode_add(&acc, &x, 1, 1.0, 63, INT64_MAX); }),
                HasSubstr("scale_bits"));
    EXPECT_THAT(error_of([&] { encode_add(&acc, &x, 1, NAN, S, INT64_MAX); }), HasSubstr("weight"));
    EXPECT_THAT(error_of([&] { decode(&out, &acc, 1, -1); }), HasSubstr("scale_bits"));
    EXPECT_THAT(error_of([] { fixed_point_max_abs(0); }), HasSubstr("at least one"));
}

TEST(AssignClients, GreedyByTrainRowsDescending) {
    // Order 1(40), 2(30), 3(20), 0(10), 4(5): 1->r0, 2->r1, 3->r1 (50), 0->r0 (50),
    // 4 -> tie 50/50 -> lowest rank r0.
    EXPECT_EQ(assign_clients({10, 40, 30, 20, 5}, 2), (std::vector<int>{0, 0, 1, 1, 0}));
}

TEST(AssignClients, TiesGoToLowerIdAndLowerRank) {
    EXPECT_EQ(assign_clients({7, 7, 7, 7, 7}, 2), (std::vector<int>{0, 1, 0, 1, 0}));
    EXPECT_EQ(assign_clients({3, 5, 3, 5}, 3), (std::vector<int>{2, 0, 2, 1}));
    EXPECT_EQ(assign_clients({4, 1, 2}, 1), (std::vector<int>{0, 0, 0}));
}

TEST(AssignClients, EveryRankGetsAClientEvenWithEmptyClients) {
    EXPECT_EQ(assign_clients({0, 0, 0}, 3), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(assign_clients({0, 9, 0, 0}, 3), (std::vector<int>{1, 0, 2, 1}));
}

TEST(AssignClients, LoadsDifferByAtMostTheLargestClient) {
    std::vector<int64_t> rows(100);
    auto s = KeyedRng(3, RngPurpose::synth).stream(0);
    for (auto& r : rows) r = 1 + int64_t(s.below(5000));
    for (int R : {1, 2, 3, 7, 16, 100}) {
        const auto rank_of = assign_clients(rows, R);
        EXPECT_EQ(assign_clients(rows, R), rank_of) << "deterministic";
        std::vector<int64_t> load(size_t(R), 0);
        for (size_t c = 0; c < rows.size(); ++c) load[size_t(rank_of[c])] += rows[c];
        const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
        EXPECT_GT(*lo, 0) << R << " ranks";
        EXPECT_LE(*hi - *lo, *std::max_element(rows.begin(), rows.end())) << R << " ranks";
    }
}

TEST(AssignClients, MoreRanksThanClientsIsAClearError) {
    const auto msg = error_of([] { assign_clients({10, 20, 30}, 5); });
    EXPECT_THAT(msg, HasSubstr("5 ranks but only 3 clients"));
    EXPECT_THAT(msg, HasSubstr("every rank needs at least one client"));
    EXPECT_THAT(msg, HasSubstr("data.shards_per_domain"));
    EXPECT_THAT(error_of([] { assign_clients({1, -2}, 1); }), HasSubstr("client 1"));
    EXPECT_THAT(error_of([] { assign_clients({1, 2}, 0); }), HasSubstr("at least one rank"));
}

TEST(SampleClients, IsAPureFunctionOfSeedAndRound) {
    const auto a = sample_clients(42, 5, 50, 0.2);
    EXPECT_EQ(sample_clients(42, 5, 50, 0.2), a);
    // Another round or seed draws another subset (a coincidence has probability ~1e-10).
    EXPECT_NE(sample_clients(42, 6, 50, 0.2), a);
    EXPECT_NE(sample_clients(43, 5, 50, 0.2), a);
    // Rounds beyond 2^32 use the high word of the counter too.
    EXPECT_NE(sample_clients(42, 5 + (int64_t(1) << 32), 50, 0.2), a);
}

TEST(SampleClients, SelectsCeilFractionSortedDistinctIds) {
    for (auto [n, f, m] : {std::tuple<int64_t, double, int64_t>{50, 0.2, 10},
                           {37, 0.1, 4},
                           {100, 0.55, 55},
                           {10, 0.3, 3},
                           {7, 0.01, 1},
                           {1, 0.5, 1}}) {
        const auto ids = sample_clients(1, 0, n, f);
        ASSERT_EQ(int64_t(ids.size()), m) << n << " clients, fraction " << f;
        EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
        EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end()) << "distinct";
        EXPECT_GE(ids.front(), 0);
        EXPECT_LT(ids.back(), n);
    }
    std::vector<int64_t> all(13);
    std::iota(all.begin(), all.end(), int64_t(0));
    EXPECT_EQ(sample_clients(9, 3, 13, 1.0), all);
}

TEST(SampleClients, EveryClientIsEquallyLikely) {
    // 3 of 10 over 4000 rounds: each client expected 1200 times, sd ~29.
    std::vector<int> hits(10, 0);
    for (int64_t r = 0; r < 4000; ++r)
        for (int64_t c : sample_clients(2024, r, 10, 0.3)) ++hits[size_t(c)];
    for (int c = 0; c < 10; ++c) EXPECT_NEAR(hits[size_t(c)], 1200, 150) << "client " << c;
}

TEST(SampleClients, RejectsBadArguments) {
    EXPECT_THAT(error_of([] { sample_clients(1, 0, 10, 0.0); }), HasSubstr("(0, 1]"));
    EXPECT_THAT(error_of([] { sample_clients(1, 0, 10, 1.5); }), HasSubstr("(0, 1]"));
    EXPECT_THAT(error_of([] { sample_clients(1, 0, 0, 0.5); }), HasSubstr("at least one"));
    EXPECT_THAT(error_of([] { sample_clients(1, -1, 10, 0.5); }), HasSubstr("round"));
}

TEST(SerialComm, IsTheOneRankIdentity) {
    SerialComm comm;
    EXPECT_EQ(comm.rank(), 0);
    EXPECT_EQ(comm.size(), 1);
    std::vector<int64_t> v = {3, -4, 5};
    comm.allreduce_sum(v.data(), 3);
    comm.allreduce_max(v.data(), 3);
    EXPECT_EQ(v, (std::vector<int64_t>{3, -4, 5}));
    double d = 2.5;
    comm.broadcast(&d, sizeof d, 0);
    EXPECT_EQ(d, 2.5);
    EXPECT_THROW(comm.broadcast(&d, sizeof d, 1), Error);
    comm.barrier();
    EXPECT_TRUE(comm.any(true));
    EXPECT_FALSE(comm.any(false));
}
