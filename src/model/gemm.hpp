// pfcr's own single-precision GEMM for the training and scoring products, C (+)= A·B, with A and
// B given as strided views (so a transposed operand costs nothing but a different stride). It is
// a packed, blocked kernel in the BLIS style (docs/PERFORMANCE.md, "Own SGEMM"): a 12 x 32
// register tile of FMAs over packed panels of A (12 rows) and B (32 columns), K in blocks of
// 384, columns in blocks of 512 so that a packed B block stays in L2. On this project's
// benchmark CPU it runs the step's shapes 1.2-1.8x faster than Eigen's product.
//
// What it is not: threaded (callers split work; each call is sequential), nor used for double
// (gradient checks) or on CPUs without AVX-512 (kFastGemm<T> is false there and callers keep their
// Eigen product, the plain path). Results depend only on the shapes (fixed blocking, each output
// summed over k in order within a K block, then the blocks added in order), never on the thread
// that runs the call: bitwise the same for any thread count.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

namespace pfcr {

// Element (i, k) of a strided operand is p[i * row_stride + k * col_stride]: a row-major (m, k)
// matrix with leading dimension ld is {p, ld, 1}; its transpose is {p, 1, ld}.
struct GemmOperand {
    const float* p;
    int64_t row_stride;
    int64_t col_stride;
};

#if defined(__AVX512F__)
inline constexpr bool kHaveFastGemm = true;
#else
inline constexpr bool kHaveFastGemm = false;
#endif
// Whether callers with element type T use gemm_f32 (float on AVX-512 builds) or Eigen.
template <typename T> inline constexpr bool kFastGemm = kHaveFastGemm&& std::is_same_v<T, float>;

// c (M, N) row-major with leading dimension ldc: c = a·b, or c += a·b with accumulate, where a is
// (M, K) and b is (K, N); then, with bias (N floats), c[i][j] += bias[j], added in the stores
// of the last K block: the bits of a separate pass adding the bias after the product, without
// the pass. Packing buffers are per thread, allocated on a thread's first call. Only defined
// when kHaveFastGemm.
void gemm_f32(float* c, int64_t ldc, GemmOperand a, GemmOperand b, int64_t M, int64_t N, int64_t K,
              bool accumulate, const float* bias = nullptr);

// The same product with B packed once beforehand, for a right-hand side shared by many calls
// (a weight used by every chunk, the candidate matrix of every chunk's logits): gemm_pack_b
// writes b (K, N) into `packed` (64-byte aligned, gemm_packed_b_size(K, N) floats) in the
// layout gemm_f32 would build block by block, and gemm_f32_packed reads it. Same FMAs in the
// same order as gemm_f32 on b, so the same bits.
// gemm_pack_b_blocks packs only blocks [first, last) of the gemm_pack_b_block_count(K, N)
// independent blocks of that layout (for several threads to share one packing); gemm_pack_b is
// all of them.
int64_t gemm_packed_b_size(int64_t K, int64_t N);
void gemm_pack_b(float* packed, GemmOperand b, int64_t K, int64_t N);
int64_t gemm_pack_b_block_count(int64_t K, int64_t N);
void gemm_pack_b_blocks(float* packed, GemmOperand b, int64_t K, int64_t N, int64_t first,
                        int64_t last);
void gemm_f32_packed(float* c, int64_t ldc, GemmOperand a, const float* packed_b, int64_t M,
                     int64_t N, int64_t K, bool accumulate, const float* bias = nullptr);

// Benchmarks only (bench_train's yardstick "the step's own products"): while a sink is installed,
// every gemm_f32 / gemm_f32_packed call appends its shape to it (from any thread, under a lock),
// with B's storage as given to gemm_f32 or to the gemm_pack_b that packed it. Off by default:
// then a call pays one relaxed atomic load. Nothing is recorded on builds without the fast GEMM.
struct GemmCall {
    int64_t M, N, K;
    bool a_transposed; // A stored (K, M) (unit row stride); else (M, K) row-major
    bool b_transposed; // B stored (N, K) (unit row stride); else (K, N) row-major
    bool accumulate;
};
// Installs `sink` (nullptr stops recording). Returns how many packed calls since the previous
// install had a B packed before recording began, whose storage is unknown (recorded as (K, N)):
// a recording is exact when this is 0.
int64_t gemm_record_calls(std::vector<GemmCall>* sink);

} // namespace pfcr
