// The last layer's self-attention with its key and value projections folded into the one query
// each history has (position len-1, the only one read), forward and backward side by side.
// It replaces, for that layer only, k = x Wkᵀ + bk and v = x Wvᵀ + bv over EVERY token followed
// by attention.hpp's kernels: with one query per sequence, per head h (rows h·HS.. of Wk, Wv):
// clang-format off
//   scores   q_h·k_hj = q_h·(Wk_h x_j + bk_h) = u_h·x_j + c_h,   u_h = Wk_hᵀ q_h (C values),
//                                                                c_h = q_h·bk_h
//   context  Σ_j Pd_j v_hj = Wv_h x̄_h + σ_h bv_h,               x̄_h = Σ_j Pd_j x_j (C values),
//                                                                σ_h = Σ_j Pd_j
// clang-format on
// so the two (N,C)x(C,C) products become (B,HS)x(HS,C) and (B,C)x(C,HS) products per head: B
// rows instead of N tokens (the paper's batches: 1,024 histories, ~4,000 tokens; the step's GEMM
// calls execute 23.3 GFLOP instead of 26.4, docs/PERFORMANCE.md window O). The scores, softmax,
// dropout draws (same element indices) and context are the same functions of the parameters as the
// unfolded layer's, evaluated in a different order, so they agree to rounding
// (tests/model/test_read_attention.cpp, in double, against the unfolded linear + attention_forward
// / attention_backward: the plain path, which EncoderHyper::fold_read_kv = false keeps in the
// encoder). c_h is constant over the keys, so the softmax removes it; it is kept so that the key
// bias gets the reference's (zero up to rounding) gradient from the same formula.
//
// Not here: the query projection and the output dense layer (ordinary linear layers, done by
// the encoder), the other layers (attention.hpp). Letters: B sequences (= query rows), N packed
// tokens, C hidden, NH heads, HS = C/NH. Buffers of the form (B, NH*C) hold one C-vector per
// (sequence, head), head-major within a sequence's row.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/phase_timer.hpp"
#include "core/tensor.hpp"
#include "model/attention.hpp"
#include "model/gemm.hpp"

