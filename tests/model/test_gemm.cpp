// gemm_f32 (model/gemm.hpp), pfcr's own float GEMM: against a double-precision product with the
// classical rounding bound, for every operand layout (plain / transposed strides), edge tiles in
// every dimension, K and N past one block, accumulate on and off, K = 0; and bitwise the same on
// another thread and on repeated calls (the "same bits for any thread count" premise); bitwise the
// same whatever the operands' storage (row-major A is read in place, transposed A packed) and
// with B packed once beforehand (gemm_pack_b + gemm_f32_packed).
// Skipped on builds without AVX-512, where callers use Eigen and gemm_f32 does not exist.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "model/gemm.hpp"

using namespace pfcr;

namespace {

std::vector<float> randn_f(size_t n, uint32_t stream) {
    auto s = KeyedRng(2020, RngPurpose::synth).stream(stream, 0x6E33);
    std::vector<float> v(n);
    for (auto& x : v) x = float(s.normal());
    return v;
}

struct Case {
    int64_t M, N, K;
    bool ta, tb; // operand stored transposed
    bool accumulate;
};

// Stores a as (M,K) or, transposed, (K,M); b as (K,N) or (N,K); returns the operand views.
GemmOperand view(const std::vector<float>& v, int64_t rows, int64_t cols, bool transposed) {
    return transposed ? GemmOperand{v.data(), 1, rows} : GemmOperand{v.data(), cols, 1};
}

void check_case(const Case& t) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    const auto a = randn_f(size_t(t.M * t.K), 1), b = randn_f(size_t(t.K * t.N), 2);
    const auto c0 = randn_f(size_t(t.M * t.N), 3);
    const GemmOperand A = view(a, t.M, t.K, t.ta), B = view(b, t.K, t.N, t.tb);
    // A leading dimension wider than N: the kernel must not touch the columns past N.
    const int64_t ldc = t.N + 3;
    std::vector<float> c(size_t(t.M * ldc), 7.0f);
    for (int64_t i = 0; i < t.M; ++i)
        for (int64_t j = 0; j < t.N; ++j) c[size_t(i * ldc + j)] = c0[size_t(i * t.N + j)];
    if constexpr (kHaveFastGemm) gemm_f32(c.data(), ldc, A, B, t.M, t.N, t.K, t.accumulate);

    // Error bound of a length-K sum of products in float (FMA or not), plus the final add to c:
    // |c - exact| <= gamma_{K+2} (sum_k |a_ik b_kj| + |c0_ij|), gamma_n = n u / (1 - n u).
    const double u = 0x1.0p-24, n = double(t.K + 2), gamma = n * u / (1 - n * u);
    for (int64_t i = 0; i < t.M; ++i)
        for (int64_t j = 0; j < t.N; ++j) {
            double exact = t.accumulate ? double(c0[size_t(i * t.N + j)]) : 0.0;
            double mag = std::fabs(exact);
            for (int64_t k = 0; k < t.K; ++k) {
                const double p = double(A.p[i * A.row_stride + k * A.col_stride]) *
                                 double(B.p[k * B.row_stride + j * B.col_stride]);
                exact += p;
                mag += std::fabs(p);
            }
            const double got = c[size_t(i * ldc + j)];
            ASSERT_LE(std::fabs(got - exact), gamma * mag)
                << "(" << i << "," << j << ") of M=" << t.M << " N=" << t.N << " K=" << t.K;
        }
    for (int64_t i = 0; i < t.M; ++i)
        for (int64_t j = t.N; j < ldc; ++j) ASSERT_EQ(c[size_t(i * ldc + j)], 7.0f);

    // B packed once beforehand: the same bits.
    std::vector<float> c_packed(size_t(t.M * ldc), 7.0f);
    for (int64_t i = 0; i < t.M; ++i)
        for (int64_t j = 0; j < t.N; ++j) c_packed[size_t(i * ldc + j)] = c0[size_t(i * t.N + j)];
    if constexpr (kHaveFastGemm) {
        float* packed = static_cast<float*>(
            std::aligned_alloc(64, size_t(gemm_packed_b_size(t.K, t.N) + 16) * sizeof(float)));
        gemm_pack_b(packed, B, t.K, t.N);
        gemm_f32_packed(c_packed.data(), ldc, A, packed, t.M, t.N, t.K, t.accumulate);
        std::free(packed);
    }
    ASSERT_EQ(std::memcmp(c.data(), c_packed.data(), c.size() * sizeof(float)), 0);
}

