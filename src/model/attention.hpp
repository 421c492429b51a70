// Causal scaled-dot-product attention core of RecBole's MultiHeadAttention on PACKED
// variable-length sequences: scores, causal softmax, dropout on the probabilities, P·V.
// It is NOT the whole layer: the Q/K/V projections and the output dense layer are ordinary
// linear layers done by the caller. Queries may be restricted to a suffix of positions per
// sequence (the last layer only needs position len-1).
//
// Dimension letters: B batch rows (sequences), T positions, T_max positions of the padded
// formulation (MAX_ITEM_LIST_LENGTH), C hidden, NH heads, HS head size (C/NH), N packed key/value
// rows (sum of true lengths), NQ packed query rows (sum over b of len_b - first_query[b]).
//
// Index arrays (all int64_t, ABSOLUTE row/element indices into the base pointers):
//   off (B+1)          key/value rows of sequence b: off[b] .. off[b+1]-1; len_b = their count
//   first_query (B)    fq_b: queries t in [fq_b, len_b) are computed (0 = all, len_b-1 = last)
//   qoff (B+1)         query/output rows of sequence b: qoff[b] .. qoff[b+1]-1, row qoff[b]+i
//                      holds position t = fq_b + i, so qoff[b+1]-qoff[b] = len_b - fq_b
//   probs_off (B+1)    sequence b's block in the packed probability buffers (layout below)
// Because indices are absolute, a chunk of sequences [b0, b1) is processed by passing
// off+b0, qoff+b0, first_query+b0, probs_off+b0, row_base+b0 and B = b1-b0 with the SAME base
// pointers; chunks touch disjoint rows of out/probs/dq/dk/dv, so they may run in parallel.
//
// Packed probability layout (probs and probs_drop): sequence b owns S_b * NH entries starting at
// probs_off[b], S_b = tri(len_b) - tri(fq_b), tri(n) = n(n+1)/2. Inside, head-major, then query
// position t = fq_b .. len_b-1, then key j = 0..t (t+1 entries, the causal row):
//   probs[probs_off[b] + h*S_b + tri(t) - tri(fq_b) + j] = P_b,h[t, j]
// attention_probs_offsets() fills probs_off and returns the total size.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/phase_timer.hpp"
#include "core/rng.hpp"
#include "model/vmath.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace pfcr {

// Longest sequence the backward's stack scratch supports (MAX_ITEM_LIST_LENGTH is 50).
inline constexpr int64_t kAttnMaxLen = 256;

// How many sequences ahead the kernels prefetch their rows.
// (vmath.hpp's prefetch_rows: the attention walks the chunk's q/k/v rows sequence by sequence,
// short bursts the hardware prefetcher does not follow, and by the backward those rows have
// left L2; measured: the backward waited on them).
inline constexpr int64_t kAttnPrefetch = 2;

// Number of entries of the causal rows of positions 0..n-1: 1 + 2 + ... + n.
inline int64_t attn_tri(int64_t n) {
    return n * (n + 1) / 2;
}

// Bit-reproducible inner loops. GCC's default -ffp-contract=fast fuses a*b+c into an FMA at its
// own discretion, and differently in differently specialised copies of the same kernel (e.g. a
// clone with C, NH constant-propagated from the call site), so an Eigen dot/axpy gave results that
// depended on the call site (seen in AttentionChunking). Here every multiply-add is an explicit
// std::fma when the target has FMA (and a plain a*b+c otherwise, where nothing can be fused), in a
// fixed association order, so results are identical whatever the compiler vectorises or clones.
template <typename T> inline T attn_madd(T a, T b, T c) {
#ifdef __FMA__
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
}

// <x, y> over n contiguous elements: 16 interleaved partial sums (the 16-wide inner loop
// vectorises lane-wise into vector FMAs), a sequential tail, then a fixed pairwise combination.
// With AVX-512 (float) the partial sums stay in one register and are combined there by
// lane_combine's shuffles: GCC compiled the plain combination as scalar adds through the stack
// (11 % of the attention forward, measured alone). Same FMAs and additions, so the same bits.
template <typename T> inline T attn_dot(const T* x, const T* y, int64_t n) {
#if defined(__AVX512F__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>) {
        __m512 acc = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc);
        float tail = 0;
        for (; i < n; ++i) tail = attn_madd(x[i], y[i], tail);
        return lane_combine16(acc) + tail;
    }
