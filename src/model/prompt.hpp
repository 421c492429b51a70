// PFCR's two prompt-tuning heads (docs/METHOD.md §8; the authors' model/light_prompt.py seq_prompt
// and model/full_prompt.py id_prompt) on top of the encoder's sequence representation s:
//   prompt-light  o = s + MHA(s, P, P)
//   prompt-full   p = MHA(s, P, P); u = ID-branch Transformer (item-ID embedding + the encoder's
//                 position embedding -> LayerNorm -> dropout -> L layers, read at len-1);
//                 o = Dropout(LN(concat_layer([p; u; s])))   (the SAME LayerNorm module twice)
// MHA = torch.nn.MultiheadAttention(C, PH) with batch_first = False, called on (B,1,C) queries:
// every row's query attends to the NP prompts on its own; no mask, no attention dropout.
// Forward and backward side by side, built from the existing kernels (linear, layernorm,
// dropout, the encoder for the ID branch). Not here: the loss, the encoder, threads, Adam.
//
// The work splits into what every row shares and what is per row, so that a trainer can run
// rows in parallel chunks and still reduce in a fixed order:
//   batch level, once:  k, v = prompt_kv_forward(P)                       (NP,C) each
//   per row chunk:      prompt_head_forward / prompt_head_backward         (B rows)
//   batch level, once:  dk, dv = prompt_attention_kv_backward(all rows)   (fixed row blocks OK)
//                       dP, d in_proj[k,v] = prompt_kv_backward(dk, dv)
//                       d item_embedding  = item_embedding_backward(d_id_emb tokens)
//
// Letters: B rows, C hidden, NP prompts, PH prompt heads, PS = C/PH head size, N packed tokens,
// V1 rows of the ID embedding.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "model/dropout.hpp"
#include "model/encoder.hpp"
#include "model/layernorm.hpp"
#include "model/linear.hpp"
#include "model/params.hpp"

