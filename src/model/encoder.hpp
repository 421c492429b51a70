// The PFCR/RecBole sequence encoder on one PACKED chunk of histories: code-mean item embedding
// + position embedding -> LayerNorm -> dropout -> L post-LN Transformer layers -> the hidden
// state at position len-1. Forward and backward side by side, composed from the layer kernels
// (one file each). Not here: the loss, the optimizer, batching and threads (model/trainer.*).
//
// Letters: B rows of the chunk, N packed tokens (sum of true lengths), C hidden, F inner,
// NH heads, L layers, T_max = MAX_ITEM_LIST_LENGTH, R rows a layer computes (N, or B in the
// last layer), M code_dim.
//
// Work the reference wastes and this skips, with the same result:
//  * padded positions: RecBole pads every history to T_max and masks padded keys with -10000.
//    With right padding and a causal mask, a real position never attends to a padded one, and
//    nothing reads a padded position's output; so only the N real tokens are computed.
//  * the last layer: only position len-1 is read (the sequence representation). Its keys and
//    values still need every position (computed by the previous layer), but its queries,
//    attention output, residuals, LayerNorms and FFN are needed only at len-1: R = B rows.
//    With one query per sequence its key and value projections fold into that query
//    (read_attention.hpp, EncoderHyper::fold_read_kv): products over B rows instead of N
//    tokens, the same function up to rounding.
// Dropout masks are keyed by (client, step, site) and by each element's (batch row, position,
// channel), exactly as if every padded position were computed, so they do not depend on the
// chunking, the thread count, or the skipped work.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <string>
#include <vector>

#include "core/phase_timer.hpp"
#include "model/attention.hpp"
#include "model/dropout.hpp"
#include "model/embedding.hpp"
#include "model/gelu.hpp"
#include "model/layernorm.hpp"
#include "model/linear.hpp"
#include "model/params.hpp"
#include "model/read_attention.hpp"