#endif
    constexpr int L = 16;
    T acc[L] = {};
    int64_t i = 0;
    for (; i + L <= n; i += L) {
#pragma GCC unroll 1 // keep this a 16-wide vector loop (full unrolling defeats vectorisation)
        for (int l = 0; l < L; ++l) acc[l] = attn_madd(x[i + l], y[i + l], acc[l]);
    }
    T tail = 0;
    for (; i < n; ++i) tail = attn_madd(x[i], y[i], tail);
    for (int w = L / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0] + tail;
}

// y += alpha * x over n contiguous elements.
template <typename T> inline void attn_axpy(T alpha, const T* x, T* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = attn_madd(alpha, x[i], y[i]);
}

// y += sum_i a[i] * x_i over n contiguous elements, rows x_i = x + i*stride for i = 0..count-1:
// per element exactly the additions of `count` attn_axpy calls in i order. With AVX-512 (float)
// y is held in registers across the rows, 64 columns at a time, instead of being loaded and
// stored once per row (the attention's rows are short, so that round trip through memory was
// what it waited on). write: y is not read, the sum starts from zeros (the bits of zeroing y
// first, without the pass).
template <typename T>
inline void attn_axpy_rows(T* y, const T* a, const T* x, int64_t stride, int64_t count, int64_t n,
                           bool write = false) {
#if defined(__AVX512F__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>) {
        for (int64_t k0 = 0; k0 < n; k0 += 64) {
            const int64_t w = std::min<int64_t>(64, n - k0);
            const Tile64 tile(w);
            float* yk = y + k0;
            const __m512 z = _mm512_setzero_ps();
            __m512 y0 = write ? z : tile.load(0, yk);
            __m512 y1 = write ? z : tile.load(1, yk + 16);
            __m512 y2 = write ? z : tile.load(2, yk + 32);
            __m512 y3 = write ? z : tile.load(3, yk + 48);
            for (int64_t i = 0; i < count; ++i) {
                const __m512 ai = _mm512_set1_ps(a[i]);
                const float* xi = x + i * stride + k0;
                y0 = _mm512_fmadd_ps(ai, tile.load(0, xi), y0);
                y1 = _mm512_fmadd_ps(ai, tile.load(1, xi + 16), y1);
                y2 = _mm512_fmadd_ps(ai, tile.load(2, xi + 32), y2);
                y3 = _mm512_fmadd_ps(ai, tile.load(3, xi + 48), y3);
            }
            tile.store(0, yk, y0);
            tile.store(1, yk + 16, y1);
            tile.store(2, yk + 32, y2);
            tile.store(3, yk + 48, y3);
        }
        return;
    }
#endif
    if (write) std::fill(y, y + n, T(0));
    for (int64_t i = 0; i < count; ++i) attn_axpy(a[i], x + i * stride, y, n);
}

// qoff (B+1) from off (B+1) and first_query (B): qoff[0] = 0, qoff[b+1] = qoff[b] + len_b - fq_b.
// Returns NQ.
inline int64_t attention_query_offsets(const int64_t* off, const int64_t* first_query, int64_t B,
                                       int64_t* qoff) {
    qoff[0] = 0;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t len = off[b + 1] - off[b];
        assert(0 <= first_query[b] && first_query[b] <= len);
        qoff[b + 1] = qoff[b] + len - first_query[b];
    }
    return qoff[B];
}

// probs_off (B+1) for the packed probability layout above; returns the total number of entries
// each of probs / probs_drop must hold.
inline int64_t attention_probs_offsets(const int64_t* off, const int64_t* first_query, int64_t B,
                                       int64_t NH, int64_t* probs_off) {
    probs_off[0] = 0;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t len = off[b + 1] - off[b];
        probs_off[b + 1] = probs_off[b] + NH * (attn_tri(len) - attn_tri(first_query[b]));
    }
    return probs_off[B];
}

