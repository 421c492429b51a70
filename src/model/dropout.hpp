// Inverted dropout (PyTorch semantics: kept values scaled by 1/(1-p)) with a counter-based mask,
// forward and backward side by side. The keep decision of an element is a pure function of
// (rng key, a, b, c, element index e), so it never depends on batch chunking, threads or call
// order — provided the CALLER picks element indices that are properties of the element itself.
// Not here: choosing the counters (see "Intended counters" below) or training/eval switching.
//
// Intended counters (documented contract for the encoder):
//   rng = KeyedRng(seed, RngPurpose::dropout), a = client id, b = local step,
//   c = dropout site id (layer * 4 + site), element index e = (batch_row * T_max + t) * C + ch
//   with batch_row the row's index in the FULL batch, t its true position, ch the channel
//   (dropout_row_base_packed builds row_base for packed sequences). For attention
//   probabilities use e.g. ((batch_row * NH + h) * T_max + i) * T_max + j.
// Draw scheme: u = rng.block(a, b, c, e / 4)[e % 4] (32 bits); the element is DROPPED iff
// u < round(p * 2^32), so P(keep) = 1 - p up to 2^-33. Requires e < 2^34 (block index is 32
// bits); asserted.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/phase_timer.hpp"
#include "core/rng.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace pfcr {

// Drop threshold on a 32-bit uniform: round(p * 2^32), in [0, 2^32].
inline uint64_t dropout_threshold(double p) {
    assert(p >= 0.0 && p <= 1.0);
    return uint64_t(std::llround(std::ldexp(p, 32)));
}

// Scale applied to kept values: 1/(1-p); 0 for p = 1 (everything dropped, as PyTorch).
template <typename T> T dropout_scale(double p) {
    return p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
}

// Keep decision for element e of stream (a, b, c). Pure function; see the file header.
inline bool dropout_keep(const KeyedRng& rng, uint32_t a, uint32_t b, uint32_t c, uint64_t e,
                         double p) {
    assert((e >> 34) == 0);
    const uint32_t u = rng.block(a, b, c, uint32_t(e >> 2))[e & 3];
    return uint64_t(u) >= dropout_threshold(p);
}

namespace detail {
// out[j] = (u[j] >= threshold ? inp[j] * scale : 0) (+ residual[j]), mask[j] = keep, j < len.
// GCC leaves the plain loop scalar (the uint8_t mask may alias anything), so AVX-512 builds
// compare 16 draws at a time; the same operations per element, so the same bits.
template <typename T>
void dropout_apply(T* out, uint8_t* mask, const T* inp, const T* residual, const uint32_t* u,
                   int64_t len, uint32_t threshold, T scale) {
    int64_t j = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if constexpr (std::is_same_v<T, float>) {
        const __m512i thr = _mm512_set1_epi32(int32_t(threshold));
        const __m512 sc = _mm512_set1_ps(scale);
        const __m128i one = _mm_set1_epi8(1);
        for (; j + 16 <= len; j += 16) {
            const __mmask16 keep = _mm512_cmpge_epu32_mask(_mm512_loadu_si512(u + j), thr);
            __m512 v = _mm512_maskz_mul_ps(keep, _mm512_loadu_ps(inp + j), sc);
            if (residual) v = _mm512_add_ps(v, _mm512_loadu_ps(residual + j));
            _mm512_storeu_ps(out + j, v);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(mask + j), _mm_maskz_mov_epi8(keep, one));
        }
        if (j < len) { // the last len % 16 elements, masked
            const __mmask16 in = __mmask16((1u << (len - j)) - 1);
            const __mmask16 keep =
                _mm512_mask_cmpge_epu32_mask(in, _mm512_maskz_loadu_epi32(in, u + j), thr);
            __m512 v = _mm512_maskz_mul_ps(keep, _mm512_maskz_loadu_ps(in, inp + j), sc);
            if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(in, residual + j));
            _mm512_mask_storeu_ps(out + j, in, v);
            _mm_mask_storeu_epi8(mask + j, in, _mm_maskz_mov_epi8(keep, one));
        }
        return;
    }
#endif
    for (; j < len; ++j) {
        const bool keep = u[j] >= threshold;
        mask[j] = keep ? 1 : 0;
        const T kept = keep ? inp[j] * scale : T(0);
        out[j] = residual ? kept + residual[j] : kept;
    }
}
} // namespace detail

