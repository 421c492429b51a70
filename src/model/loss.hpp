// PFCR's training loss (docs/METHOD.md §5): cosine logits z[b][j] = <ŝ_b, ê_j> / tau over ALL
// items of the domain (candidate row 0 = padding item, a class like any other in training),
// softmax cross-entropy, batch mean. Also the evaluation scores, which are the cosines
// <ŝ_b, ê_j> WITHOUT the temperature (PFCR's full_sort_predict; in exact arithmetic a positive
// scale would not change the ranking), and the row-wise L2 normalisation they share, exactly
// torch.nn.functional.normalize(eps=1e-12).
//
// The kernels come in the pieces the Trainer (trainer.cpp) runs, so that the code the gradient
// checks and the PyTorch parity tests exercise is the code that trains:
//   per chunk of batch rows:        cosine_ce_rows_forward, cosine_ce_rows_backward
//   per block of candidate rows:    cosine_ce_candidates_backward (dÊ -> dE)
// cosine_ce_forward / cosine_ce_backward compose them over a whole batch. The float operations
// and their order are the Trainer's (results.json, metrics and checkpoints are promised
// bitwise): multiply by a once-rounded 1/tau, exp(z - zmax) with vmath.hpp's vexp, sums in
// 16 lanes (lane_sum), loss_b = log(sum) - log(e_t) in double, p = e · (1/sum), G = p · scale
// (tests/model/test_trainer_parity.cpp pins this order bit for bit).
// Not here: masking the padding column for ranking (metrics.hpp does that).
// Dimension letters: B batch rows, n rows of a chunk, V1 = V+1 candidates (items 0..V),
// C hidden.
#pragma once

#include "core/phase_timer.hpp"
#include "core/tensor.hpp"
#include "model/gemm.hpp"
#include "model/vmath.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