// Dropout on the attention probabilities: which stream, which draws.
//   Keep decision of element e (see attn_dropout_keep) in stream (a, b, c) of `rng`
//   (rng should be keyed with RngPurpose::dropout; a, b, c e.g. round, client, step*L + layer).
//   Element index of (sequence b, head h, query t, key j):
//       e = row_base[b] + (h * T_max + t) * T_max + j
//   Intended row_base[b] = batch_row * NH * T_max * T_max, batch_row the sequence's row in the
//   whole training batch, so decisions never depend on how the batch is chunked and equal those of
//   the padded (B, NH, T_max, T_max) formulation of the reference.
struct AttentionDropout {
    double p = 0;                       // drop probability; 0 -> identity and no draws at all
    const KeyedRng* rng = nullptr;      // required when p > 0
    uint32_t a = 0, b = 0, c = 0;       // stream counters
    const uint64_t* row_base = nullptr; // (B) element index of (b, h=0, t=0, j=0); see above
    int64_t T_max = 0;                  // padded length used in the element index (>= every len)
};

// Keep decision for element e: u = word e%4 of Philox block (a, b, c, e/4); DROPPED iff
// u < round(p * 2^32), so P(keep) = 1 - p up to 2^-33 (the same rule as dropout_keep in
// dropout.hpp, so every dropout of the model draws alike). The block counter is 32 bits, so
// e < 2^34 (about 1.7e10 elements: fine for any batch); asserted.
inline bool attn_dropout_keep(const KeyedRng& rng, uint32_t a, uint32_t b, uint32_t c, uint64_t e,
                              double p) {
    assert((e >> 34) == 0 && p >= 0.0 && p <= 1.0);
    const uint32_t u = rng.block(a, b, c, uint32_t(e >> 2))[e & 3];
    return uint64_t(u) >= uint64_t(std::llround(std::ldexp(p, 32)));
}

// One causal row's softmax and probability dropout (attention_forward, read_attention_forward):
// p_row holds the row's n scores and max_s their maximum; afterwards p_row is their softmax (max
// subtracted, as torch.softmax) and pd_row its dropout, or a copy when p == 0 (pd_row may then
// alias p_row). Row (sequence b, head h, query t) draws for key j the element
// e = row_base[b] + (h * T_max + t) * T_max + j: the decisions of attn_dropout_keep(e), one
// Philox block for the (up to) 4 consecutive e that share it.
template <typename T> struct AttnRowSoftmax {
    const AttentionDropout& drop;
    // 1/(1-p); p = 1 drops everything (PyTorch returns zeros), so any finite scale will do.
    T scale;
    uint64_t threshold; // see attn_dropout_keep
    explicit AttnRowSoftmax(const AttentionDropout& d)
        : drop(d), scale(d.p < 1 ? T(1.0 / (1.0 - d.p)) : T(0)),
          threshold(uint64_t(std::llround(std::ldexp(d.p, 32)))) {}
    void operator()(T* p_row, T* pd_row, int64_t n, T max_s, int64_t b, int64_t h,
                    int64_t t) const {
        T sum = 0;
        for (int64_t j = 0; j < n; ++j) {
            p_row[j] = std::exp(p_row[j] - max_s);
            sum += p_row[j];
        }
        for (int64_t j = 0; j < n; ++j) p_row[j] /= sum;
        if (drop.p > 0) {
            const uint64_t e0 = drop.row_base[b] + uint64_t((h * drop.T_max + t) * drop.T_max);
            PhiloxCounter bits{};
            uint64_t block = UINT64_MAX;
            for (int64_t j = 0; j < n; ++j) {
                const uint64_t e = e0 + uint64_t(j);
                assert((e >> 34) == 0);
                if ((e >> 2) != block) {
                    block = e >> 2;
                    bits = drop.rng->block(drop.a, drop.b, drop.c, uint32_t(block));
                }
                pd_row[j] = uint64_t(bits[e & 3]) >= threshold ? p_row[j] * scale : T(0);
            }
        } else if (pd_row != p_row) {
            for (int64_t j = 0; j < n; ++j) pd_row[j] = p_row[j];
        }
    }
};

