// gemm_f32 (gemm.hpp): packing, blocking and the 12 x 32 AVX-512 register kernel. Loop order,
// outermost first: K blocks (kKc) -> column blocks (kNc; pack B) -> row blocks (kMc; pack A) ->
// 12-row panels of A (in L1, reused over the block's columns) -> 32-column panels of B (from
// L2) -> kernel.
// Edge tiles (fewer than 12 rows or 32 columns) run the same kernel on zero-padded panels into a
// local tile and copy its valid part, so every output element sees the same sequence of FMAs.
#include "model/gemm.hpp"

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace pfcr {
namespace {

constexpr int64_t kMr = 12;  // rows of the register tile: 12 broadcasts x 2 vectors = 24 FMAs
constexpr int64_t kNr = 32;  // columns: two 16-lane vectors
constexpr int64_t kKc = 384; // K block: a 12 x 384 A panel (18 KiB) stays in L1
constexpr int64_t kMc = 120; // rows packed at a time (a multiple of kMr)
constexpr int64_t kNc = 512; // columns packed at a time: a 384 x 512 B block is 768 KiB (L2)

struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
};
using Aligned = std::unique_ptr<float[], FreeDeleter>;

Aligned aligned_floats(int64_t n) {
    void* p = std::aligned_alloc(64, size_t(n) * sizeof(float));
    if (!p) throw std::bad_alloc();
    return Aligned(static_cast<float*>(p));
}

// Per-thread packing buffers of fixed size (the blocking bounds them), made on first use.
struct Packs {
    Aligned a = aligned_floats(kKc * kMc);
    Aligned b = aligned_floats(kKc * kNc);
};
Packs& packs() {
    thread_local Packs p;
    return p;
}

// Rows [i0, i0 + mc) x k [k0, k0 + kc) of a into 12-row panels, k-major within a panel:
// dst[panel][k][r]. Rows past mc are zero.
void pack_a(float* dst, const GemmOperand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
    for (int64_t ip = 0; ip < mc; ip += kMr, dst += kc * kMr) {
        const int64_t m = std::min(kMr, mc - ip);
        if (m < kMr) std::fill(dst, dst + kc * kMr, 0.f);
        if (a.row_stride == 1) { // transposed storage: the panel's rows are contiguous per k
            for (int64_t k = 0; k < kc; ++k) {
                const float* src = a.p + (k0 + k) * a.col_stride + i0 + ip;
                std::memcpy(dst + k * kMr, src, size_t(m) * sizeof(float));
            }
        } else {
            for (int64_t r = 0; r < m; ++r) {
                const float* src = a.p + (i0 + ip + r) * a.row_stride + k0 * a.col_stride;
                for (int64_t k = 0; k < kc; ++k) dst[k * kMr + r] = src[k * a.col_stride];
            }
        }
    }
}

// k [k0, k0 + kc) x columns [j0, j0 + nc) of b into 32-column panels, k-major within a panel:
// dst[panel][k][c]. Columns past nc are zero.
void pack_b(float* dst, const GemmOperand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    for (int64_t jp = 0; jp < nc; jp += kNr, dst += kc * kNr) {
        const int64_t n = std::min(kNr, nc - jp);
        if (n < kNr) std::fill(dst, dst + kc * kNr, 0.f);
        if (b.col_stride == 1) { // row-major: each k row of the panel is contiguous
            for (int64_t k = 0; k < kc; ++k)
                std::memcpy(dst + k * kNr, b.p + (k0 + k) * b.row_stride + j0 + jp,
                            size_t(n) * sizeof(float));
        } else {
            for (int64_t c = 0; c < n; ++c) {
                const float* src = b.p + k0 * b.row_stride + (j0 + jp + c) * b.col_stride;
                for (int64_t k = 0; k < kc; ++k) dst[k * kNr + c] = src[k * b.row_stride];
            }
        }
    }
}

// The 12 x 32 tile at c (leading dimension ldc) = (c +) sum_k a[k][r] * b[k][0..31], the sum
// taken in k order in registers, then added to c once.
void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00,
           c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00, ca0 = c00, ca1 = c00,
           cb0 = c00, cb1 = c00;
    for (int64_t k = 0; k < kc; ++k, a += kMr, b += kNr) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#define PFCR_GEMM_ROW(r, x0, x1)                                                                   \
    {                                                                                              \
        const __m512 ar = _mm512_set1_ps(a[r]);                                                    \
        x0 = _mm512_fmadd_ps(ar, b0, x0);                                                          \
        x1 = _mm512_fmadd_ps(ar, b1, x1);                                                          \
    }
        PFCR_GEMM_ROW(0, c00, c01)
        PFCR_GEMM_ROW(1, c10, c11)
        PFCR_GEMM_ROW(2, c20, c21)
        PFCR_GEMM_ROW(3, c30, c31)
        PFCR_GEMM_ROW(4, c40, c41)
        PFCR_GEMM_ROW(5, c50, c51)
        PFCR_GEMM_ROW(6, c60, c61)
        PFCR_GEMM_ROW(7, c70, c71)
        PFCR_GEMM_ROW(8, c80, c81)
        PFCR_GEMM_ROW(9, c90, c91)
        PFCR_GEMM_ROW(10, ca0, ca1)
        PFCR_GEMM_ROW(11, cb0, cb1)
#undef PFCR_GEMM_ROW
    }
    const auto store = [&](int64_t r, __m512 x0, __m512 x1) {
        float* row = c + r * ldc;
        if (accumulate) {
            x0 = _mm512_add_ps(_mm512_loadu_ps(row), x0);
            x1 = _mm512_add_ps(_mm512_loadu_ps(row + 16), x1);
        }
        _mm512_storeu_ps(row, x0);
        _mm512_storeu_ps(row + 16, x1);
    };
    store(0, c00, c01), store(1, c10, c11), store(2, c20, c21), store(3, c30, c31);
    store(4, c40, c41), store(5, c50, c51), store(6, c60, c61), store(7, c70, c71);
    store(8, c80, c81), store(9, c90, c91), store(10, ca0, ca1), store(11, cb0, cb1);
}

} // namespace

