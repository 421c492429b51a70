// Branch-free float exp and erf that the compiler turns into vector instructions when they are
// called in a plain loop (glibc's expf/erff are scalar calls: the loss's softmax over every
// candidate and GELU spent more time in them than in their GEMMs), and fixed-order lane-wise
// reductions. Pure functions of their inputs: the same bits in any loop, any thread, any chunk.
// For double (the gradient checks) the functions are std::exp / std::erf. Accuracy (float):
// vexp ≤ 2 ulp relative for x in [-87, 88] (Cephes' expf polynomial), 0 below; verf absolute
// error ≤ 3e-7 (Abramowitz & Stegun 7.1.26, the form PyTorch's vectorised CPU GELU uses, and a
// series near 0, where it is also within 4 ulp relative).
// Tested against std::exp / std::erf in tests/model/test_layers.cpp.
// Not here: anything with state; reductions whose order is not stated.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace pfcr {

// e^x. Float: x = n ln2 + r with |r| <= ln2/2 (n = round(x log2 e)), e^r by a degree-7
// polynomial, times 2^n built in the exponent bits. Results below x = -87.33 are 0 (e^x would be
// subnormal there; the callers' arguments are >= -30), above 88.7 clamped to e^88.7.
template <typename T> inline T vexp(T x) {
    if constexpr (!std::is_same_v<T, float>) {
        return std::exp(x);
    } else {
        constexpr float lo = -87.33654f, hi = 88.72283f;
        const float xc = std::min(std::max(x, lo), hi);
        const float n = std::floor(std::fma(xc, 1.44269504088896341f, 0.5f));
        // r = x - n ln2 in two steps (Cody–Waite: ln2 = c1 + c2, c1 exact in few bits).
        float r = std::fma(n, -0.693359375f, xc);
        r = std::fma(n, 2.12194440e-4f, r);
        const float r2 = r * r;
        float p = 1.9875691500e-4f;
        p = std::fma(p, r, 1.3981999507e-3f);
        p = std::fma(p, r, 8.3334519073e-3f);
        p = std::fma(p, r, 4.1665795894e-2f);
        p = std::fma(p, r, 1.6666665459e-1f);
        p = std::fma(p, r, 5.0000001201e-1f);
        p = std::fma(p, r2, r) + 1.0f;
        // 2^n: n in [-126, 128]; 2^128 is split as 2 * 2^127 so the exponent stays normal.
        const int32_t ni = int32_t(n);
        const int32_t n1 = ni > 127 ? 127 : ni;
        const float s1 = std::bit_cast<float>(int32_t((n1 + 127) << 23));
        const float s2 = ni > 127 ? 2.0f : 1.0f;
        const float y = p * s1 * s2;
        return x < lo ? 0.0f : y;
    }
}

// erf(x). Float, |x| >= 0.5: 1 - t (a1 + t (a2 + ...)) e^{-x^2}, t = 1 / (1 + p |x|), sign
// restored; |x| < 0.5: odd Maclaurin series.
template <typename T> inline T verf(T x) {
    if constexpr (!std::is_same_v<T, float>) {
        return std::erf(x);
    } else {
        const float ax = std::fabs(x);
        const float t = 1.0f / std::fma(0.3275911f, ax, 1.0f);
        float q = 1.061405429f;
        q = std::fma(q, t, -1.453152027f);
        q = std::fma(q, t, 1.421413741f);
        q = std::fma(q, t, -0.284496736f);
        q = std::fma(q, t, 0.254829592f);
        const float y = 1.0f - q * t * vexp(-ax * ax);
        // |x| < 0.5: the Maclaurin series to x^11 (truncation < 3e-8 relative), which keeps the
        // error relative where the formula above would lose digits to cancellation near 0.
        const float x2 = x * x;
        float s = -8.548327023450852e-4f;
        s = std::fma(s, x2, 5.223977625442188e-3f);
        s = std::fma(s, x2, -2.6866170645131252e-2f);
        s = std::fma(s, x2, 1.1283791670955126e-1f);
        s = std::fma(s, x2, -3.7612638903183754e-1f);
        s = std::fma(s, x2, 1.1283791670955126f);
        return ax < 0.5f ? x * s : std::copysign(y, x);
    }
}

// Prefetch rows [r0, r1) of x (rows of C elements) into cache ahead of use, for kernels that
// walk short runs of rows in an order the hardware prefetcher does not follow.
template <typename T> inline void prefetch_rows(const T* x, int64_t r0, int64_t r1, int64_t C) {
    const T* p = x + r0 * C;
    for (int64_t i = 0, n = (r1 - r0) * C; i < n; i += 64 / int64_t(sizeof(T)))
        __builtin_prefetch(p + i, 0, 3);
}

// Lane-wise reductions over n contiguous values: kLanes interleaved partials (the loop runs as
// vector instructions), a sequential tail, then a fixed pairwise combination. The order is
// fixed by n alone.
inline constexpr int kLanes = 16;

