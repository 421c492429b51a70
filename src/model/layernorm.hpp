// LayerNorm over the last dimension (PyTorch semantics: biased variance, eps inside the sqrt),
// forward and backward side by side. Mean and variance are computed in two passes in T (no
// E[x^2] - E[x]^2 cancellation), which matters with PFCR's layer_norm_eps = 1e-12; every row sum
// is a 16-lane sum in a fixed order (vmath.hpp's lane_sum), so it runs as vector instructions.
// Not here: any allocation or parallelism — callers own buffers and split rows.
// Dimensions: N rows (packed tokens or any row count), C normalised features.
#pragma once

#include <cassert>
#include <cmath>
#include <cstdint>

#include "core/phase_timer.hpp"
#include "model/vmath.hpp"

namespace pfcr {

// inp (N,C), weight (C), bias (C) -> out (N,C), mean (N), rstd (N)
//   out[n,i] = (inp[n,i] - mean[n]) * rstd[n] * weight[i] + bias[i]
//   mean[n] = sum_i inp[n,i] / C,   rstd[n] = 1 / sqrt(sum_i (inp[n,i]-mean[n])^2 / C + eps)
// mean and rstd are stored for the backward pass.
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int64_t N, int64_t C, T eps) {
    const prof::PhaseScope timer(prof::Phase::layernorm_fwd);
    assert(C > 0);
    for (int64_t n = 0; n < N; ++n) {
        const T* x = inp + n * C;
        T* y = out + n * C;
        // pass 1: mean; pass 2: biased variance of the centred values (lane sums, vmath.hpp)
        const T m = lane_sum<T>(x, C) / T(C);
        const T v = lane_sum_of<T>(C, [x, m](int64_t i) { return (x[i] - m) * (x[i] - m); }) / T(C);
        const T s = T(1) / std::sqrt(v + eps);
        for (int64_t i = 0; i < C; ++i) y[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

// dout (N,C), inp (N,C), weight (C), mean (N), rstd (N) -> dinp (N,C), dweight (C), dbias (C)
// All three gradients are ACCUMULATED (+=), dinp only with accumulate (otherwise it is written,
// so a caller need not zero it first); dweight and dbias may be nullptr (frozen). With norm =
// (x - mean) * rstd and dnorm = dout * weight, the exact gradient of the normalisation is
//   dx = rstd * (dnorm - mean_i(dnorm) - norm * mean_i(dnorm * norm))
// (the two subtracted terms come from the dependence of mean and rstd on every x_i).
template <typename T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int64_t N, int64_t C,
                        bool accumulate = true) {
    const prof::PhaseScope timer(prof::Phase::layernorm_bwd);
    for (int64_t n = 0; n < N; ++n) {
        const T* x = inp + n * C;
        const T* dy = dout + n * C;
        T* dx = dinp + n * C;
        const T m = mean[n], s = rstd[n];
        // Row reductions: mean(dnorm) and mean(dnorm * norm).
        const T dnorm_mean = lane_sum_of<T>(C, [&](int64_t i) { return weight[i] * dy[i]; }) / T(C);
        const T dnorm_norm_mean =
            lane_sum_of<T>(C, [&](int64_t i) { return weight[i] * dy[i] * ((x[i] - m) * s); }) /
            T(C);
        // Separate loops (the same operations per element) so that each runs as vector code.
        if (dbias)
            for (int64_t i = 0; i < C; ++i) dbias[i] += dy[i]; // out = ... + bias
        if (dweight)                                           // out = norm * weight + ...
            for (int64_t i = 0; i < C; ++i) dweight[i] += ((x[i] - m) * s) * dy[i];
        for (int64_t i = 0; i < C; ++i) {
            const T norm = (x[i] - m) * s;
            const T dnorm = weight[i] * dy[i];
            const T g = s * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
            dx[i] = accumulate ? dx[i] + g : g;
        }
    }
}

} // namespace pfcr