// The same logical product from A row-major (read in place by the kernel, with a leading
// dimension wider than K), A transposed (packed) and B either way: bitwise equal.
TEST(Gemm, SameBitsWhateverTheOperandStorage) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    const int64_t M = 149, N = 70, K = 403, lda = K + 5;
    const auto a = randn_f(size_t(M * lda), 6), b = randn_f(size_t(K * N), 7);
    std::vector<float> a_t(size_t(K * M)), b_t(size_t(N * K));
    for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k) a_t[size_t(k * M + i)] = a[size_t(i * lda + k)];
    for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) b_t[size_t(j * K + k)] = b[size_t(k * N + j)];
    const GemmOperand As[] = {{a.data(), lda, 1}, {a_t.data(), 1, M}};
    const GemmOperand Bs[] = {{b.data(), N, 1}, {b_t.data(), 1, K}};
    std::vector<float> first;
    for (const GemmOperand& A : As)
        for (const GemmOperand& B : Bs) {
            std::vector<float> c(size_t(M * N));
            if constexpr (kHaveFastGemm) gemm_f32(c.data(), N, A, B, M, N, K, false);
            if (first.empty()) first = c;
            EXPECT_EQ(std::memcmp(first.data(), c.data(), c.size() * sizeof(float)), 0)
                << "A row stride " << A.row_stride << ", B row stride " << B.row_stride;
        }
}

} // namespace

TEST(Gemm, MatchesDoubleWithinRoundingBoundForEveryLayout) {
    // Register tile 12 x 32, K block 384, row block 120, column block 512 (gemm.cpp): shapes
    // below, at, and one past each, and the training step's own shapes.
    const Case shapes[] = {
        {1, 1, 1, false, false, false},        {12, 32, 384, false, false, false},
        {13, 33, 385, false, false, false},    {121, 513, 7, false, false, false},
        {11, 31, 769, false, false, false},    {510, 300, 300, false, false, false},
        {128, 4386, 300, false, false, false}, {128, 300, 4386, false, false, false},
        {300, 300, 510, false, false, false},
    };
    for (const Case& s : shapes)
        for (int layout = 0; layout < 8; ++layout) {
            Case t = s;
            t.ta = layout & 1, t.tb = layout & 2, t.accumulate = layout & 4;
            SCOPED_TRACE(testing::Message()
                         << "ta " << t.ta << " tb " << t.tb << " accumulate " << t.accumulate);
            check_case(t);
            if (testing::Test::HasFatalFailure() || testing::Test::IsSkipped()) return;
        }
}

TEST(Gemm, EmptyKZeroesOrKeepsTheOutput) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    std::vector<float> c(6, 5.0f);
    const float dummy = 1.0f;
    if constexpr (kHaveFastGemm) {
        gemm_f32(c.data(), 3, {&dummy, 0, 1}, {&dummy, 3, 1}, 2, 3, 0, true);
        for (float x : c) EXPECT_EQ(x, 5.0f);
        gemm_f32(c.data(), 3, {&dummy, 0, 1}, {&dummy, 3, 1}, 2, 3, 0, false);
        for (float x : c) EXPECT_EQ(x, 0.0f);
    }
}

TEST(Gemm, SameBitsOnAnotherThreadAndOnRepeat) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    const int64_t M = 131, N = 777, K = 401;
    const auto a = randn_f(size_t(M * K), 4), b = randn_f(size_t(N * K), 5);
    const GemmOperand A{a.data(), K, 1}, B{b.data(), 1, K};
    std::vector<float> here(size_t(M * N)), again(size_t(M * N)), there(size_t(M * N));
    if constexpr (kHaveFastGemm) {
        gemm_f32(here.data(), N, A, B, M, N, K, false);
        gemm_f32(again.data(), N, A, B, M, N, K, false);
        std::thread([&] { gemm_f32(there.data(), N, A, B, M, N, K, false); }).join();
    }
    EXPECT_EQ(std::memcmp(here.data(), again.data(), here.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(here.data(), there.data(), here.size() * sizeof(float)), 0);
}