namespace pfcr {

// Dropout streams of the head, disjoint from the encoder's sites 0 .. 3L: the ID branch's
// encoder sites are offset by kIdBranchSiteBase; the fusion dropout is one more site.
inline constexpr uint32_t kIdBranchSiteBase = 1u << 16;
inline constexpr uint32_t kFusionDropoutSite = 1u << 17;

// Pointers to the head's tensors in one flat buffer of a ParamLayout (parameters or gradients).
// Null: not in the buffer (prompt-light has no fusion / ID branch; a gradient buffer covering
// [first, end) of the layout has no frozen encoder position embedding).
template <typename P> struct PromptTensors {
    P* prompts = nullptr; // (NP,C)  prompts
    P* in_w = nullptr;    // (3C,C)  attn_layer.in_proj_weight: rows [0,C) q, [C,2C) k, [2C,3C) v
    P* in_b = nullptr;    // (3C)    attn_layer.in_proj_bias
    P* out_w = nullptr;   // (C,C)   attn_layer.out_proj.weight
    P* out_b = nullptr;   // (C)     attn_layer.out_proj.bias
    P* fuse_w = nullptr;  // (C,3C)  concat_layer.weight
    P* fuse_b = nullptr;  // (C)     concat_layer.bias
    // The ID branch as an encoder: code_table = item_embedding.weight (V1,C) (looked up through
    // identity "codes", M = 1), pos = the ENCODER's position_embedding.weight, ln_w/ln_b = the
    // head's LayerNorm (also the fusion LayerNorm), layers = item_trm_encoder.layer.*.
    EncoderTensors<P> id;
};

// Binds the head of `layout` in a buffer that holds layout elements [first, end) starting at
// `base`; tensors outside that range are null.
template <typename P>
PromptTensors<P> bind_prompt_tensors(P* base, const ParamLayout& layout, int64_t first = 0,
                                     int64_t end = std::numeric_limits<int64_t>::max()) {
    const auto ptr = [&](const std::string& key) -> P* {
        if (!layout.contains(key)) return nullptr;
        const auto& e = layout.at(key);
        return e.offset < first || e.offset >= end ? nullptr : base + (e.offset - first);
    };
    PromptTensors<P> t;
    t.prompts = ptr("prompt/prompts");
    t.in_w = ptr("prompt/attn_layer.in_proj_weight");
    t.in_b = ptr("prompt/attn_layer.in_proj_bias");
    t.out_w = ptr("prompt/attn_layer.out_proj.weight");
    t.out_b = ptr("prompt/attn_layer.out_proj.bias");
    if (layout.shape().head != HeadMode::prompt_full) return t;
    t.fuse_w = ptr("prompt/concat_layer.weight");
    t.fuse_b = ptr("prompt/concat_layer.bias");
    t.id.code_table = ptr("prompt/item_embedding.weight");
    t.id.pos = ptr("position_embedding.weight");
    t.id.ln_w = ptr("prompt/LayerNorm.weight");
    t.id.ln_b = ptr("prompt/LayerNorm.bias");
    for (int64_t l = 0; l < layout.shape().layers; ++l) {
        const std::string p = "prompt/item_trm_encoder.layer." + std::to_string(l) + ".";
        const std::string a = p + "multi_head_attention.", f = p + "feed_forward.";
        t.id.layers.push_back(
            {ptr(a + "query.weight"), ptr(a + "query.bias"), ptr(a + "key.weight"),
             ptr(a + "key.bias"), ptr(a + "value.weight"), ptr(a + "value.bias"),
             ptr(a + "dense.weight"), ptr(a + "dense.bias"), ptr(a + "LayerNorm.weight"),
             ptr(a + "LayerNorm.bias"), ptr(f + "dense_1.weight"), ptr(f + "dense_1.bias"),
             ptr(f + "dense_2.weight"), ptr(f + "dense_2.bias"), ptr(f + "LayerNorm.weight"),
             ptr(f + "LayerNorm.bias")});
    }
    return t;
}

// The ID branch runs encoder_forward with M = 1 "codes" = the item ids themselves: the code mean
// of one row is that row exactly, and code row 0 (skipped in backward) is the padding item,
// which is nn.Embedding(V1, C, padding_idx=0).
inline EncoderHyper id_branch_hyper(const EncoderHyper& hp) {
    EncoderHyper h = hp;
    h.shape.code_dim = 1;
    return h;
}
// id_codes (V1,1) = 0 .. V1-1 for the ID branch (see id_branch_hyper).
inline std::vector<int32_t> identity_item_codes(int64_t V1) {
    std::vector<int32_t> c(static_cast<size_t>(V1));
    for (int64_t i = 0; i < V1; ++i) c[size_t(i)] = int32_t(i);
    return c;
}

namespace detail {
// (rows, cols) row-major view with row stride `stride` (one head's block of a (B,PH,NP) array).
template <typename T>
Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>> strided(T* p, int64_t rows, int64_t cols,
                                                       int64_t stride) {
    return {p, rows, cols, Eigen::OuterStride<>(stride)};
}
template <typename T>
Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>> strided(const T* p, int64_t rows, int64_t cols,
                                                             int64_t stride) {
    return {p, rows, cols, Eigen::OuterStride<>(stride)};
}
} // namespace detail

// ------------------------------------------------------------------ prompt attention (MHA)

// Batch level. prompts (NP,C), in_w (3C,C), in_b (3C) -> k (NP,C), v (NP,C)
//   k = P Wk^T + bk,  v = P Wv^T + bv      (Wk, Wv = rows [C,2C), [2C,3C) of in_proj_weight)
template <typename T>
void prompt_kv_forward(T* k, T* v, const T* prompts, const T* in_w, const T* in_b, int64_t NP,
                       int64_t C) {
    linear_forward(k, prompts, in_w + C * C, in_b + C, NP, C, C);
    linear_forward(v, prompts, in_w + 2 * C * C, in_b + 2 * C, NP, C, C);
}

// dk (NP,C), dv (NP,C), prompts (NP,C), in_w (3C,C) -> d_prompts (NP,C) +=,
// d_in_w rows [C,3C) +=, d_in_b [C,3C) +=   (inverts the two linear maps above; any may be null)
template <typename T>
void prompt_kv_backward(T* d_prompts, T* d_in_w, T* d_in_b, const T* dk, const T* dv,
                        const T* prompts, const T* in_w, int64_t NP, int64_t C) {
    linear_backward(d_prompts, d_in_w ? d_in_w + C * C : nullptr, d_in_b ? d_in_b + C : nullptr, dk,
                    prompts, in_w + C * C, NP, C, C);
    linear_backward(d_prompts, d_in_w ? d_in_w + 2 * C * C : nullptr,
                    d_in_b ? d_in_b + 2 * C : nullptr, dv, prompts, in_w + 2 * C * C, NP, C, C);
}

// Per-row state of the attention over the prompts for B rows (caller-owned; a trainer points
// them at a chunk's rows of batch-wide arrays, since the batch-level backward reads them all).
template <typename T> struct PromptAttnRows {
    T* q = nullptr;        // (B,C)     query projection of s
    T* probs = nullptr;    // (B,PH,NP) softmax over the prompts, per head
    T* ctx = nullptr;      // (B,C)     heads' contexts, concatenated
    T* d_ctx = nullptr;    // (B,C)     backward: dLoss/d ctx
    T* d_scores = nullptr; // (B,PH,NP) backward: dLoss/d <q_h, k_h[n]> (the 1/sqrt(PS) folded in)
    T* dq = nullptr;       // (B,C)     backward scratch
};

// s (B,C), k (NP,C), v (NP,C), in_w (3C,C), in_b (3C), out_w (C,C), out_b (C) -> out (B,C);
// fills r.q, r.probs, r.ctx.  For each row b and head h (PyTorch's MHA, no dropout):
//   q = s Wq^T + bq
//   A_h[b,n] = softmax_n( <q_h[b], k_h[n]> / sqrt(PS) )
//   ctx_h[b] = sum_n A_h[b,n] v_h[n]
//   out = ctx Wo^T + bo
// The scores and contexts are per-head GEMMs over strided head blocks; see _reference below.
template <typename T>
void prompt_attention_forward(T* out, const PromptAttnRows<T>& r, const T* s, const T* k,
                              const T* v, const T* in_w, const T* in_b, const T* out_w,
                              const T* out_b, int64_t B, int64_t NP, int64_t C, int64_t PH) {
    using detail::strided;
    const int64_t PS = C / PH;
    assert(PS * PH == C);
    const T sqrt_ps = T(std::sqrt(double(PS)));
    linear_forward(r.q, s, in_w, in_b, B, C, C);
    const auto q = mat(static_cast<const T*>(r.q), B, C);
    const auto km = mat(k, NP, C), vm = mat(v, NP, C);
    for (int64_t h = 0; h < PH; ++h)
        strided(r.probs + h * NP, B, NP, PH * NP).noalias() =
            q.middleCols(h * PS, PS) * km.middleCols(h * PS, PS).transpose();
    for (int64_t i = 0; i < B * PH; ++i) { // softmax of every (row, head), max subtracted
        T* a = r.probs + i * NP;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t n = 0; n < NP; ++n) mx = std::max(mx, a[n] /= sqrt_ps);
        T sum = 0;
        for (int64_t n = 0; n < NP; ++n) sum += (a[n] = std::exp(a[n] - mx));
        for (int64_t n = 0; n < NP; ++n) a[n] /= sum;
    }
    for (int64_t h = 0; h < PH; ++h)
        mat(r.ctx, B, C).middleCols(h * PS, PS).noalias() =
            strided(static_cast<const T*>(r.probs) + h * NP, B, NP, PH * NP) *
            vm.middleCols(h * PS, PS);
    linear_forward(out, r.ctx, out_w, out_b, B, C, C);
}

