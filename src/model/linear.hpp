// Fully connected layer out = inp * weight^T + bias with PyTorch's [out, in] weight layout,
// forward and backward side by side. The fast path uses pfcr's own float GEMM (gemm.hpp) on
// AVX-512 builds and Eigen GEMMs on row-major maps otherwise (and for double); the `_reference`
// functions are plain loops kept for tests. Not here: activation, dropout, threads.
// Dimensions: N rows (packed tokens or batch rows), C input features, OC output features.
#pragma once

#include <cstdint>

#include "core/phase_timer.hpp"
#include "core/tensor.hpp"
#include "model/gemm.hpp"

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
    if (dbias) vec(dbias, OC) += dy.colwise().sum();
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
