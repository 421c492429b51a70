// gemm_f32 (gemm.hpp): packing, blocking and the 12 x 32 AVX-512 register kernel. Loop order,
// outermost first: K blocks (kKc) -> column blocks (kNc; B packed here, or taken packed from
// gemm_pack_b) -> 12-row panels of A (read in place when A is row-major or transposed: the
// kernel broadcasts straight from it; packed only for edge panels and general strides) ->
// 32-column panels of B (from L2) -> kernel.
// Edge tiles run the same FMAs on zero-padded panels: fewer than 12 rows or 17-31 columns into a
// local tile whose valid part is copied out, at most 16 columns (N = 300's last 12) with a
// 16-wide kernel and masked stores. Every output element sees the same sequence of FMAs
// whichever path computes it.
#include "model/gemm.hpp"

#include <atomic>
#include <map>
#include <mutex>

namespace pfcr {
namespace {
std::atomic<std::vector<GemmCall>*> g_sink{nullptr};
std::mutex g_sink_mutex; // guards the sink's vector, the map and the count below
std::map<const float*, bool> g_packed_b_transposed; // packed buffer -> B's storage, while recording
int64_t g_unknown_packed_b = 0; // packed calls whose B was packed before recording began

// Storage of a strided (rows, cols) operand: transposed = unit row stride (stored (cols, rows)).
bool transposed(const GemmOperand& x) {
    return x.row_stride == 1 && x.col_stride != 1;
}

// Appends one call to the sink, if one is installed: B's storage from b, or (b null) from the
// gemm_pack_b call that packed `packed`. Unused on builds without the fast GEMM.
[[maybe_unused]] void record_call(const GemmOperand& a, const GemmOperand* b, const float* packed,
                                  int64_t M, int64_t N, int64_t K, bool accumulate) {
    if (!g_sink.load(std::memory_order_relaxed)) return;
    const std::lock_guard<std::mutex> lock(g_sink_mutex);
    std::vector<GemmCall>* sink = g_sink.load(std::memory_order_relaxed); // again, under the lock
    if (!sink) return;
    bool b_transposed = false;
    if (b) {
        b_transposed = transposed(*b);
    } else if (const auto it = g_packed_b_transposed.find(packed);
               it != g_packed_b_transposed.end()) {
        b_transposed = it->second;
    } else {
        ++g_unknown_packed_b;
    }
    sink->push_back({M, N, K, transposed(a), b_transposed, accumulate});
}

[[maybe_unused]] void record_packing(const float* packed, const GemmOperand& b) {
    if (!g_sink.load(std::memory_order_relaxed)) return;
    const std::lock_guard<std::mutex> lock(g_sink_mutex);
    if (g_sink.load(std::memory_order_relaxed)) g_packed_b_transposed[packed] = transposed(b);
}
} // namespace

int64_t gemm_record_calls(std::vector<GemmCall>* sink) {
    const std::lock_guard<std::mutex> lock(g_sink_mutex);
    const int64_t unknown = g_unknown_packed_b;
    g_unknown_packed_b = 0;
    g_packed_b_transposed.clear();
    g_sink.store(sink, std::memory_order_relaxed);
    return unknown;
}
} // namespace pfcr

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
    Aligned a = aligned_floats(kKc * kMr); // one 12-row panel (edges, general strides)
    Aligned b = aligned_floats(kKc * kNc);
};
Packs& packs() {
    thread_local Packs p;
    return p;
}

// Rows [i0, i0 + mc) x k [k0, k0 + kc) of a into 12-row panels, k-major within a panel:
// dst[panel][k][r]. Rows past mc are zero. Row-major A is read in place by the kernel instead
// (gemm_blocks), so this runs for transposed A (contiguous runs of up to 12 rows per k: masked
// vector copies), for edge panels and for general strides.
void pack_a(float* dst, const GemmOperand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
    for (int64_t ip = 0; ip < mc; ip += kMr, dst += kc * kMr) {
        const int64_t m = std::min(kMr, mc - ip);
        if (a.row_stride == 1) { // transposed storage: the panel's rows are contiguous per k
            const __mmask16 valid = __mmask16((1u << m) - 1);
            const float* src = a.p + k0 * a.col_stride + i0 + ip;
            // 12 lanes per k (zeros past m); the next k's store starts where these end.
            for (int64_t k = 0; k < kc; ++k, src += a.col_stride)
                _mm512_mask_storeu_ps(dst + k * kMr, 0x0fff, _mm512_maskz_loadu_ps(valid, src));
            continue;
        }
        if (m < kMr) std::fill(dst, dst + kc * kMr, 0.f);
        for (int64_t r = 0; r < m; ++r) {
            const float* src = a.p + (i0 + ip + r) * a.row_stride + k0 * a.col_stride;
            for (int64_t k = 0; k < kc; ++k) dst[k * kMr + r] = src[k * a.col_stride];
        }
    }
}