// Per-row backward. dout (B,C) -> ds (B,C) +=, d_in_w rows [0,C) +=, d_in_b [0,C) +=,
// d_out_w (C,C) +=, d_out_b (C) +=  (gradient pointers may be null); overwrites r.d_ctx,
// r.d_scores (read by prompt_attention_kv_backward) and r.dq. Inverts, in reverse order:
//   out = ctx Wo^T + bo        =>  d_ctx = dout Wo,  dWo += dout^T ctx,  dbo += sum_b dout
//   ctx_h = A_h v_h            =>  dA_h = d_ctx_h v_h^T          (dv: kv_backward)
//   A = softmax(S)             =>  dS = A (dA - <A, dA>)        (per row and head)
//   S = q_h k_h^T / sqrt(PS)   =>  d_scores = dS / sqrt(PS),  dq_h = d_scores_h k_h  (dk:
//   kv_backward) q = s Wq^T + bq            =>  ds += dq Wq,  dWq += dq^T s,  dbq += sum_b dq
template <typename T>
void prompt_attention_backward(T* ds, T* d_in_w, T* d_in_b, T* d_out_w, T* d_out_b, const T* dout,
                               const PromptAttnRows<T>& r, const T* s, const T* k, const T* v,
                               const T* in_w, const T* out_w, int64_t B, int64_t NP, int64_t C,
                               int64_t PH) {
    using detail::strided;
    const int64_t PS = C / PH;
    const T sqrt_ps = T(std::sqrt(double(PS)));
    std::fill(r.d_ctx, r.d_ctx + B * C, T(0));
    linear_backward(r.d_ctx, d_out_w, d_out_b, dout, r.ctx, out_w, B, C, C);
    const auto dctx = mat(static_cast<const T*>(r.d_ctx), B, C);
    const auto km = mat(k, NP, C), vm = mat(v, NP, C);
    for (int64_t h = 0; h < PH; ++h) // dA_h, kept in d_scores until the softmax backward
        strided(r.d_scores + h * NP, B, NP, PH * NP).noalias() =
            dctx.middleCols(h * PS, PS) * vm.middleCols(h * PS, PS).transpose();
    for (int64_t i = 0; i < B * PH; ++i) {
        const T* a = r.probs + i * NP;
        T* d = r.d_scores + i * NP;
        T dot = 0;
        for (int64_t n = 0; n < NP; ++n) dot += a[n] * d[n];
        for (int64_t n = 0; n < NP; ++n) d[n] = a[n] * (d[n] - dot) / sqrt_ps;
    }
    for (int64_t h = 0; h < PH; ++h)
        mat(r.dq, B, C).middleCols(h * PS, PS).noalias() =
            strided(static_cast<const T*>(r.d_scores) + h * NP, B, NP, PH * NP) *
            km.middleCols(h * PS, PS);
    linear_backward(ds, d_in_w, d_in_b, r.dq, s, in_w, B, C, C);
}