// A bias added by the stores (of the last K block) gives the bits of the product followed by a
// separate pass c[i][j] += bias[j]: full tiles, the 16-wide right edge (N = 300), the tile-copy
// edges (rows past 12, 17-31 columns), two K blocks, accumulate on and off, B packed or not.
TEST(Gemm, BiasInTheStoresEqualsASeparatePassBitForBit) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    for (const auto& [M, N, K] :
         {std::array<int64_t, 3>{37, 300, 300}, {13, 49, 385}, {24, 256, 300}, {5, 20, 7}}) {
        const auto a = randn_f(size_t(M * K), 8), b = randn_f(size_t(K * N), 9);
        const auto bias = randn_f(size_t(N), 10), c0 = randn_f(size_t(M * N), 11);
        const GemmOperand A{a.data(), K, 1}, B{b.data(), N, 1};
        AlignedBuffer<float> packed(gemm_packed_b_size(K, N)); // 64-byte aligned, as required
        if constexpr (kHaveFastGemm) gemm_pack_b(packed.data(), B, K, N);
        for (bool accumulate : {false, true})
            for (bool pre_packed : {false, true}) {
                auto expect = c0, got = c0;
                if constexpr (kHaveFastGemm) {
                    gemm_f32(expect.data(), N, A, B, M, N, K, accumulate);
                    if (pre_packed)
                        gemm_f32_packed(got.data(), N, A, packed.data(), M, N, K, accumulate,
                                        bias.data());
                    else
                        gemm_f32(got.data(), N, A, B, M, N, K, accumulate, bias.data());
                }
                for (int64_t i = 0; i < M; ++i)
                    for (int64_t j = 0; j < N; ++j) expect[size_t(i * N + j)] += bias[size_t(j)];
                EXPECT_EQ(std::memcmp(expect.data(), got.data(), got.size() * sizeof(float)), 0)
                    << M << "x" << N << "x" << K << " accumulate " << accumulate << " packed "
                    << pre_packed;
            }
    }
}

// gemm_record_calls (bench_train's "step's own products"): while a sink is installed every call
// appends its shape, A's and B's storage (B's as given to the gemm_pack_b that packed it) and the
// accumulate flag; nothing before installing or after removing it; a B packed before installing
// is counted as unknown, and the count restarts with each install.
TEST(Gemm, RecordsEachCallsShapeAndStorageWhileASinkIsInstalled) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    const int64_t M = 13, N = 40, K = 17;
    const auto a = randn_f(size_t(M * K), 12), b = randn_f(size_t(K * N), 13);
    std::vector<float> c(size_t(M * N));
    AlignedBuffer<float> packed(gemm_packed_b_size(K, N)), packed_t(gemm_packed_b_size(K, N));
    std::vector<GemmCall> calls;
    int64_t unknown_first = -1, unknown_second = -1;
    if constexpr (kHaveFastGemm) {
        gemm_f32(c.data(), N, {a.data(), K, 1}, {b.data(), N, 1}, M, N, K, false); // not recorded
        // Packed before recording: its storage is unknown to the recorder (counted).
        gemm_pack_b(packed_t.data(), {b.data(), 1, K}, K, N);
        gemm_record_calls(&calls);
        gemm_f32_packed(c.data(), N, {a.data(), K, 1}, packed_t.data(), M, N, K, false);
        unknown_first = gemm_record_calls(&calls);
        calls.clear();
        gemm_f32(c.data(), N, {a.data(), K, 1}, {b.data(), N, 1}, M, N, K, false);
        gemm_f32(c.data(), N, {a.data(), 1, M}, {b.data(), 1, K}, M, N, K, true);
        gemm_pack_b(packed.data(), {b.data(), N, 1}, K, N);
        gemm_pack_b(packed_t.data(), {b.data(), 1, K}, K, N);
        gemm_f32_packed(c.data(), N, {a.data(), K, 1}, packed_t.data(), M, N, K, true);
        gemm_f32_packed(c.data(), N, {a.data(), 1, M}, packed.data(), M - 1, N, K, false);
        unknown_second = gemm_record_calls(nullptr);
        gemm_f32(c.data(), N, {a.data(), K, 1}, {b.data(), N, 1}, M, N, K, false); // not recorded
    }
    EXPECT_EQ(unknown_first, 1);  // the call on the B packed before recording
    EXPECT_EQ(unknown_second, 0); // both B packed while recording (the map restarts)
    ASSERT_EQ(calls.size(), 4u);
    const auto expect = [&](size_t i, int64_t m, bool ta, bool tb, bool acc) {
        EXPECT_EQ(calls[i].M, m) << i;
        EXPECT_EQ(calls[i].N, N) << i;
        EXPECT_EQ(calls[i].K, K) << i;
        EXPECT_EQ(calls[i].a_transposed, ta) << i;
        EXPECT_EQ(calls[i].b_transposed, tb) << i;
        EXPECT_EQ(calls[i].accumulate, acc) << i;
    };
    expect(0, M, false, false, false);
    expect(1, M, true, true, true);
    expect(2, M, false, true, true);
    expect(3, M - 1, true, false, false);
}

