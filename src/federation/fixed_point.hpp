// Exact, order-free summation of float contributions in 64-bit fixed point (docs/ARCHITECTURE.md
// §4). Each client encodes weight * x into integers and adds them to an int64 accumulator; ranks
// combine accumulators with an integer MPI_SUM. Integer addition is associative, so the decoded
// sum is bitwise the same for any order, grouping or rank layout. Not a privacy mechanism and
// not a compressor: it only makes the sum exact.
//
// Scale.  value v is stored as round(v * 2^scale_bits) (round half away from zero, llround).
//   Resolution 2^-scale_bits: 2.3e-10 at the default scale_bits = 32, far below float's
//   relative precision (2^-24 ~ 6e-8) for any value of magnitude > 1e-3, so the encoding error
//   of a gradient entry of that size is below its own float rounding error. Values below the
//   resolution round to 0 (an absolute, not relative, error of at most 2^-(scale_bits+1)).
// Overflow.  With at most K contributions per element, each encoded |round(v * 2^s)| <=
//   max_abs = floor((2^63 - 1) / K) = fixed_point_max_abs(K), so any partial sum of them, in any
//   order, has magnitude <= K * max_abs <= 2^63 - 1: the int64 sum cannot overflow on any rank
//   or inside MPI. At scale_bits = 32 this allows |weight * x| < 2^31 / K (e.g. < 5.8e7 for
//   K = 37 clients); encode_add throws instead of wrapping when a value is larger.
// Decoding.  acc * 2^-scale_bits is computed in double and rounded to the output type; this is
//   a pure function of the integer, hence also order-free.
#pragma once

#include <cstdint>

namespace pfcr {

inline constexpr int default_fixed_point_scale_bits = 32;

// The config-facing parameter (federation.fixed_point_scale_bits or similar).
struct FixedPoint {
    int scale_bits = default_fixed_point_scale_bits;
    // Smallest representable step, 2^-scale_bits.
    double resolution() const;
};

// floor((2^63 - 1) / n_contributions): the largest per-contribution encoded magnitude for
// which the sum of n_contributions values cannot overflow int64. n_contributions >= 1.
int64_t fixed_point_max_abs(int64_t n_contributions);

// acc[i] += llround(double(x[i]) * weight * 2^scale_bits) for i in [0, n). Throws pfcr::Error
// naming the element index if x[i] is NaN/Inf or the encoded magnitude exceeds max_abs, and
// leaves acc[0..i) updated, acc[i..n) untouched (callers abandon the round on error anyway).
// weight must be finite; scale_bits in [0, 62]; max_abs >= 0.
void encode_add(int64_t* acc, const float* x, int64_t n, double weight, int scale_bits,
                int64_t max_abs);

// out[i] = acc[i] * 2^-scale_bits, rounded to float (via double) / to double.
void decode(float* out, const int64_t* acc, int64_t n, int scale_bits);
void decode(double* out, const int64_t* acc, int64_t n, int scale_bits);

} // namespace pfcr