// r[0..15] (rows of a 16 x 16 block) transposed in registers: r[p] becomes column p.
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; ++j) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

// k [k0, k0 + kc) x columns [j0, j0 + nc) of b into 32-column panels, k-major within a panel:
// dst[panel][k][c]. Columns past nc are zero. A transposed b (each column contiguous in k: the
// per-step forms Wᵀ and Êᵀ) is copied 16 x 16 blocks at a time through a register transpose
// (a scalar copy with 128-byte strided stores took ~0.45 ms per step for Êᵀ alone).
void pack_b(float* dst, const GemmOperand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    for (int64_t jp = 0; jp < nc; jp += kNr, dst += kc * kNr) {
        const int64_t n = std::min(kNr, nc - jp);
        if (b.row_stride == 1 && n == kNr) { // transposed storage, a full panel
            const float* src = b.p + k0 + (j0 + jp) * b.col_stride;
            int64_t k = 0;
            for (; k + 16 <= kc; k += 16)
                for (int64_t h = 0; h < kNr; h += 16) {
                    __m512 r[16];
                    for (int64_t c = 0; c < 16; ++c)
                        r[c] = _mm512_loadu_ps(src + (h + c) * b.col_stride + k);
                    transpose16(r);
                    for (int64_t p = 0; p < 16; ++p) _mm512_store_ps(dst + (k + p) * kNr + h, r[p]);
                }
            for (; k < kc; ++k)
                for (int64_t c = 0; c < kNr; ++c) dst[k * kNr + c] = src[c * b.col_stride + k];
            continue;
        }
        if (b.col_stride == 1) { // row-major: each k row of the panel is contiguous
            const __mmask16 lo = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
            const __mmask16 hi = __mmask16(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
            const float* src = b.p + k0 * b.row_stride + j0 + jp;
            for (int64_t k = 0; k < kc; ++k, src += b.row_stride) {
                _mm512_store_ps(dst + k * kNr, _mm512_maskz_loadu_ps(lo, src));
                _mm512_store_ps(dst + k * kNr + 16, _mm512_maskz_loadu_ps(hi, src + 16));
            }
            continue;
        }
        if (n < kNr) std::fill(dst, dst + kc * kNr, 0.f);
        for (int64_t c = 0; c < n; ++c) {
            const float* src = b.p + k0 * b.row_stride + (j0 + jp + c) * b.col_stride;
            for (int64_t k = 0; k < kc; ++k) dst[k * kNr + c] = src[k * b.row_stride];
        }
    }
}

// The 12 x 32 tile at c (leading dimension ldc) = (c +) sum_k a(r, k) * b[k][0..31], the sum
// taken in k order in registers, then added to c once. A is read with its 12 rows adjacent at
// each k (kKMajor: a(r, k) = a[k * lda + r]: a packed panel, lda = 12, or a transposed matrix
// in place) or straight from 12 rows of a row-major matrix (a(r, k) = a[r * lda + k]): the same
// FMAs in the same order, so the same bits either way.
// bias (32 floats) or null: added to every row after the sum (and after c, with accumulate).
template <bool kKMajor>
void kernel(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
            bool accumulate, const float* bias) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00,
           c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00, ca0 = c00, ca1 = c00,
           cb0 = c00, cb1 = c00;
    // Row r of A at k: k-major a[r] (a advances by lda per k); row-major rows r = 3q + s at
    // a3[q][s * lda] (four row pointers, a advancing by 1 per k, offsets 0, lda, 2 lda).
    const int64_t step = kKMajor ? lda : 1, s1 = kKMajor ? 1 : lda, s2 = kKMajor ? 2 : 2 * lda;
    const int64_t q3 = kKMajor ? 3 : 3 * lda;
    const float* a0 = a;
    const float* a1 = a + q3;
    const float* a2 = a + 2 * q3;
    const float* a3 = a + 3 * q3;
    for (int64_t k = 0; k < kc; ++k, a0 += step, a1 += step, a2 += step, a3 += step, b += kNr) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#define PFCR_GEMM_ROW(src, x0, x1)                                                                 \
    {                                                                                              \
        const __m512 ar = _mm512_set1_ps(src);                                                     \
        x0 = _mm512_fmadd_ps(ar, b0, x0);                                                          \
        x1 = _mm512_fmadd_ps(ar, b1, x1);                                                          \
    }
        PFCR_GEMM_ROW(a0[0], c00, c01)
        PFCR_GEMM_ROW(a0[s1], c10, c11)
        PFCR_GEMM_ROW(a0[s2], c20, c21)
        PFCR_GEMM_ROW(a1[0], c30, c31)
        PFCR_GEMM_ROW(a1[s1], c40, c41)
        PFCR_GEMM_ROW(a1[s2], c50, c51)
        PFCR_GEMM_ROW(a2[0], c60, c61)
        PFCR_GEMM_ROW(a2[s1], c70, c71)
        PFCR_GEMM_ROW(a2[s2], c80, c81)
        PFCR_GEMM_ROW(a3[0], c90, c91)
        PFCR_GEMM_ROW(a3[s1], ca0, ca1)
        PFCR_GEMM_ROW(a3[s2], cb0, cb1)
#undef PFCR_GEMM_ROW
    }
    const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
    const auto store = [&](int64_t r, __m512 x0, __m512 x1) {
        float* row = c + r * ldc;
        if (accumulate) {
            x0 = _mm512_add_ps(_mm512_loadu_ps(row), x0);
            x1 = _mm512_add_ps(_mm512_loadu_ps(row + 16), x1);
        }
        if (bias) {
            x0 = _mm512_add_ps(x0, bias0);
            x1 = _mm512_add_ps(x1, bias1);
        }
        _mm512_storeu_ps(row, x0);
        _mm512_storeu_ps(row + 16, x1);
    };
    store(0, c00, c01), store(1, c10, c11), store(2, c20, c21), store(3, c30, c31);
    store(4, c40, c41), store(5, c50, c51), store(6, c60, c61), store(7, c70, c71);
    store(8, c80, c81), store(9, c90, c91), store(10, ca0, ca1), store(11, cb0, cb1);
}

