// The prompt-tuning heads (model/prompt.hpp) in double precision: the prompt attention against
// its plain-loop reference and by central differences (queries, prompts, every MHA parameter),
// the prompt-full fusion by central differences (dropout on and off), and the whole model
// (encoder -> head -> cosine loss) in both modes by central differences on every parameter,
// dropout on and off. Plus the head's parameter layout: names, trainable flags, init, and that
// a layout without a head is unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "gradcheck.hpp"
#include "model/prompt.hpp"
#include "prompt_model.hpp"

using namespace pfcr;
using test::gradcheck_rel_error;
using test::probe_weights;

namespace {

constexpr double kGradTol = 1e-6; // see gradcheck.hpp

double dot(const std::vector<double>& w, const std::vector<double>& x) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += w[i] * x[i];
    return s;
}

// ------------------------------------------------------------------ prompt attention

struct AttnCase {
    int64_t B = 3, NP = 5, C = 8, PH = 2;
    std::vector<double> s, prompts, in_w, in_b, out_w, out_b;
    AttnCase() {
        s = probe_weights(size_t(B * C), 1);
        prompts = probe_weights(size_t(NP * C), 2);
        in_w = probe_weights(size_t(3 * C * C), 3);
        in_b = probe_weights(size_t(3 * C), 4);
        out_w = probe_weights(size_t(C * C), 5);
        out_b = probe_weights(size_t(C), 6);
        for (auto* t : {&in_w, &out_w})
            for (auto& x : *t) x *= 0.8; // scores of O(1): the softmax is far from one-hot
    }
    struct Bufs {
        std::vector<double> q, probs, ctx, d_ctx, d_scores, dq, k, v;
        PromptAttnRows<double> rows() {
            return {q.data(), probs.data(), ctx.data(), d_ctx.data(), d_scores.data(), dq.data()};
        }
    };
    Bufs bufs() const {
        Bufs b;
        for (auto* v : {&b.q, &b.ctx, &b.d_ctx, &b.dq}) v->assign(size_t(B * C), 0.0);
        for (auto* v : {&b.probs, &b.d_scores}) v->assign(size_t(B * PH * NP), 0.0);
        for (auto* v : {&b.k, &b.v}) v->assign(size_t(NP * C), 0.0);
        return b;
    }
    // loss = <w, MHA(s, P, P)>; gradients of everything if requested.
    double run(bool backward, std::vector<std::vector<double>>* grads) {
        Bufs b = bufs();
        std::vector<double> out(size_t(B * C));
        prompt_kv_forward(b.k.data(), b.v.data(), prompts.data(), in_w.data(), in_b.data(), NP, C);
        const auto r = b.rows();
        prompt_attention_forward(out.data(), r, s.data(), b.k.data(), b.v.data(), in_w.data(),
                                 in_b.data(), out_w.data(), out_b.data(), B, NP, C, PH);
        const auto w = probe_weights(out.size(), 9);
        if (backward) {
            auto& g = *grads; // s, prompts, in_w, in_b, out_w, out_b
            g = {std::vector<double>(s.size()),     std::vector<double>(prompts.size()),
                 std::vector<double>(in_w.size()),  std::vector<double>(in_b.size()),
                 std::vector<double>(out_w.size()), std::vector<double>(out_b.size())};
            prompt_attention_backward(g[0].data(), g[2].data(), g[3].data(), g[4].data(),
                                      g[5].data(), w.data(), r, s.data(), b.k.data(), b.v.data(),
                                      in_w.data(), out_w.data(), B, NP, C, PH);
            std::vector<double> dk(b.k.size()), dv(b.v.size());
            // Two prompt-row blocks: the batch-level backward is block-separable.
            prompt_attention_kv_backward(dk.data(), dv.data(), r, B, NP, C, PH, 0, 2);
            prompt_attention_kv_backward(dk.data(), dv.data(), r, B, NP, C, PH, 2, NP);
            prompt_kv_backward(g[1].data(), g[2].data(), g[3].data(), dk.data(), dv.data(),
                               prompts.data(), in_w.data(), NP, C);
        }
        return dot(w, out);
    }
};

