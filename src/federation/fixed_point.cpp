// Fixed-point encode/decode for exact cross-rank sums (see fixed_point.hpp for the bounds).
#include "federation/fixed_point.hpp"

#include <cmath>
#include <limits>

#include "core/error.hpp"

namespace pfcr {

namespace {

void check_scale_bits(int scale_bits) {
    // 62 keeps 2^scale_bits and the value 1.0 representable in int64 together.
    check(scale_bits >= 0 && scale_bits <= 62, "fixed point: scale_bits must be in [0, 62], got ",
          scale_bits);
}

} // namespace

double FixedPoint::resolution() const {
    return std::ldexp(1.0, -scale_bits);
}

int64_t fixed_point_max_abs(int64_t n_contributions) {
    check(n_contributions >= 1, "fixed_point_max_abs: need at least one contribution, got ",
          n_contributions);
    return std::numeric_limits<int64_t>::max() / n_contributions;
}

void encode_add(int64_t* acc, const float* x, int64_t n, double weight, int scale_bits,
                int64_t max_abs) {
    check_scale_bits(scale_bits);
    check(std::isfinite(weight), "fixed-point encode: weight is ", weight);
    check(max_abs >= 0, "fixed-point encode: max_abs must be >= 0, got ", max_abs);
    const double scale = std::ldexp(1.0, scale_bits); // exact: multiplying by it never rounds
    for (int64_t i = 0; i < n; ++i) {
        const float xi = x[i];
        if (!std::isfinite(xi)) fail("fixed-point encode: element ", i, " is ", xi);
        // One rounding in (x * weight), none in * scale, one in round(): a pure function of
        // (x, weight, scale_bits), whoever computes it.
        const double v = std::round(double(xi) * weight * scale);
        // Compare before converting: converting a double >= 2^63 to int64 is undefined.
        // |v| < 2^63 is exact in double; after it the int64 comparison is exact too.
        if (!(std::fabs(v) < 0x1p63) || std::llabs(int64_t(v)) > max_abs)
            fail("fixed-point encode: element ", i, ": weight * x = ", double(xi) * weight,
                 " exceeds the overflow bound |weight * x| <= ",
                 std::ldexp(double(max_abs), -scale_bits), " (scale_bits ", scale_bits,
                 ", max_abs ", max_abs, "); lower the fixed-point scale or clip the update");
        int64_t sum;
        if (__builtin_add_overflow(acc[i], int64_t(v), &sum))
            fail("fixed-point encode: element ", i,
                 ": int64 accumulator overflow (more "
                 "contributions than max_abs was computed for?)");
        acc[i] = sum;
    }
}

void decode(float* out, const int64_t* acc, int64_t n, int scale_bits) {
    check_scale_bits(scale_bits);
    const double inv_scale = std::ldexp(1.0, -scale_bits);
    for (int64_t i = 0; i < n; ++i) out[i] = float(double(acc[i]) * inv_scale);
}

void decode(double* out, const int64_t* acc, int64_t n, int scale_bits) {
    check_scale_bits(scale_bits);
    const double inv_scale = std::ldexp(1.0, -scale_bits);
    for (int64_t i = 0; i < n; ++i) out[i] = double(acc[i]) * inv_scale;
}

} // namespace pfcr