// The same tile for a panel's first n <= 16 columns (the right edge of N = 300 = 9 x 32 + 12:
// half the FMAs of a full tile): c (+)= sum_k a(r, k) * b[k][0..n-1], b still a 32-wide panel.
// Each output element gets exactly the FMAs kernel() would give it, so the same bits.
template <bool kKMajor>
void kernel16(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
              int64_t m, int64_t n, bool accumulate, const float* bias) {
    __m512 acc[kMr];
    for (auto& x : acc) x = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k, b += kNr) {
        const __m512 b0 = _mm512_load_ps(b);
        for (int64_t r = 0; r < kMr; ++r) {
            const float ar = kKMajor ? a[k * lda + r] : a[r * lda + k];
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(ar), b0, acc[r]);
        }
    }
    const __mmask16 valid = __mmask16((1u << n) - 1);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(valid, bias) : _mm512_setzero_ps();
    for (int64_t r = 0; r < m; ++r) {
        float* row = c + r * ldc;
        __m512 x = acc[r];
        if (accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(valid, row), x);
        if (bias) x = _mm512_add_ps(x, bias0);
        _mm512_mask_storeu_ps(row, valid, x);
    }
}

// Columns rounded up to whole 32-column panels: the width of one K block of a packed B.
int64_t padded_n(int64_t N) {
    return (N + kNr - 1) / kNr * kNr;
}