TEST(PromptAttention, MatchesPlainLoopReference) {
    AttnCase c;
    auto b1 = c.bufs(), b2 = c.bufs();
    prompt_kv_forward(b1.k.data(), b1.v.data(), c.prompts.data(), c.in_w.data(), c.in_b.data(),
                      c.NP, c.C);
    std::vector<double> o1(size_t(c.B * c.C)), o2(o1.size());
    prompt_attention_forward(o1.data(), b1.rows(), c.s.data(), b1.k.data(), b1.v.data(),
                             c.in_w.data(), c.in_b.data(), c.out_w.data(), c.out_b.data(), c.B,
                             c.NP, c.C, c.PH);
    prompt_attention_forward_reference(o2.data(), b2.rows(), c.s.data(), b1.k.data(), b1.v.data(),
                                       c.in_w.data(), c.in_b.data(), c.out_w.data(), c.out_b.data(),
                                       c.B, c.NP, c.C, c.PH);
    for (size_t i = 0; i < o1.size(); ++i) EXPECT_NEAR(o1[i], o2[i], 1e-13) << i;
    for (size_t i = 0; i < b1.probs.size(); ++i) EXPECT_NEAR(b1.probs[i], b2.probs[i], 1e-15);
    // Each (row, head) softmax sums to one.
    for (int64_t i = 0; i < c.B * c.PH; ++i) {
        double sum = 0;
        for (int64_t n = 0; n < c.NP; ++n) sum += b1.probs[size_t(i * c.NP + n)];
        EXPECT_NEAR(sum, 1.0, 1e-14);
    }
}

TEST(PromptAttention, SingleHeadOnePromptIsTheValueProjection) {
    // One prompt: softmax = 1, so MHA(s) = Wo (Wv p + bv) + bo for every row, whatever s is.
    const int64_t B = 2, C = 2;
    const std::vector<double> s = {1, 2, -3, 4}, P = {0.5, -1};
    const std::vector<double> in_w = {1, 0, 0, 1, 2, 0, 0, 3, 1, 1, 0, 2}; // Wq = I, Wk, Wv
    const std::vector<double> in_b = {0, 0, 0, 0, 0.25, -0.5}, out_w = {1, 0, 0, 2}, out_b = {1, 1};
    std::vector<double> k(2), v(2), q(4), probs(2), ctx(4), out(4);
    prompt_kv_forward(k.data(), v.data(), P.data(), in_w.data(), in_b.data(), 1, C);
    const PromptAttnRows<double> r{q.data(), probs.data(), ctx.data(), nullptr, nullptr, nullptr};
    prompt_attention_forward(out.data(), r, s.data(), k.data(), v.data(), in_w.data(), in_b.data(),
                             out_w.data(), out_b.data(), B, 1, C, 1);
    // v = (0.5 - 1 + 0.25, -2 - 0.5) = (-0.25, -2.5); out = (-0.25 + 1, -5 + 1)
    for (int64_t b = 0; b < B; ++b) {
        EXPECT_DOUBLE_EQ(out[size_t(b * C)], 0.75);
        EXPECT_DOUBLE_EQ(out[size_t(b * C + 1)], -4.0);
    }
}

TEST(PromptAttention, GradCheckQueriesPromptsAndParameters) {
    AttnCase c;
    std::vector<std::vector<double>> g;
    c.run(true, &g);
    std::vector<double>* xs[] = {&c.s, &c.prompts, &c.in_w, &c.in_b, &c.out_w, &c.out_b};
    const char* names[] = {
        "s", "prompts", "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"};
    for (int t = 0; t < 6; ++t) {
        const double err =
            gradcheck_rel_error(*xs[t], g[size_t(t)], [&] { return c.run(false, nullptr); });
        EXPECT_LE(err, kGradTol) << names[t];
    }
    // The key bias shifts every score of a row equally: softmax-invariant, exactly zero grad.
    for (int64_t i = c.C; i < 2 * c.C; ++i) EXPECT_LE(std::abs(g[3][size_t(i)]), 1e-14);
}

// ------------------------------------------------------------------ prompt-full fusion