namespace pfcr {

// F.normalize's eps: y = x / max(||x||, eps).
inline constexpr double kNormalizeEps = 1e-12;

// Candidate rows per block of cosine_ce_candidates_backward in cosine_ce_backward and in the
// Trainer (which runs the blocks in parallel). Part of the numerical definition: the dÊ GEMM's
// blocking, hence its rounding, may depend on the block's shape.
inline constexpr int64_t kCandidateBlock = 256;

namespace detail {
// Read-only view of a buffer: mat() then maps it as Map<const RowMat>, like every input operand.
template <typename T> const T* cst(T* p) {
    return p;
}
} // namespace detail

// The loss's two constants, each rounded once from the double temperature of the config:
// 1/tau that the logits are multiplied by, and dloss/(B tau), dLoss/dcosine's scale.
template <typename T> T ce_inv_tau(double tau) {
    return T(1.0 / tau);
}
template <typename T> T ce_grad_scale(double tau, int64_t B, double dloss = 1.0) {
    return T(dloss / (double(B) * tau));
}

// inp (n,C) -> out (n,C), norm (n) = ||inp_r|| (unclamped; backward needs to know the branch)
// out_r = inp_r / max(||inp_r||, 1e-12). A zero row gives a zero output, never NaN.
template <typename T>
void l2_normalize_forward(T* out, T* norm, const T* inp, int64_t n, int64_t C) {
    const prof::PhaseScope timer(prof::Phase::normalize);
    for (int64_t r = 0; r < n; ++r) {
        const T* x = inp + r * C;
        norm[r] = std::sqrt(lane_sum_of<T>(C, [x](int64_t k) { return x[k] * x[k]; }));
        const T d = std::max(norm[r], T(kNormalizeEps));
        for (int64_t k = 0; k < C; ++k) out[r * C + k] = x[k] / d;
    }
}

// dout (n,C), out (n,C), norm (n) -> dinp (n,C) +=, or written without accumulate
// Unclamped (||x|| >= eps; torch's clamp_min passes the gradient at equality):
//   y = x/||x||  =>  dx = (I - y yᵀ) dy / ||x|| = (dy - y <y,dy>) / ||x||
// Clamped (||x|| < eps): y = x/eps is linear  =>  dx = dy / eps.
// Row-wise independent: any split into row ranges gives the same bits.
template <typename T>
void l2_normalize_backward(T* dinp, const T* dout, const T* out, const T* norm, int64_t n,
                           int64_t C, bool accumulate = true) {
    const prof::PhaseScope timer(prof::Phase::normalize);
    for (int64_t r = 0; r < n; ++r) {
        const T* y = out + r * C;
        const T* dy = dout + r * C;
        T* dx = dinp + r * C;
        if (norm[r] >= T(kNormalizeEps)) {
            const T ydy = lane_sum_of<T>(C, [y, dy](int64_t k) { return y[k] * dy[k]; });
            for (int64_t k = 0; k < C; ++k) {
                const T g = (dy[k] - y[k] * ydy) / norm[r];
                dx[k] = accumulate ? dx[k] + g : g;
            }
        } else {
            for (int64_t k = 0; k < C; ++k) {
                const T g = dy[k] / T(kNormalizeEps);
                dx[k] = accumulate ? dx[k] + g : g;
            }
        }
    }
}

// Cosine scores (evaluation; also the first step of the training logits):
// s_hat (B,C), e_hat (V1,C), both already l2_normalize_forward-ed -> scores (B,V1) = Ŝ Êᵀ.
// Column 0 (padding item) is left as computed; ranking ignores it. Normalise the candidates
// once per evaluation or step, not per batch or chunk.
// e_hat_fwd, optional on fast-GEMM builds: Êᵀ packed once (gemm_pack_b of (C, V1); the same bits,
// without packing the candidates again for every chunk).
template <typename T>
void cosine_scores(T* scores, const T* s_hat, const T* e_hat, int64_t B, int64_t V1, int64_t C,
                   const T* e_hat_fwd = nullptr) {
    const prof::PhaseScope timer(prof::Phase::gemm_logits_fwd);
    if constexpr (kFastGemm<T>) {
        if (e_hat_fwd)
            gemm_f32_packed(scores, V1, {s_hat, C, 1}, e_hat_fwd, B, V1, C, false);
        else
            gemm_f32(scores, V1, {s_hat, C, 1}, {e_hat, 1, C}, B, V1, C, false);
    } else
        mat(scores, B, V1).noalias() = mat<T>(s_hat, B, C) * mat<T>(e_hat, V1, C).transpose();
    (void)e_hat_fwd;
}

// The training logits z = Ŝ Êᵀ · (1/tau), computed as the loss computes them (tests compare
// them with PyTorch's logits; evaluation ranks the cosines above).
template <typename T>
void cosine_scores(T* logits, const T* s_hat, const T* e_hat, int64_t B, int64_t V1, int64_t C,
                   double tau) {
    cosine_scores(logits, s_hat, e_hat, B, V1, C);
    const T inv_tau = ce_inv_tau<T>(tau);
    for (int64_t i = 0; i < B * V1; ++i) logits[i] *= inv_tau;
}

// Softmax cross-entropy of n rows, in place: z (n,V1) holds cosines on entry and the
// probabilities softmax(z · inv_tau) on return; targets (n) in 1..V1-1. Returns the SUM of the
// rows' losses (double, rows in order). Per row:
//   z_j <- z_j inv_tau,  zmax = max_j z_j,  e_j = vexp(z_j - zmax),  sum = lane_sum_j e_j
//   (vmath.hpp: vectorised exp, 16-lane sum in a fixed order)
//   loss = log(sum) - log(e_t)  (= logsumexp(z) - z_t; cosines keep e_t >= exp(-2 inv_tau),
//          above 0 in float for tau > 2/103 ≈ 0.02; below that the loss can be +inf, which
//          the Trainer reports as a non-finite loss)
//   p_j = e_j · (1/sum)
// With grad_scale != 0 the last pass also applies softmax_ce_rows_backward (z_j <- p_j ·
// grad_scale, then z_t -= grad_scale: the same two roundings, so the same bits) while the row is
// still in cache, and z holds dLoss/dz on return instead of the probabilities.
template <typename T>
double softmax_ce_rows(T* z, const int32_t* targets, int64_t n, int64_t V1, T inv_tau,
                       T grad_scale = T(0)) {
    const prof::PhaseScope timer(prof::Phase::softmax_ce);
    double loss = 0;
    for (int64_t b = 0; b < n; ++b) {
        const int32_t t = targets[b];
        assert(t >= 1 && t < V1); // never the padding item
        T* zb = z + b * V1;
        // Two passes over the row, not four: the scaling inside the max, the exponentials
        // inside the sum (the same values, summed in the same lanes and order).
        const T zmax = scale_and_max(zb, V1, inv_tau);
        const T sum =
            lane_sum_of<T>(V1, [zb, zmax](int64_t j) { return zb[j] = vexp(zb[j] - zmax); });
        loss += double(std::log(sum)) - std::log(double(zb[t]));
        const T inv_sum = T(1) / sum;
        if (grad_scale == T(0)) {
            for (int64_t j = 0; j < V1; ++j) zb[j] = zb[j] * inv_sum;
        } else {
            for (int64_t j = 0; j < V1; ++j) zb[j] = zb[j] * inv_sum * grad_scale;
            zb[t] -= grad_scale;
        }
    }
    return loss;
}

// probs (n,V1), targets (n), scale = ce_grad_scale -> dz (n,V1) = (p - onehot(t)) · scale,
// the gradient of the batch-mean loss with respect to the cosines (the 1/tau folded in).
// dz may alias probs (element-wise).
template <typename T>
void softmax_ce_rows_backward(T* dz, const T* probs, const int32_t* targets, int64_t n, int64_t V1,
                              T scale) {
    const prof::PhaseScope timer(prof::Phase::softmax_ce);
    for (int64_t b = 0; b < n; ++b) {
        const T* p = probs + b * V1;
        T* d = dz + b * V1;
        for (int64_t j = 0; j < V1; ++j) d[j] = p[j] * scale;
        d[targets[b]] -= scale;
    }
}

// Caller-owned buffers of the cosine cross-entropy (non-owning views; sizes in comments).
// Forward fills the first five; backward reads them and uses the last three as workspace.
// A chunk's view points the row fields (s_hat, s_norm, probs, d_logits, d_s_hat) at its
// first row and the candidate fields at the whole candidate matrix.
template <typename T> struct CosineCeBuffers {
    T* s_hat;    // (B,C)   s / max(||s||, eps)
    T* s_norm;   // (B)     ||s||
    T* e_hat;    // (V1,C)  E / max(||E||, eps), row-wise
    T* e_norm;   // (V1)    ||E_j||
    T* probs;    // (B,V1)  softmax(z) (z itself is not kept)
    T* d_logits; // (B,V1)  backward workspace: dloss/d(Ŝ Êᵀ). May alias probs (overwrites it).
    T* d_s_hat;  // (B,C)   backward workspace: dloss/dŜ
    T* d_e_hat;  // (V1,C)  backward workspace: dloss/dÊ
    // Optional (fast-GEMM builds): Êᵀ and Ê packed once per step (gemm_pack_b of (C, V1) and of
    // (V1, C)), and the whole batch's Ŝ packed once (gemm_pack_b of (B, C)) for every candidate
    // block's dÊ.
    const T* e_hat_fwd = nullptr;
    const T* e_hat_bwd = nullptr;
    const T* s_hat_bwd = nullptr;
};

// Forward of n rows (a whole batch, or a chunk whose view starts at its first row), with
// buf.e_hat already normalised: s (n,C) -> buf.s_hat, buf.s_norm; cosines into buf.probs, then
// softmax_ce_rows in place. Returns the rows' loss sum (the caller divides by B).
// grad_scale != 0 (training, buf.d_logits == buf.probs): buf.probs is left holding dLoss/dcos
// instead (softmax_ce_rows's fused pass), and the backward is called with logits_ready.
template <typename T>
double cosine_ce_rows_forward(const CosineCeBuffers<T>& buf, const T* s, const int32_t* targets,
                              int64_t n, int64_t V1, int64_t C, T inv_tau, T grad_scale = T(0)) {
    assert(grad_scale == T(0) || buf.d_logits == buf.probs);
    l2_normalize_forward(buf.s_hat, buf.s_norm, s, n, C);
    cosine_scores(buf.probs, buf.s_hat, buf.e_hat, n, V1, C, buf.e_hat_fwd);
    return softmax_ce_rows(buf.probs, targets, n, V1, inv_tau, grad_scale);
}

// Backward of the same n rows -> ds (n,C) +=; leaves dLoss/d(Ŝ Êᵀ) in buf.d_logits for
// cosine_ce_candidates_backward. Inverts, in reverse order:
//   loss = Σ_b CE(softmax(z_b), t_b) dloss/B  =>  dcos[b][j] = (p[b][j] - 1[j == t_b]) · scale
//   cos = Ŝ Êᵀ                                =>  dŜ = dcos Ê  (GEMM)
//   Ŝ = normalize(s)                          =>  l2_normalize_backward into ds
// logits_ready: the forward ran with grad_scale = scale, buf.d_logits already holds dcos.
template <typename T>
void cosine_ce_rows_backward(T* ds, const CosineCeBuffers<T>& buf, const int32_t* targets,
                             int64_t n, int64_t V1, int64_t C, T scale, bool logits_ready = false) {
    if (!logits_ready) softmax_ce_rows_backward(buf.d_logits, buf.probs, targets, n, V1, scale);
    {
        const prof::PhaseScope timer(prof::Phase::gemm_logits_bwd);
        if constexpr (kFastGemm<T>) {
            if (buf.e_hat_bwd)
                gemm_f32_packed(buf.d_s_hat, C, {buf.d_logits, V1, 1}, buf.e_hat_bwd, n, C, V1,
                                false);
            else
                gemm_f32(buf.d_s_hat, C, {buf.d_logits, V1, 1}, {buf.e_hat, C, 1}, n, C, V1, false);
        } else
            mat(buf.d_s_hat, n, C).noalias() =
                mat(detail::cst(buf.d_logits), n, V1) * mat(detail::cst(buf.e_hat), V1, C);
    }
    l2_normalize_backward(ds, buf.d_s_hat, buf.s_hat, buf.s_norm, n, C);
}

// Candidate rows [r0, r1) of the backward, once every row of the batch has run
// cosine_ce_rows_backward (buf is the whole batch's view) -> dE rows r0..r1-1 += (written
// without accumulate):
//   dÊ = dcosᵀ Ŝ  (GEMM over the B rows)  =>  l2_normalize_backward into dE
// Blocks write disjoint rows, so they may run in parallel; for the same bits, use the same
// blocks everywhere (kCandidateBlock). E's gradient reaches every candidate, padding row 0 too.
template <typename T>
void cosine_ce_candidates_backward(T* dE, const CosineCeBuffers<T>& buf, int64_t B, int64_t V1,
                                   int64_t C, int64_t r0, int64_t r1, bool accumulate = true) {
    {
        const prof::PhaseScope timer(prof::Phase::gemm_logits_bwd);
        if constexpr (kFastGemm<T>) {
            if (buf.s_hat_bwd)
                gemm_f32_packed(buf.d_e_hat + r0 * C, C, {buf.d_logits + r0, 1, V1}, buf.s_hat_bwd,
                                r1 - r0, C, B, false);
            else
                gemm_f32(buf.d_e_hat + r0 * C, C, {buf.d_logits + r0, 1, V1}, {buf.s_hat, C, 1},
                         r1 - r0, C, B, false);
        } else
            mat(buf.d_e_hat + r0 * C, r1 - r0, C).noalias() =
                mat(detail::cst(buf.d_logits), B, V1).middleCols(r0, r1 - r0).transpose() *
                mat(detail::cst(buf.s_hat), B, C);
    }
    l2_normalize_backward(dE + r0 * C, buf.d_e_hat + r0 * C, buf.e_hat + r0 * C, buf.e_norm + r0,
                          r1 - r0, C, accumulate);
}

// s (B,C), E (V1,C), targets (B) in 1..V1-1 -> returns mean_b CE; fills buf (see above).
// Deterministic for a given build (fixed GEMM reduction order; no threads).
template <typename T>
T cosine_ce_forward(const CosineCeBuffers<T>& buf, const T* s, const T* E, const int32_t* targets,
                    int64_t B, int64_t V1, int64_t C, double tau) {
    l2_normalize_forward(buf.e_hat, buf.e_norm, E, V1, C);
    const double loss_sum = cosine_ce_rows_forward(buf, s, targets, B, V1, C, ce_inv_tau<T>(tau));
    return T(loss_sum / double(B));
}

// dloss (scalar upstream gradient, 1 for the training loss) -> ds (B,C) +=, dE (V1,C) +=:
// cosine_ce_rows_backward over all rows, then cosine_ce_candidates_backward block by block.
template <typename T>
void cosine_ce_backward(T* ds, T* dE, const CosineCeBuffers<T>& buf, const int32_t* targets,
                        int64_t B, int64_t V1, int64_t C, double tau, double dloss = 1.0) {
    cosine_ce_rows_backward(ds, buf, targets, B, V1, C, ce_grad_scale<T>(tau, B, dloss));
    for (int64_t r0 = 0; r0 < V1; r0 += kCandidateBlock)
        cosine_ce_candidates_backward(dE, buf, B, V1, C, r0, std::min(V1, r0 + kCandidateBlock));
}

// ---- plain-loop references (tests compare the GEMM paths above against these) ----
// The textbook formulas: z = dot / tau, loss = zmax + log Σ exp(z - zmax) - z_t,
// p = exp(z - zmax) / sum, dz = dloss (p - onehot) / (B tau).

template <typename T>
void cosine_scores_reference(T* scores, const T* s_hat, const T* e_hat, int64_t B, int64_t V1,
                             int64_t C) {
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < V1; ++j) {
            T dot = T(0);
            for (int64_t k = 0; k < C; ++k) dot += s_hat[b * C + k] * e_hat[j * C + k];
            scores[b * V1 + j] = dot;
        }
}