void gemm_f32(float* c, int64_t ldc, GemmOperand a, GemmOperand b, int64_t M, int64_t N, int64_t K,
              bool accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.f);
        return;
    }
    Packs& ws = packs();
    alignas(64) float tile[kMr * kNr];
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kc = std::min(kKc, K - k0);
        const bool add = accumulate || k0 > 0;
        for (int64_t j0 = 0; j0 < N; j0 += kNc) {
            const int64_t nc = std::min(kNc, N - j0);
            pack_b(ws.b.get(), b, k0, kc, j0, nc);
            for (int64_t i0 = 0; i0 < M; i0 += kMc) {
                const int64_t mc = std::min(kMc, M - i0);
                pack_a(ws.a.get(), a, i0, mc, k0, kc);
                for (int64_t ip = 0; ip < mc; ip += kMr) {
                    const float* ap = ws.a.get() + (ip / kMr) * kc * kMr;
                    const int64_t m = std::min(kMr, mc - ip);
                    for (int64_t jp = 0; jp < nc; jp += kNr) {
                        const float* bp = ws.b.get() + (jp / kNr) * kc * kNr;
                        const int64_t n = std::min(kNr, nc - jp);
                        float* cp = c + (i0 + ip) * ldc + j0 + jp;
                        if (m == kMr && n == kNr) {
                            kernel(kc, ap, bp, cp, ldc, add);
                            continue;
                        }
                        kernel(kc, ap, bp, tile, kNr, false);
                        for (int64_t r = 0; r < m; ++r)
                            for (int64_t q = 0; q < n; ++q)
                                cp[r * ldc + q] =
                                    add ? cp[r * ldc + q] + tile[r * kNr + q] : tile[r * kNr + q];
                    }
                }
            }
        }
    }
}

} // namespace pfcr

#endif // __AVX512F__