// The fixed pairwise combination of kLanes partials: acc[l] += acc[l + w] for w = 8, 4, 2, 1, then
// acc[0]. With AVX-512 on register halves: GCC's code for the loops re-read the partials from the
// stack as scalars (~25 % of a LayerNorm row). The zero-masked shuffles avoid GCC 12's
// -Wuninitialized on the plain ones (they start from _mm512_undefined_ps); lanes past the ones
// combined are never read.
#if defined(__AVX512F__)
// lane_combine16: that combination of the 16 lanes of a register (lane l = acc[l]);
// lane_combine: of an array of partials.
inline float lane_combine16(__m512 a) {
    const __mmask16 all = 0xffff;
    const __m512 s8 = _mm512_add_ps(a, _mm512_maskz_shuffle_f32x4(all, a, a, 0xEE));
    const __m512 s4 = _mm512_add_ps(s8, _mm512_maskz_shuffle_f32x4(all, s8, s8, 0x01));
    const __m512 s2 = _mm512_add_ps(s4, _mm512_maskz_shuffle_ps(all, s4, s4, 0xEE));
    const __m512 s1 = _mm512_add_ps(s2, _mm512_maskz_shuffle_ps(all, s2, s2, 0x55));
    return _mm512_cvtss_f32(s1);
}
#endif
template <typename T> inline T lane_combine(T acc[kLanes]) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float> && kLanes == 16)
        return lane_combine16(_mm512_loadu_ps(acc));
#endif
    for (int w = kLanes / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0];
}

// Σ_i f(i) for i in [0, n), f returning T (e.g. a product of two rows' elements).
template <typename T, typename F> inline T lane_sum_of(int64_t n, F&& f) {
    T acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += f(i + l);
    T tail = 0;
    for (; i < n; ++i) tail += f(i);
    return lane_combine(acc) + tail;
}

template <typename T> inline T lane_sum(const T* x, int64_t n) {
    return lane_sum_of<T>(n, [x](int64_t i) { return x[i]; });
}

// max over f(i), i in [0, n), n >= 1 (exact in any order but for NaN and the sign of a zero
// maximum; lanes only for speed).
template <typename T, typename F> inline T lane_max_of(int64_t n, F&& f) {
    T acc[kLanes];
    for (int l = 0; l < kLanes; ++l) acc[l] = -std::numeric_limits<T>::infinity();
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) {
            const T x = f(i + l);
            acc[l] = acc[l] > x ? acc[l] : x;
        }
    T m = -std::numeric_limits<T>::infinity();
    for (; i < n; ++i) {
        const T x = f(i);
        m = m > x ? m : x;
    }
    for (int l = 0; l < kLanes; ++l) m = m > acc[l] ? m : acc[l];
    return m;
}

template <typename T> inline T lane_max(const T* x, int64_t n) {
    return lane_max_of<T>(n, [x](int64_t i) { return x[i]; });
}

// x[i] *= s for i in [0, n), n >= 1, returning the max of the products: lane_max_of over the
// scaled values, as one vector pass with AVX-512 (float). GCC left the loop with the store in it
// scalar (a third of the softmax's time over 4,387 candidates). The products are the same; the
// max is the same value (a max is exact in any order; only the sign of a zero maximum may
// differ, and x - (+0) equals x - (-0) for every x a caller subtracts it from, up to the sign
// of an exact zero, which exp maps to 1 either way; with a NaN in the row the order decides
// which value comes back, but the softmax's sum and every probability are NaN either way).
template <typename T> inline T scale_and_max(T* x, int64_t n, T s) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        const __mmask16 all = 0xffff; // zero-masked forms: see lane_combine
        const __m512 vs = _mm512_set1_ps(s);
        __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
            _mm512_storeu_ps(x + i, y);
            m = _mm512_maskz_max_ps(all, m, y);
        }
        if (i < n) {
            const __mmask16 k = __mmask16((1u << (n - i)) - 1);
            const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs);
            _mm512_mask_storeu_ps(x + i, k, y);
            m = _mm512_mask_max_ps(m, k, m, y);
        }
        m = _mm512_maskz_max_ps(all, m, _mm512_maskz_shuffle_f32x4(all, m, m, 0xEE));
        m = _mm512_maskz_max_ps(all, m, _mm512_maskz_shuffle_f32x4(all, m, m, 0x01));
        m = _mm512_maskz_max_ps(all, m, _mm512_maskz_shuffle_ps(all, m, m, 0xEE));
        m = _mm512_maskz_max_ps(all, m, _mm512_maskz_shuffle_ps(all, m, m, 0x55));
        return _mm512_cvtss_f32(m);
    }
#endif
    return lane_max_of<T>(n, [x, s](int64_t i) { return x[i] *= s; });
}

#if defined(__AVX512F__)
// A tile of w <= 64 float columns of a row, held as four 16-lane vectors (kernels that keep a
// 64-column tile of a row in four registers, with a shorter last tile). Full tiles use plain
// loads and stores; only a short tile uses masked ones (mask[q]: the lanes of columns
// 16q .. 16q+15 below w): on Zen 5 a masked load costs more than a plain one even with every
// lane set (~10 % of the code-mean gather, ~30 % of the dropout pass). The flag is loop-
// invariant, so the compiler unswitches the kernels' loops on it.
struct Tile64 {
    bool full;
    __mmask16 mask[4];
    explicit Tile64(int64_t w) : full(w >= 64) {
        for (int q = 0; q < 4; ++q) {
            const int64_t n = std::clamp<int64_t>(w - 16 * q, 0, 16);
            mask[q] = __mmask16(n == 16 ? 0xffff : (1u << n) - 1);
        }
    }
    __m512 load(int q, const float* p) const {
        return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask[q], p);
    }
    void store(int q, float* p, __m512 v) const {
        if (full)
            _mm512_storeu_ps(p, v);
        else
            _mm512_mask_storeu_ps(p, mask[q], v);
    }
};
#endif

} // namespace pfcr