template <typename T>
void cosine_scores_reference(T* scores, const T* s_hat, const T* e_hat, int64_t B, int64_t V1,
                             int64_t C, double tau) {
    cosine_scores_reference(scores, s_hat, e_hat, B, V1, C);
    for (int64_t i = 0; i < B * V1; ++i) scores[i] /= T(tau);
}

template <typename T>
T cosine_ce_forward_reference(const CosineCeBuffers<T>& buf, const T* s, const T* E,
                              const int32_t* targets, int64_t B, int64_t V1, int64_t C,
                              double tau) {
    l2_normalize_forward(buf.s_hat, buf.s_norm, s, B, C);
    l2_normalize_forward(buf.e_hat, buf.e_norm, E, V1, C);
    cosine_scores_reference(buf.probs, buf.s_hat, buf.e_hat, B, V1, C, tau);
    double loss_sum = 0;
    for (int64_t b = 0; b < B; ++b) {
        T* p = buf.probs + b * V1;
        T zmax = p[0];
        for (int64_t j = 1; j < V1; ++j) zmax = std::max(zmax, p[j]);
        T sum = T(0);
        for (int64_t j = 0; j < V1; ++j) sum += std::exp(p[j] - zmax);
        loss_sum += double(zmax + std::log(sum) - p[targets[b]]);
        for (int64_t j = 0; j < V1; ++j) p[j] = std::exp(p[j] - zmax) / sum;
    }
    return T(loss_sum / double(B));
}

template <typename T>
void cosine_ce_backward_reference(T* ds, T* dE, const CosineCeBuffers<T>& buf,
                                  const int32_t* targets, int64_t B, int64_t V1, int64_t C,
                                  double tau, double dloss = 1.0) {
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < V1; ++j)
            buf.d_logits[b * V1 + j] =
                T(dloss) * (buf.probs[b * V1 + j] - T(j == targets[b] ? 1 : 0)) / (T(B) * T(tau));
    for (int64_t i = 0; i < B * C; ++i) buf.d_s_hat[i] = T(0);
    for (int64_t i = 0; i < V1 * C; ++i) buf.d_e_hat[i] = T(0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < V1; ++j) {
            const T g = buf.d_logits[b * V1 + j];
            for (int64_t k = 0; k < C; ++k) {
                buf.d_s_hat[b * C + k] += g * buf.e_hat[j * C + k];
                buf.d_e_hat[j * C + k] += g * buf.s_hat[b * C + k];
            }
        }
    l2_normalize_backward(ds, buf.d_s_hat, buf.s_hat, buf.s_norm, B, C);
    l2_normalize_backward(dE, buf.d_e_hat, buf.e_hat, buf.e_norm, V1, C);
}

} // namespace pfcr
