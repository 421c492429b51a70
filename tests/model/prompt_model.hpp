// The whole PFCR model with a prompt head in double precision, composed from the kernels the
// trainer uses (encoder -> head -> cosine cross-entropy, and back): the object of the
// whole-model gradient checks (test_prompt.cpp) and of the PyTorch parity test
// (test_parity_prompt.cpp). Single chunk, no threads; computes the gradient of EVERY parameter
// (frozen ones too), so that tests can check a superset of what training needs.
#pragma once

#include <vector>

#include "model/embedding.hpp"
#include "model/encoder.hpp"
#include "model/loss.hpp"
#include "model/prompt.hpp"

namespace pfcr::test {

struct PromptModel {
    EncoderHyper hp;
    double tau = 0.07;
    int64_t V = 0;                       // domain items (candidates 0..V)
    std::vector<int32_t> codes;          // (V+1, M)
    std::vector<int32_t> items, targets; // (N), (B)
    std::vector<int64_t> off;            // (B+1)

    int64_t B() const { return int64_t(targets.size()); }

    // loss of `params` (a buffer of `layout`); fills logits (B,V+1) if not null and the
    // gradient of every parameter if grad is not null. Dropout keyed by `keys`.
    double run(const ParamLayout& layout, const std::vector<double>& params,
               std::vector<double>* grad, std::vector<double>* logits,
               const DropoutKeys& keys) const {
        const ModelShape& sh = hp.shape;
        const int64_t B = this->B(), C = sh.hidden, V1 = V + 1, M = sh.code_dim;
        const int64_t NP = sh.n_prompts, PH = sh.prompt_heads, N = off.back();
        const auto P = bind_tensors<const double>(params.data(), layout);
        const auto H = bind_prompt_tensors<const double>(params.data(), layout);
        const auto id_codes = identity_item_codes(sh.id_items > 0 ? sh.id_items : 1);
        EncoderWorkspace<double> enc;
        PromptWorkspace<double> head;
        std::vector<double> s(size_t(B * C)), o(size_t(B * C)), k(size_t(NP * C)),
            v(size_t(NP * C)), E(size_t(V1 * C));
        encoder_forward(s.data(), P, hp, items.data(), off.data(), B, codes.data(), keys, enc);
        prompt_kv_forward(k.data(), v.data(), H.prompts, H.in_w, H.in_b, NP, C);
        std::vector<double> q(size_t(B * C)), probs(size_t(B * PH * NP)), ctx(size_t(B * C)),
            d_ctx(size_t(B * C)), d_scores(size_t(B * PH * NP));
        const PromptAttnRows<double> rows{q.data(),     probs.data(),    ctx.data(),
                                          d_ctx.data(), d_scores.data(), nullptr};
        prompt_head_forward(o.data(), H, hp, s.data(), k.data(), v.data(), rows, items.data(),
                            off.data(), B, id_codes.data(), keys, head);
        all_item_embeddings_forward(E.data(), codes.data(), P.code_table, V1, M, C);
        std::vector<double> o_hat(size_t(B * C)), o_norm(static_cast<size_t>(B)),
            e_hat(size_t(V1 * C)), e_norm(static_cast<size_t>(V1)), pr(size_t(B * V1)),
            d_o_hat(size_t(B * C)), d_e_hat(size_t(V1 * C));
        const CosineCeBuffers<double> buf{o_hat.data(),   o_norm.data(), e_hat.data(),
                                          e_norm.data(),  pr.data(),     pr.data(),
                                          d_o_hat.data(), d_e_hat.data()};
        const double loss =
            cosine_ce_forward(buf, o.data(), E.data(), targets.data(), B, V1, C, tau);
        if (logits) {
            logits->assign(size_t(B * V1), 0.0);
            cosine_scores(logits->data(), o_hat.data(), e_hat.data(), B, V1, C, tau);
        }
        if (!grad) return loss;
        grad->assign(size_t(layout.total()), 0.0);
        const auto G = bind_tensors<double>(grad->data(), layout);
        const auto GH = bind_prompt_tensors<double>(grad->data(), layout);
        std::vector<double> d_o(size_t(B * C), 0.0), dE(size_t(V1 * C), 0.0),
            ds(size_t(B * C), 0.0), d_emb(size_t(N * C), 0.0), d_id(size_t(N * C), 0.0),
            dk(size_t(NP * C), 0.0), dv(size_t(NP * C), 0.0);
        cosine_ce_backward(d_o.data(), dE.data(), buf, targets.data(), B, V1, C, tau);
        prompt_head_backward(ds.data(), d_id.data(), GH, d_o.data(), H, hp, s.data(), k.data(),
                             v.data(), rows, keys, head);
        prompt_attention_kv_backward(dk.data(), dv.data(), rows, B, NP, C, PH, 0, NP);
        prompt_kv_backward(GH.prompts, GH.in_w, GH.in_b, dk.data(), dv.data(), H.prompts, H.in_w,
                           NP, C);
        if (sh.head == HeadMode::prompt_full)
            item_embedding_backward(GH.id.code_table, d_id.data(), items.data(), id_codes.data(), N,
                                    1, C);
        encoder_backward(d_emb.data(), G, ds.data(), P, hp, keys, enc);
        item_embedding_backward(G.code_table, d_emb.data(), items.data(), codes.data(), N, M, C);
        all_item_embeddings_backward(G.code_table, dE.data(), codes.data(), V1, M, C);
        return loss;
    }
};

} // namespace pfcr::test
