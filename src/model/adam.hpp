// One step of torch.optim.Adam (docs/METHOD.md §5: betas 0.9/0.999, eps 1e-8, lr 1e-3) for a flat
// parameter buffer, following torch's CPU single-tensor path operation by operation.
// Not here: weight decay, amsgrad, maximize, clipping (PFCR uses none), the step counter
// (the caller keeps t) and moment storage (caller-owned buffers mirroring the parameters).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/phase_timer.hpp"

namespace pfcr {

// param (n), grad (n), m (n), v (n) updated in place; t = 1-based step number AFTER increment
// (the first call uses t = 1). m and v start at zero. Per element, in torch's order:
//   m = m*b1 + (1-b1) g                                exp_avg.mul_(beta1).add_(grad, 1 - beta1)
//   v = v*b2 + ((1-b2) g) g                            exp_avg_sq.mul_(beta2).addcmul_(g, g, 1-b2)
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps             (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
//   p = p + ((-lr/(1 - b1^t)) m) / denom               param.addcdiv_(m, denom, -step_size)
// Scalars derived from hyper-parameters are computed in double (Python floats) and then cast
// to T, as torch casts a Python scalar to the tensor's dtype. This is torch 1.x's order (the
// PFCR code's era and Debian's python3-torch 1.13, which makes the parity fixture); torch 2.x
// writes the first line as a lerp, equal up to rounding. Bit equality with torch is not
// claimed (its vectorised kernels may use FMA).
template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double b1, double b2,
               double eps, int64_t t) {
    const prof::PhaseScope timer(prof::Phase::adam);
    const double bias_correction1 = 1.0 - std::pow(b1, double(t));
    const double bias_correction2 = 1.0 - std::pow(b2, double(t));
    const T beta1 = T(b1);    // mul_ scalar
    const T w1 = T(1.0 - b1); // add_ alpha
    const T beta2 = T(b2);    // mul_ scalar
    const T w2 = T(1.0 - b2); // addcmul value
    const T bc2_sqrt = T(std::sqrt(bias_correction2));
    const T eps_t = T(eps);
    const T neg_step_size = T(-(lr / bias_correction1)); // addcdiv value
    for (int64_t i = 0; i < n; ++i) {
        const T g = grad[i];
        m[i] = m[i] * beta1 + w1 * g;
        v[i] = v[i] * beta2 + w2 * g * g;
        const T denom = std::sqrt(v[i]) / bc2_sqrt + eps_t;
        param[i] = param[i] + neg_step_size * m[i] / denom;
    }
}

} // namespace pfcr