namespace pfcr {

namespace detail {
// f(view) with view the (rows, cols) matrix whose element (i, k) is p[i*rs + k*cs], as an Eigen
// expression: a row-major map when cs == 1, the transpose of one when rs == 1 (both read in
// place), else a map with both strides (which Eigen's product copies first).
template <typename T, typename F>
void with_strided_view(const T* p, int64_t rows, int64_t cols, int64_t rs, int64_t cs, F&& f) {
    using Outer = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
    using Both = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
    if (cs == 1)
        f(Outer(p, rows, cols, Eigen::OuterStride<>(rs)));
    else if (rs == 1)
        f(Outer(p, cols, rows, Eigen::OuterStride<>(cs)).transpose());
    else
        f(Eigen::Map<const RowMat<T>, 0, Both>(p, rows, cols, Both(rs, cs)));
}

// c (M,N), leading dimension ldc, = (or += with accumulate) a·b for strided views a (M,K) and
// b (K,N) (element (i,k) at p[i*row_stride + k*col_stride], as GemmOperand): pfcr's GEMM for
// float on fast-GEMM builds, else an Eigen product (double: gradient checks; float without
// AVX-512).
template <typename T>
void strided_product(T* c, int64_t ldc, const T* a, int64_t a_rs, int64_t a_cs, const T* b,
                     int64_t b_rs, int64_t b_cs, int64_t M, int64_t N, int64_t K, bool accumulate) {
    if constexpr (kFastGemm<T>) {
        gemm_f32(c, ldc, {a, a_rs, a_cs}, {b, b_rs, b_cs}, M, N, K, accumulate);
    } else {
        Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>> cm(c, M, N, Eigen::OuterStride<>(ldc));
        with_strided_view(a, M, K, a_rs, a_cs, [&](const auto& am) {
            with_strided_view(b, K, N, b_rs, b_cs, [&](const auto& bm) {
                if (accumulate)
                    cm.noalias() += am * bm;
                else
                    cm.noalias() = am * bm;
            });
        });
    }
}
} // namespace detail

// What read_attention_forward keeps for its backward (and its backward's scratch); vectors only
// grow. u, xbar, du, dxbar (B, NH*C); sigma, dsigma, dc (B*NH).
template <typename T> struct ReadAttentionState {
    std::vector<T> u, xbar, sigma;
    std::vector<T> du, dxbar, dsigma, dc;
    std::vector<T> ds; // one sequence's dS, (NH, len)
};

// Forward. q (B,C): the query row of each sequence (its position len_b-1); x (N,C): the layer's
// input rows (sequence b's at off[b]..off[b+1]-1); wk, wv (C,C) and bk, bv (C) in PyTorch's
// [out, in] layout -> ctx (B,C), the attention's output before the dense layer (what
// attention_forward writes for these queries from k = x Wkᵀ + bk, v = x Wvᵀ + bv). probs /
// probs_drop in attention.hpp's packed layout with first_query = len-1 (probs_off from
// attention_probs_offsets): sequence b, head h, key j at probs_off[b] + h*len_b + j. probs_drop
// may alias probs when drop.p == 0. Dropout element indices are attention_forward's (query
// position t = len_b-1).
template <typename T>
void read_attention_forward(T* ctx, T* probs, T* probs_drop, ReadAttentionState<T>& st, const T* q,
                            const T* x, const T* wk, const T* bk, const T* wv, const T* bv,
                            const int64_t* off, const int64_t* probs_off, int64_t B, int64_t C,
                            int64_t NH, const AttentionDropout& drop) {
    const int64_t HS = C / NH, W = NH * C;
    assert(HS * NH == C);
    if (int64_t(st.u.size()) < B * W) st.u.resize(size_t(B * W));
    if (int64_t(st.xbar.size()) < B * W) st.xbar.resize(size_t(B * W));
    if (int64_t(st.sigma.size()) < B * NH) st.sigma.resize(size_t(B * NH));
    T* u = st.u.data();
    T* xbar = st.xbar.data();
    {
        // u_h = Wk_hᵀ q_h for every sequence: (B,HS)·(HS,C) per head.
        const prof::PhaseScope timer(prof::Phase::gemm_linear_fwd);
        for (int64_t h = 0; h < NH; ++h)
            detail::strided_product(u + h * C, W, q + h * HS, C, 1, wk + h * HS * C, C, 1, B, C, HS,
                                    false);
    }
    {
        const prof::PhaseScope timer(prof::Phase::attention_fwd);
        const T sqrt_hs = T(std::sqrt(double(HS)));
        [[maybe_unused]] const bool dropout = drop.p > 0; // asserts only
        assert(!dropout || (drop.rng && drop.row_base && probs_drop != probs));
        const AttnRowSoftmax<T> softmax_dropout(drop); // attention_forward's, query t = len-1
        for (int64_t b = 0; b < B; ++b) {
            const int64_t len = off[b + 1] - off[b], t = len - 1;
            assert(len >= 1 && (!dropout || len <= drop.T_max));
            const T* xb = x + off[b] * C;
            if (const int64_t n = b + kAttnPrefetch; n < B) prefetch_rows(x, off[n], off[n + 1], C);
            for (int64_t h = 0; h < NH; ++h) {
                T* p_row = probs + probs_off[b] + h * len;
                T* pd_row = probs_drop + probs_off[b] + h * len;
                const T* u_bh = u + b * W + h * C;
                const T c_bh = attn_dot(q + b * C + h * HS, bk + h * HS, HS);
                T max_s = -std::numeric_limits<T>::infinity();
                for (int64_t j = 0; j < len; ++j) {
                    p_row[j] = (attn_dot(u_bh, xb + j * C, C) + c_bh) / sqrt_hs;
                    max_s = std::max(max_s, p_row[j]);
                }
                softmax_dropout(p_row, pd_row, len, max_s, b, h, t);
                // x̄_h = Σ_j Pd_j x_j, σ_h = Σ_j Pd_j (j ascending).
                attn_axpy_rows(xbar + b * W + h * C, pd_row, xb, C, len, C, true);
                T sigma = 0;
                for (int64_t j = 0; j < len; ++j) sigma += pd_row[j];
                st.sigma[size_t(b * NH + h)] = sigma;
            }
        }
    }
    const prof::PhaseScope timer(prof::Phase::gemm_linear_fwd);
    // ctx_h = x̄_h Wv_hᵀ + σ_h bv_h: (B,C)·(C,HS) per head, then the bias term.
    for (int64_t h = 0; h < NH; ++h)
        detail::strided_product(ctx + h * HS, C, xbar + h * C, W, 1, wv + h * HS * C, 1, C, B, HS,
                                C, false);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < NH; ++h) {
            const T sigma = st.sigma[size_t(b * NH + h)];
            T* row = ctx + b * C + h * HS;
            for (int64_t r = 0; r < HS; ++r) row[r] = attn_madd(sigma, bv[h * HS + r], row[r]);
        }
}