// C (+)= A·B (+ bias on every row) with B either packed here block by block (packed ==
// nullptr) or taken from a gemm_pack_b layout. The loop nest and every FMA are the same in both
// cases; the bias is added by the last K block's stores.
void gemm_blocks(float* c, int64_t ldc, const GemmOperand& a, const GemmOperand* b,
                 const float* packed, int64_t M, int64_t N, int64_t K, bool accumulate,
                 const float* bias) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
                c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + (bias ? bias[j] : 0.f);
        return;
    }
    Packs& ws = packs();
    alignas(64) float tile[kMr * kNr];
    // Full 12-row panels of a row-major A (unit column stride) or a transposed one (unit row
    // stride) are read in place by the kernel; only edge panels and general strides are packed.
    const bool rows_in_place = a.col_stride == 1,
               k_major_in_place = !rows_in_place && a.row_stride == 1;
    const int64_t n_pad = padded_n(N);
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kc = std::min(kKc, K - k0);
        const bool add = accumulate || k0 > 0;
        const bool last_k = k0 + kc == K; // this block's stores add the bias
        for (int64_t j0 = 0; j0 < N; j0 += kNc) {
            const int64_t nc = std::min(kNc, N - j0);
            const float* b_block = packed ? packed + k0 * n_pad + j0 * kc : ws.b.get();
            if (!packed) pack_b(ws.b.get(), *b, k0, kc, j0, nc);
            for (int64_t ip = 0; ip < M; ip += kMr) {
                const int64_t m = std::min(kMr, M - ip);
                // Where the kernel reads this panel of A, and how.
                const float* ap;
                int64_t lda;
                bool k_major;
                if (m == kMr && rows_in_place) {
                    ap = a.p + ip * a.row_stride + k0, lda = a.row_stride, k_major = false;
                } else if (m == kMr && k_major_in_place) {
                    ap = a.p + k0 * a.col_stride + ip, lda = a.col_stride, k_major = true;
                } else {
                    pack_a(ws.a.get(), a, ip, m, k0, kc);
                    ap = ws.a.get(), lda = kMr, k_major = true;
                }
                for (int64_t jp = 0; jp < nc; jp += kNr) {
                    const float* bp = b_block + (jp / kNr) * kc * kNr;
                    const int64_t n = std::min(kNr, nc - jp);
                    float* cp = c + ip * ldc + j0 + jp;
                    const float* bias_p = bias && last_k ? bias + j0 + jp : nullptr;
                    if (n <= 16) { // the narrow right edge: a 16-wide tile, masked stores
                        if (k_major)
                            kernel16<true>(kc, ap, lda, bp, cp, ldc, m, n, add, bias_p);
                        else
                            kernel16<false>(kc, ap, lda, bp, cp, ldc, m, n, add, bias_p);
                        continue;
                    }
                    float* out = m == kMr && n == kNr ? cp : tile;
                    const int64_t ldo = out == cp ? ldc : kNr;
                    if (k_major)
                        kernel<true>(kc, ap, lda, bp, out, ldo, out == cp && add,
                                     out == cp ? bias_p : nullptr);
                    else
                        kernel<false>(kc, ap, lda, bp, out, ldo, out == cp && add,
                                      out == cp ? bias_p : nullptr);
                    if (out == cp) continue;
                    for (int64_t r = 0; r < m; ++r)
                        for (int64_t q = 0; q < n; ++q) {
                            float x = add ? cp[r * ldc + q] + tile[r * kNr + q] : tile[r * kNr + q];
                            if (bias_p) x += bias_p[q];
                            cp[r * ldc + q] = x;
                        }
                }
            }
        }
    }
}

} // namespace

void gemm_f32(float* c, int64_t ldc, GemmOperand a, GemmOperand b, int64_t M, int64_t N, int64_t K,
              bool accumulate, const float* bias) {
    record_call(a, &b, nullptr, M, N, K, accumulate);
    gemm_blocks(c, ldc, a, &b, nullptr, M, N, K, accumulate, bias);
}

int64_t gemm_packed_b_size(int64_t K, int64_t N) {
    return std::max<int64_t>(K, 0) * padded_n(std::max<int64_t>(N, 0));
}

int64_t gemm_pack_b_block_count(int64_t K, int64_t N) {
    if (K <= 0 || N <= 0) return 0;
    return ((K + kKc - 1) / kKc) * ((N + kNc - 1) / kNc);
}

void gemm_pack_b_blocks(float* packed, GemmOperand b, int64_t K, int64_t N, int64_t first,
                        int64_t last) {
    record_packing(packed, b);
    const int64_t n_pad = padded_n(N), column_blocks = (N + kNc - 1) / kNc;
    for (int64_t block = first; block < last; ++block) {
        const int64_t k0 = (block / column_blocks) * kKc, j0 = (block % column_blocks) * kNc;
        const int64_t kc = std::min(kKc, K - k0);
        pack_b(packed + k0 * n_pad + j0 * kc, b, k0, kc, j0, std::min(kNc, N - j0));
    }
}

void gemm_pack_b(float* packed, GemmOperand b, int64_t K, int64_t N) {
    gemm_pack_b_blocks(packed, b, K, N, 0, gemm_pack_b_block_count(K, N));
}

void gemm_f32_packed(float* c, int64_t ldc, GemmOperand a, const float* packed_b, int64_t M,
                     int64_t N, int64_t K, bool accumulate, const float* bias) {
    record_call(a, nullptr, packed_b, M, N, K, accumulate);
    gemm_blocks(c, ldc, a, nullptr, packed_b, M, N, K, accumulate, bias);
}

} // namespace pfcr

#endif // __AVX512F__