struct FusionCase {
    int64_t B = 3, C = 6;
    double p_drop;
    std::vector<double> p, u, s, W, bias, ln_w, ln_b;
    explicit FusionCase(double pd) : p_drop(pd) {
        p = probe_weights(size_t(B * C), 11);
        u = probe_weights(size_t(B * C), 12);
        s = probe_weights(size_t(B * C), 13);
        W = probe_weights(size_t(C * 3 * C), 14);
        bias = probe_weights(size_t(C), 15);
        ln_w = probe_weights(size_t(C), 16);
        ln_b = probe_weights(size_t(C), 17);
        for (auto& x : ln_w) x += 1.0;
    }
    double run(std::vector<std::vector<double>>* g) {
        const KeyedRng rng(5, RngPurpose::dropout);
        std::vector<double> x(size_t(B * 3 * C)), dx(x.size()), y(size_t(B * C)), dy(y.size()),
            mean(static_cast<size_t>(B)), rstd(static_cast<size_t>(B)), o(size_t(B * C));
        std::vector<uint8_t> mask(size_t(B * C));
        std::vector<uint64_t> row_base = {0, 100, 2 * 100}; // any distinct element bases
        const PromptFusionRows<double> f{x.data(),    y.data(),  mean.data(), rstd.data(),
                                         mask.data(), dy.data(), dx.data()};
        prompt_fusion_forward(o.data(), f, p.data(), u.data(), s.data(), W.data(), bias.data(),
                              ln_w.data(), ln_b.data(), B, C, 1e-12, p_drop, rng, 1, 2, 3,
                              row_base.data());
        const auto w = probe_weights(o.size(), 19);
        if (g) {
            *g = {std::vector<double>(p.size()),    std::vector<double>(u.size()),
                  std::vector<double>(s.size()),    std::vector<double>(W.size()),
                  std::vector<double>(bias.size()), std::vector<double>(ln_w.size()),
                  std::vector<double>(ln_b.size())};
            auto& G = *g;
            prompt_fusion_backward(G[0].data(), G[1].data(), G[2].data(), G[3].data(), G[4].data(),
                                   G[5].data(), G[6].data(), w.data(), f, W.data(), ln_w.data(), B,
                                   C, p_drop);
            if (p_drop > 0) { // some element must be dropped for the test to mean anything
                size_t dropped = 0;
                for (auto m : mask) dropped += m == 0;
                EXPECT_GT(dropped, 0u);
            }
        }
        return dot(w, o);
    }
    void check() {
        std::vector<std::vector<double>> g;
        run(&g);
        std::vector<double>* xs[] = {&p, &u, &s, &W, &bias, &ln_w, &ln_b};
        for (int t = 0; t < 7; ++t)
            EXPECT_LE(gradcheck_rel_error(*xs[t], g[size_t(t)], [&] { return run(nullptr); }),
                      kGradTol)
                << "tensor " << t;
    }
};

TEST(PromptFusion, GradCheckDropoutOff) {
    FusionCase(0.0).check();
}
TEST(PromptFusion, GradCheckDropoutOn) {
    FusionCase(0.3).check();
}

// ------------------------------------------------------------------ layout

ModelShape head_shape(HeadMode mode) {
    ModelShape s;
    s.hidden = 8;
    s.heads = 2;
    s.inner = 6;
    s.layers = 2;
    s.max_positions = 6;
    s.code_dim = 3;
    s.code_cap = 4;
    s.head = mode;
    s.n_prompts = 5;
    s.prompt_heads = 2;
    s.id_items = 11;
    return s;
}

TEST(PromptLayout, NoHeadLayoutIsAPrefixAndEncoderInitIsUnchanged) {
    for (auto mode : {HeadMode::prompt_light, HeadMode::prompt_full}) {
        const ParamLayout none(head_shape(HeadMode::none)), with(head_shape(mode));
        ASSERT_GT(with.entries().size(), none.entries().size());
        EXPECT_EQ(none.head_begin(), none.total());
        EXPECT_GE(with.head_begin(), none.total());
        for (size_t i = 0; i < none.entries().size(); ++i) {
            EXPECT_EQ(with.entries()[i].name, none.entries()[i].name);
            EXPECT_EQ(with.entries()[i].offset, none.entries()[i].offset);
            EXPECT_FALSE(with.entries()[i].prompt);
            EXPECT_TRUE(none.entries()[i].trainable);
            // The reference freezes the encoder except the code table.
            EXPECT_EQ(with.entries()[i].trainable, with.entries()[i].shared)
                << with.entries()[i].name;
        }
        for (size_t i = none.entries().size(); i < with.entries().size(); ++i) {
            EXPECT_TRUE(with.entries()[i].prompt);
            EXPECT_TRUE(with.entries()[i].trainable);
            EXPECT_EQ(with.entries()[i].key(), "prompt/" + with.entries()[i].name);
        }
        AlignedBuffer<float> a(none.total()), b(with.total());
        init_params(none, a.data(), 2020, 0.02);
        init_params(with, b.data(), 2020, 0.02);
        for (int64_t i = 0; i < none.total(); ++i) ASSERT_EQ(a[i], b[i]);
        ModelShape trained = head_shape(mode);
        trained.train_encoder = true;
        const ParamLayout trained_layout(trained);
        for (const auto& e : trained_layout.entries()) EXPECT_TRUE(e.trainable) << e.key();
    }
}