// inp (rows,C), row_base (rows) or nullptr -> out (rows,C), mask (rows,C) in {0,1}
//   element (r, col) has index e = row_base[r] + col  (row_base == nullptr: e = r*C + col)
//   mask = dropout_keep(rng, a, b, c, e, p);  out = mask ? inp / (1-p) : 0
// p = 0 is the identity (mask all ones, no draws). out may alias inp. With `residual` (rows,C)
// the same pass also adds it: out = (mask ? inp / (1-p) : 0) + residual, the bits of a separate
// add (a dropped element gives residual + 0 = residual exactly).
template <typename T>
void dropout_forward(T* out, uint8_t* mask, const T* inp, int64_t rows, int64_t C, double p,
                     const KeyedRng& rng, uint32_t a, uint32_t b, uint32_t c,
                     const uint64_t* row_base, const T* residual = nullptr) {
    const prof::PhaseScope timer(prof::Phase::dropout_fwd);
    const int64_t n = rows * C;
    if (p == 0.0) {
        for (int64_t i = 0; i < n; ++i) {
            out[i] = residual ? inp[i] + residual[i] : inp[i];
            mask[i] = 1;
        }
        return;
    }
    const uint64_t threshold = dropout_threshold(p);
    const T scale = dropout_scale<T>(p);
    if (threshold > UINT32_MAX) { // p = 1: every 32-bit draw is below 2^32, nothing is kept
        for (int64_t i = 0; i < n; ++i) {
            out[i] = residual ? T(0) + residual[i] : T(0);
            mask[i] = 0;
        }
        return;
    }
    const uint32_t threshold32 = uint32_t(threshold);
    // The draws of up to kSegment consecutive elements at a time, from consecutive Philox
    // blocks generated together (KeyedRng::blocks); same decisions as dropout_keep(e). 320
    // covers a whole row of the paper's C = 300 in one call (as 256 + 44 the second call was a
    // small partial set of blocks on its own: ~10 % more time per row measured alone).
    constexpr int64_t kSegment = 320;
    uint32_t words[kSegment + 8];
    for (int64_t r = 0; r < rows; ++r) {
        const uint64_t base = row_base ? row_base[r] : uint64_t(r) * uint64_t(C);
        assert(((base + uint64_t(C)) >> 34) == 0);
        for (int64_t col0 = 0; col0 < C; col0 += kSegment) {
            const int64_t len = std::min(kSegment, C - col0);
            const uint64_t e0 = base + uint64_t(col0);
            const uint64_t first_block = e0 >> 2, last_block = (e0 + uint64_t(len) - 1) >> 2;
            rng.blocks(a, b, c, uint32_t(first_block), int64_t(last_block - first_block + 1),
                       words);
            const uint32_t* u = words + (e0 & 3);
            const int64_t i0 = r * C + col0;
            detail::dropout_apply(out + i0, mask + i0, inp + i0, residual ? residual + i0 : nullptr,
                                  u, len, threshold32, scale);
        }
    }
}

// dout (n), mask (n) -> dinp (n), ACCUMULATED (+=), or written without accumulate:
//   out = mask * inp / (1-p)  =>  dinp = mask * dout / (1-p).
template <typename T>
void dropout_backward(T* dinp, const T* dout, const uint8_t* mask, int64_t n, double p,
                      bool accumulate = true) {
    const prof::PhaseScope timer(prof::Phase::dropout_bwd);
    const T scale = dropout_scale<T>(p);
    if (accumulate) {
        for (int64_t i = 0; i < n; ++i)
            if (mask[i]) dinp[i] += dout[i] * scale;
    } else {
        for (int64_t i = 0; i < n; ++i) dinp[i] = mask[i] ? dout[i] * scale : T(0);
    }
}

// row_base for packed sequences: off (B+1) are the chunk's offsets, its row b is row
// first_batch_row + b of the full batch, and token row off[b] + t gets
//   row_base = ((first_batch_row + b) * T_max + t) * C.
// row_base has off[B] - off[0] entries (indexed from off[0]).
template <typename Off>
void dropout_row_base_packed(uint64_t* row_base, const Off* off, int64_t B, int64_t first_batch_row,
                             int64_t T_max, int64_t C) {
    for (int64_t b = 0; b < B; ++b) {
        assert(off[b + 1] - off[b] <= T_max);
        for (Off row = off[b]; row < off[b + 1]; ++row) {
            const uint64_t t = uint64_t(row - off[b]);
            row_base[row - off[0]] = ((uint64_t(first_batch_row + b) * T_max + t) * C);
        }
    }
}

} // namespace pfcr