// Forward.
// q (NQ,C), k (N,C), v (N,C) -> out (NQ,C); saves probs (softmax output, pre-dropout) and
// probs_drop (post-dropout, what multiplies V), both in the packed layout above. probs_drop may
// alias probs when drop.p == 0 (e.g. evaluation).
//   S[t,j]  = <q_h[t], k_h[j]> / sqrt(HS)                  j <= t   (RecBole: QK^T / sqrt(HS))
//   P[t,:]  = softmax_j S[t,j]
//   Pd[t,j] = P[t,j] * keep(e) / (1-p)                     inverted dropout (nn.Dropout)
//   out_h[t] = sum_j Pd[t,j] v_h[j]                         heads concatenated along C
// Masking: RecBole adds -10000 where key j > t or seq_j is padding. With true lengths and right
// padding, every padding key sits at j >= len_b > t for every computed query, so the causal mask
// removes exactly the same keys. A masked logit is S - 10000 with |S| << 10000; after the softmax's
// max subtraction, exp(-10000 + O(1)) underflows to exactly 0 in float (and double), so the masked
// keys contribute exact zeros to the sum and to P·V: excluding them is equivalent in effect.
template <typename T>
void attention_forward(T* out, T* probs, T* probs_drop, const T* q, const T* k, const T* v,
                       const int64_t* off, const int64_t* qoff, const int64_t* first_query,
                       const int64_t* probs_off, int64_t B, int64_t C, int64_t NH,
                       const AttentionDropout& drop) {
    const prof::PhaseScope timer(prof::Phase::attention_fwd);
    const int64_t HS = C / NH;
    assert(HS * NH == C);
    const T sqrt_hs = T(std::sqrt(double(HS)));
    [[maybe_unused]] const bool dropout = drop.p > 0; // asserts only
    assert(!dropout || (drop.rng && drop.row_base && probs_drop != probs));
    const AttnRowSoftmax<T> softmax_dropout(drop);
    for (int64_t b = 0; b < B; ++b) {
        const int64_t len = off[b + 1] - off[b], fq = first_query[b];
        assert(qoff[b + 1] - qoff[b] == len - fq);
        assert(!dropout || len <= drop.T_max);
        const int64_t S_b = attn_tri(len) - attn_tri(fq);
        const T* kb = k + off[b] * C;
        const T* vb = v + off[b] * C;
        if (const int64_t n = b + kAttnPrefetch; n < B) {
            prefetch_rows(k, off[n], off[n + 1], C);
            prefetch_rows(v, off[n], off[n + 1], C);
            prefetch_rows(q, qoff[n], qoff[n + 1], C);
        }
        for (int64_t h = 0; h < NH; ++h) {
            for (int64_t t = fq; t < len; ++t) {
                const int64_t row = qoff[b] + t - fq; // packed query/output row
                const int64_t pidx = probs_off[b] + h * S_b + attn_tri(t) - attn_tri(fq);
                T* p_row = probs + pidx;       // (t+1) P[t, 0..t]
                T* pd_row = probs_drop + pidx; // (t+1) Pd[t, 0..t]
                const T* q_t = q + row * C + h * HS;
                // Scores and a numerically safe softmax (max subtracted, as torch.softmax).
                T max_s = -std::numeric_limits<T>::infinity();
                for (int64_t j = 0; j <= t; ++j) {
                    p_row[j] = attn_dot(q_t, kb + j * C + h * HS, HS) / sqrt_hs;
                    max_s = std::max(max_s, p_row[j]);
                }
                softmax_dropout(p_row, pd_row, t + 1, max_s, b, h, t);
                // Context: out_h[t] = sum_j Pd[t,j] v_h[j].
                attn_axpy_rows(out + row * C + h * HS, pd_row, vb + h * HS, C, t + 1, HS, true);
            }
        }
    }
}