// Batch level, after every row's backward: rows' probs, d_scores (B,PH,NP), q, d_ctx (B,C)
// -> dk (NP,C) +=, dv (NP,C) += for prompt rows [n0, n1) only (so that fixed row blocks can
// run in parallel and give the same bits for any thread count):
//   ctx_h = A_h v_h   =>  dv_h = A_h^T d_ctx_h;      S = q_h k_h^T  =>  dk_h = d_scores_h^T q_h
template <typename T>
void prompt_attention_kv_backward(T* dk, T* dv, const PromptAttnRows<T>& r, int64_t B, int64_t NP,
                                  int64_t C, int64_t PH, int64_t n0, int64_t n1) {
    using detail::strided;
    const int64_t PS = C / PH, n = n1 - n0;
    const auto q = mat(static_cast<const T*>(r.q), B, C);
    const auto dctx = mat(static_cast<const T*>(r.d_ctx), B, C);
    for (int64_t h = 0; h < PH; ++h) {
        const auto a = strided(static_cast<const T*>(r.probs) + h * NP + n0, B, n, PH * NP);
        const auto d = strided(static_cast<const T*>(r.d_scores) + h * NP + n0, B, n, PH * NP);
        mat(dv, NP, C).block(n0, h * PS, n, PS).noalias() +=
            a.transpose() * dctx.middleCols(h * PS, PS);
        mat(dk, NP, C).block(n0, h * PS, n, PS).noalias() +=
            d.transpose() * q.middleCols(h * PS, PS);
    }
}

