// GELU activation in its exact erf form (RecBole / PyTorch `gelu`, not the tanh approximation),
// forward and backward side by side. Element-wise over n values; any shape works. erf and exp
// are vmath.hpp's vectorisable versions (float: |error of erf| <= 2e-7, as PyTorch's CPU GELU).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/phase_timer.hpp"
#include "model/vmath.hpp"

namespace pfcr {

// inp (n) -> out (n):  gelu(x) = 0.5 * x * (1 + erf(x / sqrt(2))) = x * Phi(x)
template <typename T> void gelu_forward(T* out, const T* inp, int64_t n) {
    const prof::PhaseScope timer(prof::Phase::gelu_fwd);
    const T inv_sqrt2 = T(0.70710678118654752440084436210485);
    for (int64_t i = 0; i < n; ++i) {
        const T x = inp[i];
        out[i] = T(0.5) * x * (T(1) + verf(x * inv_sqrt2));
    }
}

// inp (n), dout (n) -> dinp (n), ACCUMULATED (+=), or written without accumulate.
//   d gelu / dx = Phi(x) + x * phi(x),  Phi(x) = 0.5 * (1 + erf(x/sqrt(2))),
//   phi(x) = exp(-x^2/2) / sqrt(2*pi)   (product rule on x * Phi(x)).
template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, int64_t n, bool accumulate = true) {
    const prof::PhaseScope timer(prof::Phase::gelu_bwd);
    const T inv_sqrt2 = T(0.70710678118654752440084436210485);
    const T inv_sqrt_2pi = T(0.39894228040143267793994605993438);
    for (int64_t i = 0; i < n; ++i) {
        const T x = inp[i];
        const T cdf = T(0.5) * (T(1) + verf(x * inv_sqrt2));
        const T pdf = inv_sqrt_2pi * vexp(T(-0.5) * x * x);
        const T g = dout[i] * (cdf + x * pdf);
        dinp[i] = accumulate ? dinp[i] + g : g;
    }
}

} // namespace pfcr