// Backward: dout (NQ,C), saved probs / probs_drop, q (NQ,C), k (N,C), v (N,C)
//   -> dq (NQ,C) +=, dk (N,C) +=, dv (N,C) += ; without accumulate they are written instead (no
//   separate zeroing pass over the buffers).
// With m_j = keep_j/(1-p) (so Pd_j = m_j P_j) and dPd_j = <dout_h[t], v_h[j]>:
//   dv_h[j]  += Pd[t,j] dout_h[t]                             inverts out = sum_j Pd v_j
//   dP_j      = m_j dPd_j                                      inverts the dropout
//   dS_j      = P_j (dP_j - sum_k P_k dP_k)                    inverts the softmax
//             = Pd_j dPd_j - P_j sum_k Pd_k dPd_k              (P_j m_j = Pd_j: no mask needed)
//   dq_h[t]  += sum_j dS_j / sqrt(HS) k_h[j],  dk_h[j] += dS_j / sqrt(HS) q_h[t]   inverts S
// No random draws: the dropout mask is carried by probs_drop.
// Per (sequence, head), two passes: queries t first (dPd, dS into a triangle of scratch, dq[t]
// summed over keys in registers), then keys j (dv[j] and dk[j] summed over queries t = j..len-1
// in registers, attn_axpy_rows). Per element these are exactly the additions of one axpy per
// (t, j) pair in t order, so the bits of the pairwise loop (the test's scheme), without its
// load and store of dk[j] and dv[j] per pair.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* probs_drop,
                        const T* q, const T* k, const T* v, const int64_t* off, const int64_t* qoff,
                        const int64_t* first_query, const int64_t* probs_off, int64_t B, int64_t C,
                        int64_t NH, bool accumulate = true) {
    const prof::PhaseScope timer(prof::Phase::attention_bwd);
    const int64_t HS = C / NH;
    assert(HS * NH == C);
    const T sqrt_hs = T(std::sqrt(double(HS)));
    const bool write = !accumulate;
    T d_pd[kAttnMaxLen]; // dPd[t, 0..t] of the current query row
    T coef[kAttnMaxLen]; // one key's coefficients over its queries t
    // dS[t, j] / sqrt(HS) of one (sequence, head), same packed triangle as probs (per thread:
    // up to tri(kAttnMaxLen) entries, grown once).
    thread_local std::vector<T> d_s_tri;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t len = off[b + 1] - off[b], fq = first_query[b];
        assert(len <= kAttnMaxLen && qoff[b + 1] - qoff[b] == len - fq);
        const int64_t S_b = attn_tri(len) - attn_tri(fq);
        if (int64_t(d_s_tri.size()) < S_b) d_s_tri.resize(size_t(S_b));
        T* d_s = d_s_tri.data();
        const T* kb = k + off[b] * C;
        const T* vb = v + off[b] * C;
        T* dkb = dk + off[b] * C;
        T* dvb = dv + off[b] * C;
        const T* dob = dout + qoff[b] * C; // query rows t = fq .. len-1
        const T* qb = q + qoff[b] * C;
        if (const int64_t n = b + kAttnPrefetch; n < B) {
            prefetch_rows(k, off[n], off[n + 1], C);
            prefetch_rows(v, off[n], off[n + 1], C);
            prefetch_rows(q, qoff[n], qoff[n + 1], C);
            prefetch_rows(dout, qoff[n], qoff[n + 1], C);
        }
        for (int64_t h = 0; h < NH; ++h) {
            const T* p_h = probs + probs_off[b] + h * S_b;
            const T* pd_h = probs_drop + probs_off[b] + h * S_b;
            // Queries: dPd, dS (kept for the keys' pass), dq[t].
            for (int64_t t = fq; t < len; ++t) {
                const int64_t row = t - fq;
                const int64_t pi = attn_tri(t) - attn_tri(fq); // row t in the triangle
                const T* p_row = p_h + pi;
                const T* pd_row = pd_h + pi;
                const T* do_t = dob + row * C + h * HS;
                T pd_dot = 0; // sum_k Pd_k dPd_k
                for (int64_t j = 0; j <= t; ++j) {
                    d_pd[j] = attn_dot(do_t, vb + j * C + h * HS, HS);
                    pd_dot = attn_madd(pd_row[j], d_pd[j], pd_dot);
                }
                T* ds_row = d_s + pi;
                for (int64_t j = 0; j <= t; ++j)
                    ds_row[j] = attn_madd(pd_row[j], d_pd[j], -(p_row[j] * pd_dot)) / sqrt_hs;
                attn_axpy_rows(dq + (qoff[b] + row) * C + h * HS, ds_row, kb + h * HS, C, t + 1, HS,
                               write);
            }
            // Keys: dv[j] = sum_t Pd[t,j] dout[t], dk[j] = sum_t dS[t,j] q[t], t ascending.
            for (int64_t j = 0; j < len; ++j) {
                const int64_t t0 = std::max(j, fq), count = len - t0;
                for (int64_t t = t0; t < len; ++t)
                    coef[t - t0] = pd_h[attn_tri(t) - attn_tri(fq) + j];
                attn_axpy_rows(dvb + j * C + h * HS, coef, dob + (t0 - fq) * C + h * HS, C, count,
                               HS, write);
                for (int64_t t = t0; t < len; ++t)
                    coef[t - t0] = d_s[attn_tri(t) - attn_tri(fq) + j];
                attn_axpy_rows(dkb + j * C + h * HS, coef, qb + (t0 - fq) * C + h * HS, C, count,
                               HS, write);
            }
        }
    }
}