// Plain-loop reference of prompt_attention_forward (same signature and results).
template <typename T>
void prompt_attention_forward_reference(T* out, const PromptAttnRows<T>& r, const T* s, const T* k,
                                        const T* v, const T* in_w, const T* in_b, const T* out_w,
                                        const T* out_b, int64_t B, int64_t NP, int64_t C,
                                        int64_t PH) {
    const int64_t PS = C / PH;
    const T sqrt_ps = T(std::sqrt(double(PS)));
    linear_forward_reference(r.q, s, in_w, in_b, B, C, C);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < PH; ++h) {
            T* a = r.probs + (b * PH + h) * NP;
            T mx = -std::numeric_limits<T>::infinity();
            for (int64_t n = 0; n < NP; ++n) {
                T dot = 0;
                for (int64_t i = 0; i < PS; ++i)
                    dot += r.q[b * C + h * PS + i] * k[n * C + h * PS + i];
                a[n] = dot / sqrt_ps;
                mx = std::max(mx, a[n]);
            }
            T sum = 0;
            for (int64_t n = 0; n < NP; ++n) sum += (a[n] = std::exp(a[n] - mx));
            for (int64_t i = 0; i < PS; ++i) {
                T c = 0;
                for (int64_t n = 0; n < NP; ++n) c += a[n] / sum * v[n * C + h * PS + i];
                r.ctx[b * C + h * PS + i] = c;
            }
            for (int64_t n = 0; n < NP; ++n) a[n] /= sum;
        }
    linear_forward_reference(out, r.ctx, out_w, out_b, B, C, C);
}

// ------------------------------------------------------------------ prompt-full fusion

// Per-row state of the fusion for B rows (caller-owned).
template <typename T> struct PromptFusionRows {
    T* x = nullptr;          // (B,3C) [p; u; s]  concat_layer input
    T* y = nullptr;          // (B,C)  concat_layer output = LayerNorm input
    T* mean = nullptr;       // (B)
    T* rstd = nullptr;       // (B)
    uint8_t* mask = nullptr; // (B,C)  dropout keep mask
    T* dy = nullptr;         // (B,C)  backward scratch
    T* dx = nullptr;         // (B,3C) backward scratch
};

// p, u, s (B,C), fuse_w (C,3C), fuse_b (C), ln_w, ln_b (C) -> o (B,C):
//   x = [p; u; s],  y = x Wf^T + bf,  o = Dropout(LN(y))
// Dropout element (row b, channel c) has index row_base[b] + c (row_base (B) of batch rows).
template <typename T>
void prompt_fusion_forward(T* o, const PromptFusionRows<T>& f, const T* p, const T* u, const T* s,
                           const T* fuse_w, const T* fuse_b, const T* ln_w, const T* ln_b,
                           int64_t B, int64_t C, T eps, double p_drop, const KeyedRng& rng,
                           uint32_t a, uint32_t b, uint32_t c, const uint64_t* row_base) {
    for (int64_t r = 0; r < B; ++r) {
        std::copy(p + r * C, p + (r + 1) * C, f.x + r * 3 * C);
        std::copy(u + r * C, u + (r + 1) * C, f.x + r * 3 * C + C);
        std::copy(s + r * C, s + (r + 1) * C, f.x + r * 3 * C + 2 * C);
    }
    linear_forward(f.y, f.x, fuse_w, fuse_b, B, 3 * C, C);
    layernorm_forward(o, f.mean, f.rstd, f.y, ln_w, ln_b, B, C, eps);
    dropout_forward(o, f.mask, o, B, C, p_drop, rng, a, b, c, row_base);
}