TEST(PromptLayout, ReferenceNamesShapesAndInit) {
    ModelShape sh = head_shape(HeadMode::prompt_full);
    sh.hidden = 64;
    sh.n_prompts = 256;
    sh.id_items = 400;
    const ParamLayout L(sh);
    const int64_t C = 64;
    EXPECT_EQ(L.at("prompt/prompts").shape, (std::vector<int64_t>{256, C}));
    EXPECT_EQ(L.at("prompt/attn_layer.in_proj_weight").shape, (std::vector<int64_t>{3 * C, C}));
    EXPECT_EQ(L.at("prompt/attn_layer.in_proj_bias").shape, (std::vector<int64_t>{3 * C}));
    EXPECT_EQ(L.at("prompt/attn_layer.out_proj.weight").shape, (std::vector<int64_t>{C, C}));
    EXPECT_EQ(L.at("prompt/concat_layer.weight").shape, (std::vector<int64_t>{C, 3 * C}));
    EXPECT_EQ(L.at("prompt/item_embedding.weight").shape, (std::vector<int64_t>{400, C}));
    EXPECT_EQ(L.at("prompt/item_trm_encoder.layer.1.feed_forward.dense_2.weight").shape,
              (std::vector<int64_t>{C, 6}));
    EXPECT_EQ(L.at("prompt/LayerNorm.weight").offset > L.at("LayerNorm.weight").offset, true);
    EXPECT_EQ(L.entries().back().name, "item_embedding.weight"); // last: sparse gradient
    EXPECT_THROW(ParamLayout(head_shape(HeadMode::prompt_light)).at("prompt/concat_layer.weight"),
                 Error);
    AlignedBuffer<float> p(L.total());
    init_params(L, p.data(), 7, 0.02);
    // Uniform entries: inside the bound, and spread over it (max |x| close to the bound).
    for (const char* key : {"prompt/prompts", "prompt/attn_layer.in_proj_weight",
                            "prompt/attn_layer.out_proj.weight", "prompt/concat_layer.bias",
                            "prompt/item_trm_encoder.layer.0.multi_head_attention.query.bias"}) {
        const auto& e = L.at(key);
        double mx = 0;
        for (int64_t i = 0; i < e.size; ++i) mx = std::max(mx, std::abs(double(p[e.offset + i])));
        EXPECT_LE(mx, e.init_bound) << key;
        EXPECT_GT(mx, 0.8 * e.init_bound) << key;
    }
    EXPECT_NEAR(L.at("prompt/prompts").init_bound, std::sqrt(6.0 / (256 + C)), 1e-15);
    EXPECT_NEAR(L.at("prompt/attn_layer.in_proj_weight").init_bound, std::sqrt(6.0 / (4 * C)),
                1e-15);
    EXPECT_NEAR(L.at("prompt/attn_layer.out_proj.weight").init_bound, 1 / std::sqrt(double(C)),
                1e-15);
    EXPECT_NEAR(L.at("prompt/concat_layer.weight").init_bound, 1 / std::sqrt(3.0 * C), 1e-15);
    for (const char* key : {"prompt/attn_layer.in_proj_bias", "prompt/attn_layer.out_proj.bias"}) {
        const auto& e = L.at(key);
        for (int64_t i = 0; i < e.size; ++i) EXPECT_EQ(p[e.offset + i], 0.0f) << key;
    }
    // item_embedding: row 0 (padding) zero, the rest N(0, 1).
    const auto& id = L.at("prompt/item_embedding.weight");
    double s2 = 0;
    for (int64_t i = 0; i < C; ++i) EXPECT_EQ(p[id.offset + i], 0.0f);
    for (int64_t i = C; i < id.size; ++i) s2 += double(p[id.offset + i]) * p[id.offset + i];
    EXPECT_NEAR(std::sqrt(s2 / double(id.size - C)), 1.0, 0.03); // 25.5k draws: se 0.5 %
    EXPECT_EQ(p[L.at("prompt/LayerNorm.weight").offset], 1.0f);
    EXPECT_EQ(p[L.at("prompt/LayerNorm.bias").offset], 0.0f);
}

// ------------------------------------------------------------------ whole model

struct Whole {
    test::PromptModel m;
    ParamLayout layout;
    std::vector<double> params;