// A row's bits do not depend on the row panel it falls in nor on its place in it (what lets
// callers split M anywhere, e.g. the Trainer's candidate blocks and the 2-thread row halves):
// rows in the bottom-edge panel of an M-row call (M = 12q + r, packed and zero-padded), and
// rows of calls that start at row r0, equal the same rows of a 36-row call, for full,
// 17-31 and <= 16-column tiles, one and two K blocks, accumulate and bias, A row-major (full
// panels in place) and transposed.
TEST(Gemm, RowBitsDoNotDependOnWhereTheCallSplitsM) {
    if constexpr (!kHaveFastGemm) GTEST_SKIP() << "no AVX-512: callers use Eigen";
    const int64_t M0 = 36;
    for (const auto& [N, K] : {std::array<int64_t, 2>{64, 7}, {300, 300}, {49, 385}}) {
        const auto a = randn_f(size_t(M0 * K), 14), b = randn_f(size_t(K * N), 15);
        const auto bias = randn_f(size_t(N), 16), c0 = randn_f(size_t(M0 * N), 17);
        std::vector<float> at(size_t(K * M0)); // a transposed, (K, M0)
        for (int64_t i = 0; i < M0; ++i)
            for (int64_t k = 0; k < K; ++k) at[size_t(k * M0 + i)] = a[size_t(i * K + k)];
        for (bool transposed : {false, true})
            for (bool accumulate : {false, true}) {
                const GemmOperand A =
                    transposed ? GemmOperand{at.data(), 1, M0} : GemmOperand{a.data(), K, 1};
                const GemmOperand B{b.data(), N, 1};
                auto full = c0;
                if constexpr (kHaveFastGemm)
                    gemm_f32(full.data(), N, A, B, M0, N, K, accumulate, bias.data());
                for (int64_t M : {1, 4, 5, 8, 9, 11, 13, 16, 20, 23, 28, 32, 35}) {
                    auto got = c0;
                    if constexpr (kHaveFastGemm)
                        gemm_f32(got.data(), N, A, B, M, N, K, accumulate, bias.data());
                    EXPECT_EQ(std::memcmp(full.data(), got.data(), size_t(M * N) * sizeof(float)),
                              0)
                        << M << "x" << N << "x" << K << " transposed " << transposed
                        << " accumulate " << accumulate;
                    // Rows past M untouched.
                    EXPECT_EQ(std::memcmp(c0.data() + M * N, got.data() + M * N,
                                          size_t((M0 - M) * N) * sizeof(float)),
                              0)
                        << M;
                }
                // Calls starting at row r0: each row at another position within its panel.
                for (int64_t r0 : {1, 5, 8, 13, 30}) {
                    auto got = c0;
                    const GemmOperand Ar = transposed ? GemmOperand{at.data() + r0, 1, M0}
                                                      : GemmOperand{a.data() + r0 * K, K, 1};
                    if constexpr (kHaveFastGemm)
                        gemm_f32(got.data() + r0 * N, N, Ar, B, M0 - r0, N, K, accumulate,
                                 bias.data());
                    EXPECT_EQ(std::memcmp(full.data() + r0 * N, got.data() + r0 * N,
                                          size_t((M0 - r0) * N) * sizeof(float)),
                              0)
                        << "rows from " << r0 << ", " << N << "x" << K << " transposed "
                        << transposed << " accumulate " << accumulate;
                }
            }
    }
}