namespace pfcr {

struct EncoderHyper {
    ModelShape shape;
    double hidden_dropout = 0.5; // hidden_dropout_prob
    double attn_dropout = 0.5;   // attn_dropout_prob
    double layer_norm_eps = 1e-12;
    // The last layer's attention with its key/value projections folded into the one query per
    // sequence (read_attention.hpp); false: the plain path (k, v of every token, then
    // attention.hpp), the reference the folded one is tested against.
    bool fold_read_kv = true;
};

// Pointers to every tensor of the model inside one flat buffer of a ParamLayout (parameters,
// gradients or moments). `first` is the layout offset the buffer starts at: 0 for a full
// buffer; the end of pq_code_embedding for a buffer of the local (non-shared) part, in which
// case code_table is null.
template <typename P> struct EncoderTensors {
    struct Layer {
        P *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b, *ln1_w, *ln1_b;
        P *f1_w, *f1_b, *f2_w, *f2_b, *ln2_w, *ln2_b;
    };
    P* code_table = nullptr; // (R_code, C) pq_code_embedding.weight
    P* pos = nullptr;        // (T_max, C) position_embedding.weight
    P* ln_w = nullptr;       // (C) LayerNorm.weight
    P* ln_b = nullptr;       // (C) LayerNorm.bias
    std::vector<Layer> layers;
};

// Optional per-step forms of each layer's linear weights (linear.hpp's PreparedWeight: packed
// GEMM operands, or Wᵀ for Eigen), made once per step from the current parameters and read by
// every chunk; a null form uses the weight itself.
template <typename T> struct StepWeights {
    struct Layer {
        PreparedWeight<T> q, k, v, o, f1, f2;
    };
    std::vector<Layer> layers;
};

// Offset of the first local (non-federated) parameter: everything after the code table.
inline int64_t local_params_begin(const ParamLayout& layout) {
    const auto& t = layout.at("pq_code_embedding.weight");
    return t.offset + t.size;
}

template <typename P>
EncoderTensors<P> bind_tensors(P* base, const ParamLayout& layout, int64_t first = 0) {
    const auto ptr = [&](const std::string& name) -> P* {
        const auto& e = layout.at(name);
        return e.offset < first ? nullptr : base + (e.offset - first);
    };
    EncoderTensors<P> t;
    t.code_table = ptr("pq_code_embedding.weight");
    t.pos = ptr("position_embedding.weight");
    t.ln_w = ptr("LayerNorm.weight");
    t.ln_b = ptr("LayerNorm.bias");
    for (int64_t l = 0; l < layout.shape().layers; ++l) {
        const std::string p = "trm_encoder.layer." + std::to_string(l) + ".";
        const std::string a = p + "multi_head_attention.", f = p + "feed_forward.";
        t.layers.push_back({ptr(a + "query.weight"), ptr(a + "query.bias"), ptr(a + "key.weight"),
                            ptr(a + "key.bias"), ptr(a + "value.weight"), ptr(a + "value.bias"),
                            ptr(a + "dense.weight"), ptr(a + "dense.bias"),
                            ptr(a + "LayerNorm.weight"), ptr(a + "LayerNorm.bias"),
                            ptr(f + "dense_1.weight"), ptr(f + "dense_1.bias"),
                            ptr(f + "dense_2.weight"), ptr(f + "dense_2.bias"),
                            ptr(f + "LayerNorm.weight"), ptr(f + "LayerNorm.bias")});
    }
    return t;
}

// Which dropout masks a forward pass uses: stream (client, step, site_base + site) of a
// dropout-keyed rng; first_batch_row = this chunk's first row in the whole training batch.
// train = false turns every dropout off (evaluation). site_base = 0 for the encoder; a second
// Transformer (the prompt-full ID branch, model/prompt.hpp) uses its own base.
struct DropoutKeys {
    const KeyedRng* rng = nullptr;
    uint32_t client = 0;
    uint32_t step = 0;
    int64_t first_batch_row = 0;
    bool train = false;
    uint32_t site_base = 0;
};

// Dropout site ids (the `c` counter, before adding site_base): 0 after the embedding
// LayerNorm; layer l uses 1 + 3l (attention probabilities), 2 + 3l (attention output),
// 3 + 3l (feed-forward output).
inline uint32_t dropout_site(int64_t layer, int kind) {
    return uint32_t(1 + 3 * layer + kind);
}

// Everything one forward pass keeps for its backward, plus backward scratch. Owned by a worker
// thread and reused across chunks and steps: vectors only grow, so after the first (largest)
// chunk nothing is allocated.
template <typename T> struct EncoderWorkspace {
    struct Layer {
        std::vector<int64_t> first_query, qoff, probs_off; // (B), (B+1), (B+1)
        std::vector<uint64_t> attn_row_base, hid_row_base; // (B), (R)
        std::vector<T> hq;                         // (B,C) the last layer's query-row inputs
        const T* q_in = nullptr;                   // (R,C) query-row inputs: the layer's input
                                                   // rows, or (last layer) hq
        std::vector<T> q, k, v;                    // (R,C), (N,C), (N,C); k, v unused when folded
        ReadAttentionState<T> read;                // the folded last layer's (read_attention.hpp)
        std::vector<T> probs, probs_drop;          // packed causal rows (attention.hpp)
        std::vector<T> ctx, ao, res1, h1;          // (R,C)
        std::vector<T> mean1, rstd1, mean2, rstd2; // (R)
        std::vector<uint8_t> mask1, mask2;         // (R*C)
        std::vector<T> f1, g;                      // (R,F)
        std::vector<T> cdf;                        // (R,F) GELU's Phi(f1)
        std::vector<T> f2, res2, h2;               // (R,C)
    };
    int64_t B = 0, N = 0;
    std::vector<int64_t> off;       // (B+1) local token offsets
    std::vector<uint64_t> row_base; // (N) hidden-dropout element base of every token
    std::vector<T> emb, x, ln0, h0; // (N,C); emb only without item_rows
    std::vector<T> mean0, rstd0;    // (N)
    std::vector<uint8_t> mask0;     // (N*C)
    std::vector<Layer> layers;
    // Backward scratch.
    std::vector<T> dh, dh_in, dres, dtmp, dq, dk, dv, dff;
    // A layer's input rows packed once for the q, k and v weight gradients (fast-GEMM builds).
    AlignedBuffer<T> h_in_packed;
};

namespace detail {
template <typename V> void ensure(V& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(size_t(n));
}
template <typename T> void zero(std::vector<T>& v, int64_t n) {
    ensure(v, n);
    std::fill(v.begin(), v.begin() + n, T(0));
}
} // namespace detail

// items (N) internal ids with local offsets off (B+1), off[0] = 0 -> s (B,C): the hidden state
// of each history's last position. item_codes (V+1, M) are the domain's code rows.
// item_rows (V+1, C), optional: every item's code-mean embedding, already computed by
// all_item_embeddings_forward from the same table (the Trainer's candidate matrix E); tokens
// then copy their item's row, bit-identical to gathering and averaging its M code rows again.
// sw, optional: per-step forms of the linear weights of P (the forward GEMMs then use them).
template <typename T>
void encoder_forward(T* s, const EncoderTensors<const T>& P, const EncoderHyper& hp,
                     const int32_t* items, const int64_t* off, int64_t B, const int32_t* item_codes,
                     const DropoutKeys& keys, EncoderWorkspace<T>& w, const T* item_rows = nullptr,
                     const StepWeights<T>* sw = nullptr) {
    using detail::ensure;
    assert(keys.rng != nullptr); // also in evaluation: p = 0 then makes no draws
    const ModelShape& sh = hp.shape;
    const int64_t C = sh.hidden, F = sh.inner, NH = sh.heads, L = sh.layers, Tm = sh.max_positions;
    const int64_t N = off[B];
    const double p_hid = keys.train ? hp.hidden_dropout : 0.0;
    const double p_att = keys.train ? hp.attn_dropout : 0.0;
    const T eps = T(hp.layer_norm_eps);
    w.B = B;
    w.N = N;
    w.off.assign(off, off + B + 1);
    ensure(w.row_base, N);
    dropout_row_base_packed(w.row_base.data(), off, B, keys.first_batch_row, Tm, C);
    for (auto* v : {&w.x, &w.ln0, &w.h0}) ensure(*v, N * C);
    if (!item_rows) ensure(w.emb, N * C);
    ensure(w.mean0, N);
    ensure(w.rstd0, N);
    ensure(w.mask0, N * C);

    // x = E(items) + P[t];  h0 = Dropout(LN(x))
    if (item_rows) {
        add_position_embedding_forward(w.x.data(), item_rows, P.pos, off, B, C, items);
    } else {
        item_embedding_forward(w.emb.data(), items, item_codes, P.code_table, N, sh.code_dim, C);
        add_position_embedding_forward(w.x.data(), w.emb.data(), P.pos, off, B, C);
    }
    layernorm_forward(w.ln0.data(), w.mean0.data(), w.rstd0.data(), w.x.data(), P.ln_w, P.ln_b, N,
                      C, eps);
    dropout_forward(w.h0.data(), w.mask0.data(), w.ln0.data(), N, C, p_hid, *keys.rng, keys.client,
                    keys.step, keys.site_base, w.row_base.data());

    w.layers.resize(size_t(L));
    // out = x Wᵀ + b, from the weight's per-step form when the caller made one.
    const auto linear = [](T* out, const T* x, const T* weight, const PreparedWeight<T>& pw,
                           const T* bias, int64_t rows, int64_t in, int64_t out_features) {
        if (pw.fwd)
            linear_forward_prepared(out, x, pw.fwd, bias, rows, in, out_features);
        else
            linear_forward(out, x, weight, bias, rows, in, out_features);
    };
    const typename StepWeights<T>::Layer no_sw{};
    const T* h_in = w.h0.data();
    for (int64_t l = 0; l < L; ++l) {
        auto& a = w.layers[size_t(l)];
        const auto& W = P.layers[size_t(l)];
        const auto& Wp = sw ? sw->layers[size_t(l)] : no_sw;
        const bool last = l == L - 1;
        const bool fold = last && hp.fold_read_kv;
        const int64_t R = last ? B : N;
        ensure(a.first_query, B);
        ensure(a.qoff, B + 1);
        ensure(a.probs_off, B + 1);
        ensure(a.attn_row_base, B);
        ensure(a.hid_row_base, R);
        for (int64_t b = 0; b < B; ++b) {
            const int64_t len = off[b + 1] - off[b];
            a.first_query[size_t(b)] = last ? len - 1 : 0;
            a.attn_row_base[size_t(b)] = uint64_t(keys.first_batch_row + b) * NH * Tm * Tm;
            if (last) a.hid_row_base[size_t(b)] = w.row_base[size_t(off[b + 1] - 1)];
        }
        if (!last) std::copy(w.row_base.begin(), w.row_base.begin() + N, a.hid_row_base.begin());
        attention_query_offsets(off, a.first_query.data(), B, a.qoff.data());
        const int64_t n_probs =
            attention_probs_offsets(off, a.first_query.data(), B, NH, a.probs_off.data());
        for (auto* v : {&a.q, &a.ctx, &a.ao, &a.res1, &a.h1, &a.f2, &a.res2, &a.h2})
            ensure(*v, R * C);
        if (!fold)
            for (auto* v : {&a.k, &a.v}) ensure(*v, N * C);
        for (auto* v : {&a.mean1, &a.rstd1, &a.mean2, &a.rstd2}) ensure(*v, R);
        ensure(a.mask1, R * C);
        ensure(a.mask2, R * C);
        ensure(a.f1, R * F);
        ensure(a.g, R * F);
        ensure(a.cdf, R * F);
        ensure(a.probs, n_probs);
        ensure(a.probs_drop, n_probs);

        // Query-row inputs: every token (the input itself), or (last layer) each history's last
        // token, gathered.
        a.q_in = h_in;
        if (last) {
            ensure(a.hq, R * C);
            for (int64_t b = 0; b < B; ++b)
                std::copy(h_in + (off[b + 1] - 1) * C, h_in + off[b + 1] * C, a.hq.data() + b * C);
            a.q_in = a.hq.data();
        }
        // Self-attention: q from the query rows, k and v from every token (or folded into q).
        linear(a.q.data(), a.q_in, W.q_w, Wp.q, W.q_b, R, C, C);
        if (!fold) {
            linear(a.k.data(), h_in, W.k_w, Wp.k, W.k_b, N, C, C);
            linear(a.v.data(), h_in, W.v_w, Wp.v, W.v_b, N, C, C);
        }
        AttentionDropout ad;
        ad.p = p_att;
        ad.rng = keys.rng;
        ad.a = keys.client;
        ad.b = keys.step;
        ad.c = keys.site_base + dropout_site(l, 0);
        ad.row_base = a.attn_row_base.data();
        ad.T_max = Tm;
        T* probs_drop = p_att > 0 ? a.probs_drop.data() : a.probs.data();
        if (fold)
            read_attention_forward(a.ctx.data(), a.probs.data(), probs_drop, a.read, a.q.data(),
                                   h_in, W.k_w, W.k_b, W.v_w, W.v_b, off, a.probs_off.data(), B, C,
                                   NH, ad);
        else
            attention_forward(a.ctx.data(), a.probs.data(), probs_drop, a.q.data(), a.k.data(),
                              a.v.data(), off, a.qoff.data(), a.first_query.data(),
                              a.probs_off.data(), B, C, NH, ad);
        // h1 = LN(Dropout(Dense(ctx)) + hq)
        linear(a.ao.data(), a.ctx.data(), W.o_w, Wp.o, W.o_b, R, C, C);
        dropout_forward(a.res1.data(), a.mask1.data(), a.ao.data(), R, C, p_hid, *keys.rng,
                        keys.client, keys.step, keys.site_base + dropout_site(l, 1),
                        a.hid_row_base.data(), a.q_in);
        layernorm_forward(a.h1.data(), a.mean1.data(), a.rstd1.data(), a.res1.data(), W.ln1_w,
                          W.ln1_b, R, C, eps);
        // h2 = LN(Dropout(W2 GELU(W1 h1 + b1) + b2) + h1)
        linear(a.f1.data(), a.h1.data(), W.f1_w, Wp.f1, W.f1_b, R, C, F);
        gelu_forward(a.g.data(), a.cdf.data(), a.f1.data(), R * F);
        linear(a.f2.data(), a.g.data(), W.f2_w, Wp.f2, W.f2_b, R, F, C);
        dropout_forward(a.res2.data(), a.mask2.data(), a.f2.data(), R, C, p_hid, *keys.rng,
                        keys.client, keys.step, keys.site_base + dropout_site(l, 2),
                        a.hid_row_base.data(), static_cast<const T*>(a.h1.data()));
        layernorm_forward(a.h2.data(), a.mean2.data(), a.rstd2.data(), a.res2.data(), W.ln2_w,
                          W.ln2_b, R, C, eps);
        h_in = a.h2.data();
    }
    std::copy(h_in, h_in + B * C, s); // the last layer's rows are the B last positions
}

// ds (B,C) -> parameter gradients accumulated into G (bound to a gradient buffer; its
// code_table may be null, and so may any other tensor of a frozen part: that gradient is then
// not computed) and d_emb (N,C) = dLoss/d(code-mean embedding of each token), WRITTEN (not
// accumulated: the caller need not zero it), which
// the caller scatters into the code table (item_embedding_backward) so that the shared
// table's gradient is summed in a fixed order across chunks. Uses the state of the last
// encoder_forward on `w`.
template <typename T>
void encoder_backward(T* d_emb, const EncoderTensors<T>& G, const T* ds,
                      const EncoderTensors<const T>& P, const EncoderHyper& hp,
                      const DropoutKeys& keys, EncoderWorkspace<T>& w,
                      const StepWeights<T>* sw = nullptr) {
    using detail::ensure;
    const typename StepWeights<T>::Layer no_sw{};
    const ModelShape& sh = hp.shape;
    const int64_t C = sh.hidden, F = sh.inner, NH = sh.heads, L = sh.layers;
    const int64_t B = w.B, N = w.N;
    const int64_t* off = w.off.data();
    const double p_hid = keys.train ? hp.hidden_dropout : 0.0;

    // dh holds dLoss/d(output of the current layer), R rows. Each scratch buffer is written by
    // the first kernel that produces it (the kernels' accumulate = false), not zeroed first.
    ensure(w.dh, N * C);
    std::copy(ds, ds + B * C, w.dh.begin());
    for (int64_t l = L - 1; l >= 0; --l) {
        auto& a = w.layers[size_t(l)];
        const auto& W = P.layers[size_t(l)];
        const auto& D = G.layers[size_t(l)];
        const auto& Wp = sw ? sw->layers[size_t(l)] : no_sw;
        const bool last = l == L - 1;
        const bool fold = last && hp.fold_read_kv;
        const int64_t R = last ? B : N;
        const T* h_in = l == 0 ? w.h0.data() : w.layers[size_t(l - 1)].h2.data();
        for (auto* v : {&w.dres, &w.dtmp}) ensure(*v, R * C);
        for (auto* v : {&w.dff, &w.dq}) ensure(*v, R * std::max(C, F));
        for (auto* v : {&w.dk, &w.dv, &w.dh_in}) ensure(*v, N * C);

        // h2 = LN(res2): dres = dres2
        layernorm_backward(w.dres.data(), D.ln2_w, D.ln2_b, w.dh.data(), a.res2.data(), W.ln2_w,
                           a.mean2.data(), a.rstd2.data(), R, C, false);
        // res2 = Dropout(f2) + h1: dh1 = dres2 (residual) + FFN path below
        dropout_backward(w.dq.data(), w.dres.data(), a.mask2.data(), R * C, p_hid,
                         false); // dq = df2 here
        linear_backward(w.dff.data(), D.f2_w, D.f2_b, w.dq.data(), a.g.data(), W.f2_w, R, F, C,
                        Wp.f2.bwd, false); // dff = dg
        gelu_backward(w.dq.data(), a.f1.data(), w.dff.data(), R * F, false,
                      static_cast<const T*>(a.cdf.data())); // dq = df1 (scratch of width F)
        linear_backward(w.dres.data(), D.f1_w, D.f1_b, w.dq.data(), a.h1.data(), W.f1_w, R, C, F,
                        Wp.f1.bwd); // dres = dh1
        // h1 = LN(res1): dtmp = dres1
        layernorm_backward(w.dtmp.data(), D.ln1_w, D.ln1_b, w.dres.data(), a.res1.data(), W.ln1_w,
                           a.mean1.data(), a.rstd1.data(), R, C, false);
        // res1 = Dropout(ao) + hq: dhq = dres1 (in dtmp) + attention path below
        dropout_backward(w.dres.data(), w.dtmp.data(), a.mask1.data(), R * C, p_hid,
                         false); // dres = dao
        linear_backward(w.dff.data(), D.o_w, D.o_b, w.dres.data(), a.ctx.data(), W.o_w, R, C, C,
                        Wp.o.bwd, false); // dff = dctx
        const T* probs_drop =
            keys.train && hp.attn_dropout > 0 ? a.probs_drop.data() : a.probs.data();
        if (fold) {
            // dq, and dh_in = dLoss/dh_in through the folded keys and values (written)
            read_attention_backward(w.dq.data(), w.dh_in.data(), D.k_w, D.k_b, D.v_w, D.v_b,
                                    static_cast<const T*>(w.dff.data()), a.probs.data(), probs_drop,
                                    a.read, a.q.data(), h_in, W.k_w, W.k_b, W.v_w, W.v_b, off,
                                    a.probs_off.data(), B, C, NH);
            linear_backward(w.dtmp.data(), D.q_w, D.q_b, w.dq.data(), a.q_in, W.q_w, R, C, C,
                            Wp.q.bwd, true); // dtmp = dhq
        } else {
            attention_backward(w.dq.data(), w.dk.data(), w.dv.data(), w.dff.data(), a.probs.data(),
                               probs_drop, a.q.data(), a.k.data(), a.v.data(), off, a.qoff.data(),
                               a.first_query.data(), a.probs_off.data(), B, C, NH, false);
            // q = Wq hq, k = Wk h_in, v = Wv h_in; h_in packed once for their weight gradients
            const T* h_in_packed = nullptr;
            if constexpr (kFastGemm<T>) {
                if (D.k_w || D.v_w) {
                    const prof::PhaseScope timer(prof::Phase::gemm_linear_bwd);
                    const int64_t size = gemm_packed_b_size(N, C);
                    if (w.h_in_packed.size() < size) w.h_in_packed.resize(size);
                    gemm_pack_b(w.h_in_packed.data(), {h_in, C, 1}, N, C);
                    h_in_packed = w.h_in_packed.data();
                }
            }
            linear_backward(w.dtmp.data(), D.q_w, D.q_b, w.dq.data(), a.q_in, W.q_w, R, C, C,
                            Wp.q.bwd, true, a.q_in == h_in ? h_in_packed : nullptr); // dtmp = dhq
            linear_backward(w.dh_in.data(), D.k_w, D.k_b, w.dk.data(), h_in, W.k_w, N, C, C,
                            Wp.k.bwd, false, h_in_packed);
            linear_backward(w.dh_in.data(), D.v_w, D.v_b, w.dv.data(), h_in, W.v_w, N, C, C,
                            Wp.v.bwd, true, h_in_packed);
        }
        // hq rows are h_in rows (all, or the last position of each history)
        if (last) {
            for (int64_t b = 0; b < B; ++b) {
                T* dst = w.dh_in.data() + (off[b + 1] - 1) * C;
                for (int64_t c = 0; c < C; ++c) dst[c] += w.dtmp[size_t(b * C + c)];
            }
        } else {
            for (int64_t i = 0; i < N * C; ++i) w.dh_in[size_t(i)] += w.dtmp[size_t(i)];
        }
        std::swap(w.dh, w.dh_in);
    }
    // h0 = Dropout(LN(x)), x = emb + P[t]
    ensure(w.dtmp, N * C);
    ensure(w.dres, N * C);
    dropout_backward(w.dtmp.data(), w.dh.data(), w.mask0.data(), N * C, p_hid, false);
    // x = emb + pos: dLoss/dx is d_emb itself (written here), and the positions sum it.
    layernorm_backward(d_emb, G.ln_w, G.ln_b, w.dtmp.data(), w.x.data(), P.ln_w, w.mean0.data(),
                       w.rstd0.data(), N, C, false);
    add_position_embedding_backward(static_cast<T*>(nullptr), G.pos, d_emb, off, B, C);
}

} // namespace pfcr