// Backward of read_attention_forward (same arguments; its state st): dctx (B,C) ->
// dq (B,C) and dx (N,C) WRITTEN (dx only at rows off[0]..off[B]-1), dwk, dwv (C,C) and
// dbk, dbv (C) ACCUMULATED; any of dwk, dbk, dwv, dbv may be null (not computed).
// Per (sequence, head): dx̄_h = dctx_h·Wv_h and dσ_h = dctx_h·bv_h give dPd_j = dx̄_h·x_j + dσ_h;
// the dropout and softmax are inverted as attention_backward does (dS_j = (Pd_j dPd_j -
// P_j Σ_k Pd_k dPd_k) / sqrt(HS)); then du_h = Σ_j dS_j x_j, dc_h = Σ_j dS_j and
// dx_j = Σ_h (Pd_hj dx̄_h + dS_hj u_h). As products over the sequences: dq_h = du_h·Wk_hᵀ +
// dc_h bk_h, dWk_h += q_hᵀ·du_h, dbk_h += Σ_b dc_h q_h, dWv_h += dctx_hᵀ·x̄_h,
// dbv_h += Σ_b σ_h dctx_h.
template <typename T>
void read_attention_backward(T* dq, T* dx, T* dwk, T* dbk, T* dwv, T* dbv, const T* dctx,
                             const T* probs, const T* probs_drop, ReadAttentionState<T>& st,
                             const T* q, const T* x, const T* wk, const T* bk, const T* wv,
                             const T* bv, const int64_t* off, const int64_t* probs_off, int64_t B,
                             int64_t C, int64_t NH) {
    const int64_t HS = C / NH, W = NH * C;
    for (auto* v : {&st.du, &st.dxbar})
        if (int64_t(v->size()) < B * W) v->resize(size_t(B * W));
    for (auto* v : {&st.dsigma, &st.dc})
        if (int64_t(v->size()) < B * NH) v->resize(size_t(B * NH));
    const T* u = st.u.data();
    const T* xbar = st.xbar.data();
    T* du = st.du.data();
    T* dxbar = st.dxbar.data();
    {
        const prof::PhaseScope timer(prof::Phase::gemm_linear_bwd);
        for (int64_t h = 0; h < NH; ++h) {
            // dx̄_h = dctx_h·Wv_h (B,HS)·(HS,C); dWv_h += dctx_hᵀ·x̄_h (HS,B)·(B,C)
            detail::strided_product(dxbar + h * C, W, dctx + h * HS, C, 1, wv + h * HS * C, C, 1, B,
                                    C, HS, false);
            if (dwv)
                detail::strided_product(dwv + h * HS * C, C, dctx + h * HS, 1, C, xbar + h * C, W,
                                        1, HS, C, B, true);
        }
        for (int64_t b = 0; b < B; ++b)
            for (int64_t h = 0; h < NH; ++h) {
                const T* g = dctx + b * C + h * HS;
                const T sigma = st.sigma[size_t(b * NH + h)];
                st.dsigma[size_t(b * NH + h)] = attn_dot(g, bv + h * HS, HS);
                if (dbv)
                    for (int64_t r = 0; r < HS; ++r)
                        dbv[h * HS + r] = attn_madd(sigma, g[r], dbv[h * HS + r]);
            }
    }
    {
        const prof::PhaseScope timer(prof::Phase::attention_bwd);
        const T sqrt_hs = T(std::sqrt(double(HS)));
        T d_pd[kAttnMaxLen];
        T coef[2 * kAttnMaxLen];
        for (int64_t b = 0; b < B; ++b) {
            const int64_t len = off[b + 1] - off[b];
            assert(len >= 1 && len <= kAttnMaxLen && NH <= kAttnMaxLen);
            if (int64_t(st.ds.size()) < NH * len) st.ds.resize(size_t(NH * len));
            T* ds = st.ds.data();
            const T* xb = x + off[b] * C;
            if (const int64_t n = b + kAttnPrefetch; n < B) prefetch_rows(x, off[n], off[n + 1], C);
            for (int64_t h = 0; h < NH; ++h) {
                const T* p_row = probs + probs_off[b] + h * len;
                const T* pd_row = probs_drop + probs_off[b] + h * len;
                const T* dxbar_bh = dxbar + b * W + h * C;
                const T dsigma = st.dsigma[size_t(b * NH + h)];
                T pd_dot = 0; // Σ_k Pd_k dPd_k
                for (int64_t j = 0; j < len; ++j) {
                    d_pd[j] = attn_dot(dxbar_bh, xb + j * C, C) + dsigma;
                    pd_dot = attn_madd(pd_row[j], d_pd[j], pd_dot);
                }
                T* ds_h = ds + h * len;
                T dc = 0;
                for (int64_t j = 0; j < len; ++j) {
                    ds_h[j] = attn_madd(pd_row[j], d_pd[j], -(p_row[j] * pd_dot)) / sqrt_hs;
                    dc += ds_h[j];
                }
                st.dc[size_t(b * NH + h)] = dc;
                attn_axpy_rows(du + b * W + h * C, ds_h, xb, C, len, C, true);
            }
            // dx_j = Σ_h Pd_hj dx̄_h + Σ_h dS_hj u_h (h ascending in each sum)
            for (int64_t j = 0; j < len; ++j) {
                for (int64_t h = 0; h < NH; ++h) {
                    coef[h] = probs_drop[probs_off[b] + h * len + j];
                    coef[NH + h] = ds[h * len + j];
                }
                T* dx_j = dx + (off[b] + j) * C;
                attn_axpy_rows(dx_j, coef, dxbar + b * W, C, NH, C, true);
                attn_axpy_rows(dx_j, coef + NH, u + b * W, C, NH, C, false);
            }
        }
    }
    const prof::PhaseScope timer(prof::Phase::gemm_linear_bwd);
    for (int64_t h = 0; h < NH; ++h) {
        // dq_h = du_h·Wk_hᵀ (B,C)·(C,HS); dWk_h += q_hᵀ·du_h (HS,B)·(B,C)
        detail::strided_product(dq + h * HS, C, du + h * C, W, 1, wk + h * HS * C, 1, C, B, HS, C,
                                false);
        if (dwk)
            detail::strided_product(dwk + h * HS * C, C, q + h * HS, 1, C, du + h * C, W, 1, HS, C,
                                    B, true);
    }
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < NH; ++h) {
            const T dc = st.dc[size_t(b * NH + h)];
            T* dq_row = dq + b * C + h * HS;
            const T* q_row = q + b * C + h * HS;
            for (int64_t r = 0; r < HS; ++r) {
                dq_row[r] = attn_madd(dc, bk[h * HS + r], dq_row[r]);
                if (dbk) dbk[h * HS + r] = attn_madd(dc, q_row[r], dbk[h * HS + r]);
            }
        }
}

} // namespace pfcr
