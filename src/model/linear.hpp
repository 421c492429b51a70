// Fully connected layer out = inp * weight^T + bias with PyTorch's [out, in] weight layout,
// forward and backward side by side. The fast path uses pfcr's own float GEMM (gemm.hpp) on
// AVX-512 builds and Eigen GEMMs on row-major maps otherwise (and for double); the `_reference`
// functions are plain loops kept for tests. Not here: activation, dropout, threads.
// Dimensions: N rows (packed tokens or batch rows), C input features, OC output features.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/phase_timer.hpp"
#include "core/tensor.hpp"
#include "model/gemm.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace pfcr {

// inp (N,C), weight (OC,C), bias (OC) or nullptr -> out (N,OC)
//   out[n,o] = sum_c inp[n,c] * weight[o,c] + bias[o]
template <typename T>
void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int64_t N, int64_t C,
                    int64_t OC) {
    const prof::PhaseScope timer(prof::Phase::gemm_linear_fwd);
    auto y = mat(out, N, OC);
    if constexpr (kFastGemm<T>) {
        gemm_f32(out, OC, {inp, C, 1}, {weight, 1, C}, N, OC, C, false, bias); // bias in the stores
        return;
    }
    y.noalias() = mat(inp, N, C) * mat(weight, OC, C).transpose();
    if (bias) y.rowwise() += vec(bias, OC);
}

// Per-step forms of a weight (OC,C) for the products every chunk of a step repeats, made once
// per step by prepare_weight (the Trainer): `fwd` for out = inp·Wᵀ, `bwd` for dinp = dout·W.
// On fast-GEMM builds both are gemm_pack_b layouts (gemm.hpp: the chunks skip packing the
// weight); otherwise fwd is Wᵀ row-major (C,OC), which Eigen multiplies up to ~40 % faster
// than x·Wᵀ on the encoder's shapes (docs/PERFORMANCE.md), and bwd is unused (null).
template <typename T> struct PreparedWeight {
    const T* fwd = nullptr;
    const T* bwd = nullptr;
};

// Sizes of the two forms of an (OC,C) weight (floats; multiples of 16, so forms laid out one
// after another in a 64-byte aligned buffer stay aligned).
template <typename T> int64_t prepared_fwd_size(int64_t OC, int64_t C) {
    if constexpr (kFastGemm<T>) return gemm_packed_b_size(C, OC);
    return (C * OC + 15) / 16 * 16;
}
template <typename T> int64_t prepared_bwd_size(int64_t OC, int64_t C) {
    if constexpr (kFastGemm<T>) return gemm_packed_b_size(OC, C);
    return 0;
}

// weight (OC,C) -> fwd (prepared_fwd_size) and bwd (prepared_bwd_size; may be null when 0).
template <typename T> void prepare_weight(T* fwd, T* bwd, const T* weight, int64_t OC, int64_t C) {
    if constexpr (kFastGemm<T>) {
        gemm_pack_b(fwd, {weight, 1, C}, C, OC); // Wᵀ as the (C, OC) right operand
        gemm_pack_b(bwd, {weight, C, 1}, OC, C); // W as the (OC, C) right operand
    } else {
        (void)bwd;
        mat(fwd, C, OC).noalias() = mat(weight, OC, C).transpose();
    }
}

// linear_forward with the weight's prepared forward form (same result up to the GEMM's
// blocking: the fast path gives exactly linear_forward's bits).
template <typename T>
void linear_forward_prepared(T* out, const T* inp, const T* fwd, const T* bias, int64_t N,
                             int64_t C, int64_t OC) {
    const prof::PhaseScope timer(prof::Phase::gemm_linear_fwd);
    auto y = mat(out, N, OC);
    if constexpr (kFastGemm<T>) {
        gemm_f32_packed(out, OC, {inp, C, 1}, fwd, N, OC, C, false, bias); // bias in the stores
        return;
    }
    y.noalias() = mat(inp, N, C) * mat(fwd, C, OC);
    if (bias) y.rowwise() += vec(bias, OC);
}