// Plain-loop reference over the PADDED formulation, exactly as RecBole computes it: every
// sequence has T_max positions, padding on the right (positions >= len[b]), all T_max queries,
// additive mask 0 / -10000 for (j <= t and j < len[b]) / otherwise, softmax over all T_max keys,
// dropout with the same element index e = row_base[b] + (h*T_max + t)*T_max + j.
// q_pad, k_pad, v_pad (B,T_max,C), len (B) -> out_pad (B,T_max,C), probs_pad (B,NH,T_max,T_max)
// (pre-dropout). Rows at padded query positions are computed (as RecBole does) but meaningless.
template <typename T>
void attention_forward_reference(T* out_pad, T* probs_pad, const T* q_pad, const T* k_pad,
                                 const T* v_pad, const int64_t* len, int64_t B, int64_t T_max,
                                 int64_t C, int64_t NH, const AttentionDropout& drop) {
    const int64_t HS = C / NH;
    const T sqrt_hs = T(std::sqrt(double(HS)));
    const T scale = drop.p < 1 ? T(1.0 / (1.0 - drop.p)) : T(0);
    assert(drop.p == 0 || (drop.rng && drop.row_base && drop.T_max == T_max));
    std::vector<T> s(T_max);
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t h = 0; h < NH; ++h) {
            for (int64_t t = 0; t < T_max; ++t) {
                const T* qr = q_pad + (b * T_max + t) * C + h * HS;
                for (int64_t j = 0; j < T_max; ++j) {
                    const T* kr = k_pad + (b * T_max + j) * C + h * HS;
                    T dot = 0;
                    for (int64_t i = 0; i < HS; ++i) dot += qr[i] * kr[i];
                    const T mask = (j <= t && j < len[b]) ? T(0) : T(-10000);
                    s[j] = dot / sqrt_hs + mask;
                }
                T max_s = s[0];
                for (int64_t j = 1; j < T_max; ++j) max_s = std::max(max_s, s[j]);
                T sum = 0;
                for (int64_t j = 0; j < T_max; ++j) sum += (s[j] = std::exp(s[j] - max_s));
                T* pr = probs_pad + ((b * NH + h) * T_max + t) * T_max;
                for (int64_t j = 0; j < T_max; ++j) pr[j] = s[j] / sum;
                T* orow = out_pad + (b * T_max + t) * C + h * HS;
                for (int64_t i = 0; i < HS; ++i) orow[i] = 0;
                for (int64_t j = 0; j < T_max; ++j) {
                    T pd = pr[j];
                    if (drop.p > 0) {
                        const uint64_t e = drop.row_base[b] + uint64_t((h * T_max + t) * T_max + j);
                        pd = attn_dropout_keep(*drop.rng, drop.a, drop.b, drop.c, e, drop.p)
                                 ? pd * scale
                                 : T(0);
                    }
                    const T* vr = v_pad + (b * T_max + j) * C + h * HS;
                    for (int64_t i = 0; i < HS; ++i) orow[i] += pd * vr[i];
                }
            }
        }
    }
}

} // namespace pfcr
