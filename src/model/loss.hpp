// PFCR's training loss (docs/METHOD.md §5): cosine logits z[b][j] = <ŝ_b, ê_j> / tau over ALL items of
// the domain (candidate row 0 = padding item, a class like any other in training), softmax
// cross-entropy, batch mean. Also the evaluation scores (same logits, no softmax) and the
// row-wise L2 normalisation they share, exactly torch.nn.functional.normalize(eps=1e-12).
// Not here: masking the padding column for ranking (metrics.hpp does that).
// Dimension letters: B batch rows, V1 = V+1 candidates (items 0..V), C hidden, n rows.
#pragma once

#include "core/tensor.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>

namespace pfcr {

// F.normalize's eps: y = x / max(||x||, eps).
inline constexpr double kNormalizeEps = 1e-12;

// inp (n,C) -> out (n,C), norm (n) = ||inp_r|| (unclamped; backward needs to know the branch)
// out_r = inp_r / max(||inp_r||, 1e-12). A zero row gives a zero output, never NaN.
template <typename T>
void l2_normalize_forward(T* out, T* norm, const T* inp, int64_t n, int64_t C) {
    for (int64_t r = 0; r < n; ++r) {
        const T* x = inp + r * C;
        T ss = T(0);
        for (int64_t k = 0; k < C; ++k) ss += x[k] * x[k];
        norm[r] = std::sqrt(ss);
        const T d = std::max(norm[r], T(kNormalizeEps));
        for (int64_t k = 0; k < C; ++k) out[r * C + k] = x[k] / d;
    }
}

// dout (n,C), out (n,C), norm (n) -> dinp (n,C) +=
// Unclamped (||x|| >= eps; torch's clamp_min passes the gradient at equality):
//   y = x/||x||  =>  dx = (I - y yᵀ) dy / ||x|| = (dy - y <y,dy>) / ||x||
// Clamped (||x|| < eps): y = x/eps is linear  =>  dx = dy / eps.
template <typename T>
void l2_normalize_backward(T* dinp, const T* dout, const T* out, const T* norm, int64_t n,
                           int64_t C) {
    for (int64_t r = 0; r < n; ++r) {
        const T* y = out + r * C;
        const T* dy = dout + r * C;
        T* dx = dinp + r * C;
        if (norm[r] >= T(kNormalizeEps)) {
            T ydy = T(0);
            for (int64_t k = 0; k < C; ++k) ydy += y[k] * dy[k];
            for (int64_t k = 0; k < C; ++k) dx[k] += (dy[k] - y[k] * ydy) / norm[r];
        } else {
            for (int64_t k = 0; k < C; ++k) dx[k] += dy[k] / T(kNormalizeEps);
        }
    }
}

// Caller-owned buffers of the cosine cross-entropy (non-owning views; sizes in comments).
// Forward fills the first five; backward reads them and uses the last three as workspace.
template <typename T> struct CosineCeBuffers {
    T* s_hat;    // (B,C)   s / max(||s||, eps)
    T* s_norm;   // (B)     ||s||
    T* e_hat;    // (V1,C)  E / max(||E||, eps), row-wise
    T* e_norm;   // (V1)    ||E_j||
    T* probs;    // (B,V1)  softmax(z) (z itself is not kept)
    T* d_logits; // (B,V1)  backward workspace: dloss/dz. May alias probs (overwrites it).
    T* d_s_hat;  // (B,C)   backward workspace: dloss/dŝ
    T* d_e_hat;  // (V1,C)  backward workspace: dloss/dê
};

// s (B,C), E (V1,C), targets (B) in 1..V1-1 -> returns mean_b CE; fills buf (see above).
// z = Ŝ Êᵀ / tau (Eigen GEMM, then one division per element like `logits /= temperature`);
// loss_b = logsumexp(z_b) - z_b[t_b] with the max subtracted; probs_b = softmax(z_b).
// Deterministic for a given build (fixed Eigen reduction order; no threads).
template <typename T>
T cosine_ce_forward(const CosineCeBuffers<T>& buf, const T* s, const T* E, const int32_t* targets,
                    int64_t B, int64_t V1, int64_t C, T tau) {
    l2_normalize_forward(buf.s_hat, buf.s_norm, s, B, C);
    l2_normalize_forward(buf.e_hat, buf.e_norm, E, V1, C);
    auto z = mat(buf.probs, B, V1);
    z.noalias() = mat<T>(buf.s_hat, B, C) * mat<T>(buf.e_hat, V1, C).transpose();
    double loss_sum = 0; // B terms, summed in row order
    for (int64_t b = 0; b < B; ++b) {
        assert(targets[b] >= 1 && targets[b] < V1); // never the padding item
        auto row = vec(buf.probs + b * V1, V1);
        auto zb = row.array(); // Eigen's vectorised exp/sum: V1 exps per row dominate here
        zb /= tau;
        const T zmax = zb.maxCoeff();
        const T zt = row[targets[b]];
        zb = (zb - zmax).exp();
        const T sum = zb.sum();
        zb /= sum;
        loss_sum += double(zmax + std::log(sum) - zt);
    }
    return T(loss_sum / double(B));
}

// dloss (scalar upstream gradient, 1 for the training loss) -> ds (B,C) +=, dE (V1,C) +=
// Inverts, in reverse order:
//   loss = mean_b CE(softmax(z_b), t_b)  =>  dz[b][j] = dloss (p[b][j] - 1[j == t_b]) / B
//   z = Ŝ Êᵀ / tau                       =>  dŜ = dz Ê / tau,  dÊ = dzᵀ Ŝ / tau  (GEMMs)
//   Ŝ = normalize(s), Ê = normalize(E)   =>  l2_normalize_backward into ds, dE
// The 1/tau is folded into dz. E's gradient reaches every candidate, padding row 0 included.
template <typename T>
void cosine_ce_backward(T* ds, T* dE, const CosineCeBuffers<T>& buf, const int32_t* targets,
                        int64_t B, int64_t V1, int64_t C, T tau, T dloss = T(1)) {
    const T scale = dloss / (T(B) * tau);
    for (int64_t b = 0; b < B; ++b) {
        const T* p = buf.probs + b * V1;
        T* dz = buf.d_logits + b * V1;
        for (int64_t j = 0; j < V1; ++j) dz[j] = p[j] * scale; // element-wise: aliasing safe
        dz[targets[b]] -= scale;
    }
    auto dz = mat<T>(buf.d_logits, B, V1);
    mat(buf.d_s_hat, B, C).noalias() = dz * mat<T>(buf.e_hat, V1, C);
    mat(buf.d_e_hat, V1, C).noalias() = dz.transpose() * mat<T>(buf.s_hat, B, C);
    l2_normalize_backward(ds, buf.d_s_hat, buf.s_hat, buf.s_norm, B, C);
    l2_normalize_backward(dE, buf.d_e_hat, buf.e_hat, buf.e_norm, V1, C);
}

// Evaluation scores (PFCR full_sort_predict, then /tau like the training logits):
// s_hat (B,C), e_hat (V1,C), both already l2_normalize_forward-ed -> scores (B,V1)
// scores = Ŝ Êᵀ / tau. Column 0 (padding item) is left as computed; ranking ignores it.
// Normalise the candidates once per evaluation, not per batch.
template <typename T>
void cosine_scores(T* scores, const T* s_hat, const T* e_hat, int64_t B, int64_t V1, int64_t C,
                   T tau) {
    auto out = mat(scores, B, V1);
    out.noalias() = mat<T>(s_hat, B, C) * mat<T>(e_hat, V1, C).transpose();
    out /= tau;
}

// ---- plain-loop references (tests compare the GEMM paths above against these) ----

template <typename T>
void cosine_scores_reference(T* scores, const T* s_hat, const T* e_hat, int64_t B, int64_t V1,
                             int64_t C, T tau) {
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < V1; ++j) {
            T dot = T(0);
            for (int64_t k = 0; k < C; ++k) dot += s_hat[b * C + k] * e_hat[j * C + k];
            scores[b * V1 + j] = dot / tau;
        }
}

template <typename T>
T cosine_ce_forward_reference(const CosineCeBuffers<T>& buf, const T* s, const T* E,
                              const int32_t* targets, int64_t B, int64_t V1, int64_t C, T tau) {
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
                                  const int32_t* targets, int64_t B, int64_t V1, int64_t C, T tau,
                                  T dloss = T(1)) {
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < V1; ++j)
            buf.d_logits[b * V1 + j] =
                dloss * (buf.probs[b * V1 + j] - T(j == targets[b] ? 1 : 0)) / (T(B) * tau);
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