    static EncoderHyper hyper(HeadMode mode, double p_hid, double p_att) {
        EncoderHyper h;
        h.shape = head_shape(mode);
        h.hidden_dropout = p_hid;
        h.attn_dropout = p_att;
        return h;
    }
    Whole(HeadMode mode, double p_hid, double p_att) : layout(hyper(mode, p_hid, p_att).shape) {
        m.hp = hyper(mode, p_hid, p_att);
        m.V = 10;
        m.tau = 0.5; // a softer softmax than 0.07 keeps every logit's gradient in play
        std::vector<float> f(size_t(layout.total()));
        init_params(layout, f.data(), 7, 0.5);
        params.assign(f.begin(), f.end());
        // LayerNorm gains/biases and zero-initialised biases away from 1/0; the N(0,1) ID
        // embedding scaled down so the ID branch's LayerNorm input is not dominated by it.
        auto probe = probe_weights(size_t(layout.total()), 3);
        for (const auto& e : layout.entries()) {
            for (int64_t i = 0; i < e.size; ++i) {
                double& x = params[size_t(e.offset + i)];
                if (e.init == ParamInit::zeros || e.init == ParamInit::ones)
                    x += 0.3 * probe[size_t(e.offset + i)];
                if (e.init == ParamInit::unit_normal_pad0) x *= 0.5;
            }
        }
        const int64_t M = m.hp.shape.code_dim, cap = m.hp.shape.code_cap;
        m.codes.assign(size_t((m.V + 1) * M), 0);
        for (int64_t i = 1; i <= m.V; ++i)
            for (int64_t j = 0; j < M; ++j)
                m.codes[size_t(i * M + j)] = int32_t(j * (cap + 1) + (i * 7 + j * 3) % cap + 1);
        m.items = {5, 1, 2, 3, 3, 4, 6, 7, 8, 9, 10}; // lengths 1, 4, 6 = T_max; item 3 twice
        m.off = {0, 1, 5, 11};
        m.targets = {2, 7, 10};
    }

    void check(bool train) {
        const KeyedRng rng(11, RngPurpose::dropout);
        const DropoutKeys keys{&rng, 2, 5, 0, train};
        std::vector<double> grad;
        m.run(layout, params, &grad, nullptr, keys);
        std::set<std::string> checked;
        for (const auto& e : layout.entries()) {
            // The code table's row 0 (padding_idx = 0) never gets a gradient, as in PyTorch,
            // although the padding candidate's logit reads it: check rows 1.. only.
            const int64_t skip = e.name == "pq_code_embedding.weight" ? e.shape[1] : 0;
            for (int64_t i = 0; i < skip; ++i) EXPECT_EQ(grad[size_t(e.offset + i)], 0.0);
            const int64_t first = e.offset + skip, n = e.size - skip;
            std::vector<double> x(params.begin() + first, params.begin() + first + n);
            std::vector<double> g(grad.begin() + first, grad.begin() + first + n);
            const auto f = [&] {
                std::copy(x.begin(), x.end(), params.begin() + first);
                return m.run(layout, params, nullptr, nullptr, keys);
            };
            if (e.name.find("key.bias") != std::string::npos) { // softmax shift invariance
                double a2 = 0;
                for (double v : g) a2 += v * v;
                EXPECT_LE(std::sqrt(a2), 1e-12) << e.key();
                continue;
            }
            const double err = gradcheck_rel_error(x, g, f);
            std::copy(x.begin(), x.end(), params.begin() + first);
            EXPECT_LE(err, kGradTol) << e.key();
            double g2 = 0;
            for (double v : g) g2 += v * v;
            EXPECT_GT(g2, 0.0) << e.key() << ": a gradient that is zero checks nothing";
            checked.insert(e.key());
        }
        EXPECT_TRUE(checked.count("prompt/prompts"));
        EXPECT_TRUE(checked.count("prompt/attn_layer.in_proj_weight"));
        EXPECT_TRUE(checked.count("pq_code_embedding.weight"));
    }
};

} // namespace

TEST(PromptModelGrad, LightDropoutOff) {
    Whole(HeadMode::prompt_light, 0.0, 0.0).check(false);
}
TEST(PromptModelGrad, LightDropoutOn) {
    Whole(HeadMode::prompt_light, 0.3, 0.2).check(true);
}
TEST(PromptModelGrad, FullDropoutOff) {
    Whole(HeadMode::prompt_full, 0.0, 0.0).check(false);
}
TEST(PromptModelGrad, FullDropoutOn) {
    Whole(HeadMode::prompt_full, 0.3, 0.2).check(true);
}