// d_o (B,C) -> dp, du, ds (B,C) +=, d_fuse_w +=, d_fuse_b +=, d_ln_w +=, d_ln_b += (gradient
// pointers of parameters may be null). Inverts the three steps of prompt_fusion_forward.
template <typename T>
void prompt_fusion_backward(T* dp, T* du, T* ds, T* d_fuse_w, T* d_fuse_b, T* d_ln_w, T* d_ln_b,
                            const T* d_o, const PromptFusionRows<T>& f, const T* fuse_w,
                            const T* ln_w, int64_t B, int64_t C, double p_drop) {
    std::fill(f.dx, f.dx + B * 3 * C, T(0)); // dz first (B,C), then dx
    dropout_backward(f.dx, d_o, f.mask, B * C, p_drop);
    std::fill(f.dy, f.dy + B * C, T(0));
    layernorm_backward(f.dy, d_ln_w, d_ln_b, f.dx, f.y, ln_w, f.mean, f.rstd, B, C);
    std::fill(f.dx, f.dx + B * 3 * C, T(0));
    linear_backward(f.dx, d_fuse_w, d_fuse_b, f.dy, f.x, fuse_w, B, 3 * C, C);
    for (int64_t r = 0; r < B; ++r) // x = [p; u; s]
        for (int64_t i = 0; i < C; ++i) {
            dp[r * C + i] += f.dx[r * 3 * C + i];
            du[r * C + i] += f.dx[r * 3 * C + C + i];
            ds[r * C + i] += f.dx[r * 3 * C + 2 * C + i];
        }
}

// ------------------------------------------------------------------ the whole head

// Per-thread scratch of the head on one row chunk (vectors only grow).
template <typename T> struct PromptWorkspace {
    int64_t B = 0;
    EncoderWorkspace<T> id;          // the ID branch (prompt-full)
    std::vector<T> u, p, dp, du, dq; // (B,C)
    std::vector<T> x, dx, y, dy;     // (B,3C), (B,3C), (B,C), (B,C)
    std::vector<T> mean, rstd;       // (B)
    std::vector<uint8_t> mask;       // (B*C)
    std::vector<uint64_t> row_base;  // (B) fusion dropout element base
    PromptFusionRows<T> fusion() {
        return {x.data(), y.data(), mean.data(), rstd.data(), mask.data(), dy.data(), dx.data()};
    }
};