namespace detail {
#if defined(__AVX512F__)
// db (OC) += column sums of dy (R, OC), one pass over the rows with the sums in registers, in
// exactly the order Eigen 3.4 evaluates vec(db) += mat(dy).colwise().sum() (the form this
// replaces, which took ~1 ms per step in its strided scalar tail): the columns before db's first
// 64-byte boundary and after its last whole 16-column packet are summed row by row in order
// (Eigen's scalar redux), the packets of 16 columns in between as p = row 0, then
// p += (row i + row i+1) + (row i+2 + row i+3) for i = 1, 5, ... below (R-1) & ~3, then row by
// row (Eigen's packetwise_redux_impl); each sum is then added to db. Tested against Eigen bit
// for bit (test_layers), so an Eigen upgrade that changes its order shows up there.
inline void add_column_sums(float* db, const float* dy, int64_t R, int64_t OC) {
    const auto addr = reinterpret_cast<uintptr_t>(db);
    const int64_t head = addr % 4 ? OC : std::min<int64_t>(OC, int64_t((64 - addr % 64) % 64 / 4));
    const int64_t packets = (OC - head) / 16, tail0 = head + 16 * packets;
    // Scalar-order columns: lanes of a masked vector, each summed row by row.
    const auto sequential = [&](int64_t j0, int64_t n) {
        if (n <= 0) return;
        const __mmask16 m = __mmask16((1u << n) - 1);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < R; ++i) {
            const __m512 x = _mm512_maskz_loadu_ps(m, dy + i * OC + j0);
            acc = i == 0 ? x : _mm512_add_ps(acc, x);
        }
        _mm512_mask_storeu_ps(db + j0, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, db + j0), acc));
    };
    sequential(0, head);
    sequential(tail0, OC - tail0);
    const int64_t size4 = (R - 1) & ~int64_t(3);
    constexpr int64_t kBlock = 8; // packets per pass over the rows (8 accumulators)
    for (int64_t q0 = 0; q0 < packets; q0 += kBlock) {
        const int64_t nq = std::min(kBlock, packets - q0);
        const float* col = dy + head + 16 * q0;
        __m512 p[kBlock];
        for (int64_t q = 0; q < kBlock; ++q)
            p[q] = q < nq && R > 0 ? _mm512_loadu_ps(col + 16 * q) : _mm512_setzero_ps();
        int64_t i = 1;
        for (; i < size4; i += 4) {
            const float* r = col + i * OC;
            for (int64_t q = 0; q < nq; ++q) {
                const __m512 a =
                    _mm512_add_ps(_mm512_loadu_ps(r + 16 * q), _mm512_loadu_ps(r + OC + 16 * q));
                const __m512 b = _mm512_add_ps(_mm512_loadu_ps(r + 2 * OC + 16 * q),
                                               _mm512_loadu_ps(r + 3 * OC + 16 * q));
                p[q] = _mm512_add_ps(p[q], _mm512_add_ps(a, b));
            }
        }
        for (; i < R; ++i)
            for (int64_t q = 0; q < nq; ++q)
                p[q] = _mm512_add_ps(p[q], _mm512_loadu_ps(col + i * OC + 16 * q));
        float* out = db + head + 16 * q0;
        for (int64_t q = 0; q < nq; ++q)
            _mm512_storeu_ps(out + 16 * q, _mm512_add_ps(_mm512_loadu_ps(out + 16 * q), p[q]));
    }
}
#endif
} // namespace detail

// dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C), dweight (OC,C), dbias (OC), each
// or nullptr. All gradients are ACCUMULATED (+=), dinp only with accumulate_dinp (otherwise it
// is written: no zeroing beforehand); a nullptr skips that gradient (dinp for the first layer,
// dbias for a bias-free layer, dweight/dbias of a frozen layer). weight_bwd, optional: the
// weight's prepared backward form (PreparedWeight::bwd; same bits as without it). inp_packed,
// optional (fast-GEMM builds): inp packed as the (N, C) right operand of dweight's product
// (gemm_pack_b), for an input that several layers share (the attention's q, k and v read the
// same rows); same bits as without it.
template <typename T>
void linear_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int64_t N, int64_t C, int64_t OC, const T* weight_bwd = nullptr,
                     bool accumulate_dinp = true, const T* inp_packed = nullptr) {
    const prof::PhaseScope timer(prof::Phase::gemm_linear_bwd);
    const auto dy = mat(dout, N, OC);
    // out = inp * W^T  =>  d inp = dout * W   (N,OC)x(OC,C)
    if (dinp) {
        if constexpr (kFastGemm<T>) {
            if (weight_bwd)
                gemm_f32_packed(dinp, C, {dout, OC, 1}, weight_bwd, N, C, OC, accumulate_dinp);
            else
                gemm_f32(dinp, C, {dout, OC, 1}, {weight, C, 1}, N, C, OC, accumulate_dinp);
        } else {
            (void)weight_bwd;
            if (accumulate_dinp)
                mat(dinp, N, C).noalias() += dy * mat(weight, OC, C);
            else
                mat(dinp, N, C).noalias() = dy * mat(weight, OC, C);
        }
    }
    // out = inp * W^T  =>  d W = dout^T * inp (OC,N)x(N,C)
    if (dweight) {
        if constexpr (kFastGemm<T>) {
            if (inp_packed)
                gemm_f32_packed(dweight, C, {dout, 1, OC}, inp_packed, OC, C, N, true);
            else
                gemm_f32(dweight, C, {dout, 1, OC}, {inp, C, 1}, OC, C, N, true);
        } else {
            (void)inp_packed;
            mat(dweight, OC, C).noalias() += dy.transpose() * mat(inp, N, C);
        }
    }
    // out = ... + bias (broadcast over rows)  =>  d bias = column sums of dout
    if (!dbias) return;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        detail::add_column_sums(dbias, dout, N, OC);
        return;
    }
#endif
    vec(dbias, OC) += dy.colwise().sum();
}

// Plain-loop versions of the two functions above (same signatures and semantics).
template <typename T>
void linear_forward_reference(T* out, const T* inp, const T* weight, const T* bias, int64_t N,
                              int64_t C, int64_t OC) {
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o) {
            T acc = bias ? bias[o] : T(0);
            for (int64_t c = 0; c < C; ++c) acc += inp[n * C + c] * weight[o * C + c];
            out[n * OC + o] = acc;
        }
}

template <typename T>
void linear_backward_reference(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                               const T* weight, int64_t N, int64_t C, int64_t OC) {
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o) {
            const T g = dout[n * OC + o];
            if (dbias) dbias[o] += g;
            for (int64_t c = 0; c < C; ++c) {
                if (dinp) dinp[n * C + c] += g * weight[o * C + c];
                if (dweight) dweight[o * C + c] += g * inp[n * C + c];
            }
        }
}

} // namespace pfcr