// s (B,C) encoder output, k, v (NP,C) from prompt_kv_forward, r (per-row attention state; r.dq
// may be null: the workspace's is used) -> o (B,C), which must not alias s.
// prompt-full also reads the chunk's tokens: items (N) ids with offsets off (B+1), off[0] = 0,
// id_codes = identity_item_codes(V1); keys as for the encoder (same client, step, batch rows).
template <typename T>
void prompt_head_forward(T* o, const PromptTensors<const T>& H, const EncoderHyper& hp, const T* s,
                         const T* k, const T* v, const PromptAttnRows<T>& r, const int32_t* items,
                         const int64_t* off, int64_t B, const int32_t* id_codes,
                         const DropoutKeys& keys, PromptWorkspace<T>& w) {
    using detail::ensure;
    const ModelShape& sh = hp.shape;
    const int64_t C = sh.hidden, NP = sh.n_prompts, PH = sh.prompt_heads;
    assert(sh.head != HeadMode::none && o != s);
    w.B = B;
    if (sh.head == HeadMode::prompt_light) { // o = s + MHA(s, P, P)
        prompt_attention_forward(o, r, s, k, v, H.in_w, H.in_b, H.out_w, H.out_b, B, NP, C, PH);
        for (int64_t i = 0; i < B * C; ++i) o[i] += s[i];
        return;
    }
    for (auto* b : {&w.u, &w.p, &w.y, &w.dy}) ensure(*b, B * C);
    for (auto* b : {&w.x, &w.dx}) ensure(*b, B * 3 * C);
    ensure(w.mean, B);
    ensure(w.rstd, B);
    ensure(w.mask, B * C);
    ensure(w.row_base, B);
    DropoutKeys id_keys = keys;
    id_keys.site_base = kIdBranchSiteBase;
    encoder_forward(w.u.data(), H.id, id_branch_hyper(hp), items, off, B, id_codes, id_keys, w.id);
    prompt_attention_forward(w.p.data(), r, s, k, v, H.in_w, H.in_b, H.out_w, H.out_b, B, NP, C,
                             PH);
    for (int64_t b = 0; b < B; ++b) w.row_base[size_t(b)] = uint64_t(keys.first_batch_row + b) * C;
    prompt_fusion_forward(o, w.fusion(), w.p.data(), w.u.data(), s, H.fuse_w, H.fuse_b, H.id.ln_w,
                          H.id.ln_b, B, C, T(hp.layer_norm_eps),
                          keys.train ? hp.hidden_dropout : 0.0, *keys.rng, keys.client, keys.step,
                          kFusionDropoutSite, w.row_base.data());
}

// d_o (B,C) -> ds (B,C) +=; the per-row parameter gradients into G (+=; null tensors are
// skipped); r.d_ctx / r.d_scores for prompt_attention_kv_backward; prompt-full: d_id_emb (N,C)
// = dLoss/d(ID embedding row of each token) (written, as encoder_backward writes), which the
// caller scatters with
// item_embedding_backward(..., id_codes, N, 1, C), and the encoder's position-embedding
// gradient into G.id.pos when that is not null. Uses the state of the last prompt_head_forward.
template <typename T>
void prompt_head_backward(T* ds, T* d_id_emb, const PromptTensors<T>& G, const T* d_o,
                          const PromptTensors<const T>& H, const EncoderHyper& hp, const T* s,
                          const T* k, const T* v, const PromptAttnRows<T>& r,
                          const DropoutKeys& keys, PromptWorkspace<T>& w) {
    using detail::zero;
    const ModelShape& sh = hp.shape;
    const int64_t C = sh.hidden, NP = sh.n_prompts, PH = sh.prompt_heads, B = w.B;
    PromptAttnRows<T> rr = r;
    if (!rr.dq) {
        detail::ensure(w.dq, B * C);
        rr.dq = w.dq.data();
    }
    if (sh.head == HeadMode::prompt_light) { // o = s + attn(s): identity path, then attention
        for (int64_t i = 0; i < B * C; ++i) ds[i] += d_o[i];
        prompt_attention_backward(ds, G.in_w, G.in_b, G.out_w, G.out_b, d_o, rr, s, k, v, H.in_w,
                                  H.out_w, B, NP, C, PH);
        return;
    }
    zero(w.dp, B * C);
    zero(w.du, B * C);
    prompt_fusion_backward(w.dp.data(), w.du.data(), ds, G.fuse_w, G.fuse_b, G.id.ln_w, G.id.ln_b,
                           d_o, w.fusion(), H.fuse_w, H.id.ln_w, B, C,
                           keys.train ? hp.hidden_dropout : 0.0);
    prompt_attention_backward(ds, G.in_w, G.in_b, G.out_w, G.out_b, w.dp.data(), rr, s, k, v,
                              H.in_w, H.out_w, B, NP, C, PH);
    DropoutKeys id_keys = keys;
    id_keys.site_base = kIdBranchSiteBase;
    encoder_backward(d_id_emb, G.id, w.du.data(), H.id, id_branch_hyper(hp), id_keys, w.id);
}

} // namespace pfcr
