// The whole encoder (embedding -> L post-LN layers -> last position) in double precision:
// central-difference gradient check of every parameter, including the shared code table, with
// dropout on (fixed keys) and off; chunking invariance (a batch processed whole or row by row
// gives the same representations and the same dropout masks).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/tensor.hpp"
#include "encoder_fixture.hpp"
#include "gradcheck.hpp"
#include "model/encoder.hpp"

using namespace pfcr;

namespace {

struct Tiny {
    EncoderHyper hp;
    ParamLayout layout;
    std::vector<double> params;
    std::vector<int32_t> item_codes; // (V+1, M)
    std::vector<int32_t> items;
    std::vector<int64_t> off;
    int64_t B = 3, V = 10;

    static EncoderHyper hyper(double p_hid, double p_att) {
        EncoderHyper h;
        h.shape.hidden = 8;
        h.shape.heads = 2;
        h.shape.inner = 6;
        h.shape.layers = 2;
        h.shape.max_positions = 6;
        h.shape.code_dim = 3;
        h.shape.code_cap = 4;
        h.hidden_dropout = p_hid;
        h.attn_dropout = p_att;
        h.layer_norm_eps = 1e-12;
        return h;
    }
    Tiny(double p_hid, double p_att) : hp(hyper(p_hid, p_att)), layout(hp.shape) {
        params = test::encoder_test_params(layout, 7, 0.5, 3);
        item_codes = test::encoder_test_item_codes(V, hp.shape.code_dim, hp.shape.code_cap);
        // Lengths 1, 4 and T_max; item 3 repeats (its codes get two contributions).
        items = {5, 1, 2, 3, 3, 4, 6, 7, 8, 9, 10};
        off = {0, 1, 5, 11};
    }
};

// loss = sum probe * s, with the encoder's analytic gradient (all parameters) in `grad`.
double run(Tiny& t, std::vector<double>& grad, bool train, bool backward) {
    const KeyedRng rng(11, RngPurpose::dropout);
    DropoutKeys keys{&rng, 2, 5, 0, train};
    EncoderWorkspace<double> ws;
    const auto P = bind_tensors<const double>(t.params.data(), t.layout);
    const int64_t C = t.hp.shape.hidden;
    std::vector<double> s(size_t(t.B * C));
    encoder_forward(s.data(), P, t.hp, t.items.data(), t.off.data(), t.B, t.item_codes.data(), keys,
                    ws);
    const auto w = test::probe_weights(s.size(), 9);
    double loss = 0;
    for (size_t i = 0; i < s.size(); ++i) loss += w[i] * s[i];
    if (backward) {
        grad.assign(size_t(t.layout.total()), 0.0);
        const auto G = bind_tensors<double>(grad.data(), t.layout);
        std::vector<double> d_emb(size_t(t.off.back() * C), 0.0);
        encoder_backward(d_emb.data(), G, w.data(), P, t.hp, keys, ws);
        item_embedding_backward(G.code_table, d_emb.data(), t.items.data(), t.item_codes.data(),
                                t.off.back(), t.hp.shape.code_dim, C);
    }
    return loss;
}

void check_all(Tiny& t, bool train) {
    std::vector<double> grad;
    run(t, grad, train, true);
    std::vector<double> unused;
    for (const auto& e : t.layout.entries()) {
        std::vector<double> x(t.params.begin() + e.offset, t.params.begin() + e.offset + e.size);
        std::vector<double> g(grad.begin() + e.offset, grad.begin() + e.offset + e.size);
        const auto f = [&] {
            std::copy(x.begin(), x.end(), t.params.begin() + e.offset);
            return run(t, unused, train, false);
        };
        if (e.name.find("key.bias") != std::string::npos) {
            // q.(k_j + b) = q.k_j + q.b shifts every logit of a query row by the same amount,
            // and softmax is shift-invariant: the key bias has an exactly zero gradient (as in
            // PyTorch), so a relative error is meaningless; both must be ~0 instead.
            double a2 = 0;
            for (double v : g) a2 += v * v;
            EXPECT_LE(std::sqrt(a2), 1e-12) << e.name;
            continue;
        }
        const double err = test::gradcheck_rel_error(x, g, f);
        std::copy(x.begin(), x.end(), t.params.begin() + e.offset);
        EXPECT_LE(err, 1e-6) << e.name;
    }
}

} // namespace

TEST(Encoder, GradCheckEveryParameterDropoutOff) {
    Tiny t(0.0, 0.0);
    check_all(t, false);
}

TEST(Encoder, GradCheckEveryParameterDropoutOn) {
    // Masks are pure functions of the keys, so the loss is a smooth function of the parameters.
    Tiny t(0.3, 0.2);
    check_all(t, true);
}

TEST(Encoder, ChunkingDoesNotChangeRepresentationsOrMasks) {
    Tiny t(0.3, 0.2);
    const KeyedRng rng(11, RngPurpose::dropout);
    const auto P = bind_tensors<const double>(t.params.data(), t.layout);
    const int64_t C = t.hp.shape.hidden;
    EncoderWorkspace<double> ws;
    std::vector<double> whole(size_t(t.B * C));
    encoder_forward(whole.data(), P, t.hp, t.items.data(), t.off.data(), t.B, t.item_codes.data(),
                    DropoutKeys{&rng, 2, 5, 0, true}, ws);
    for (int64_t b = 0; b < t.B; ++b) {
        // Row b alone: its own offsets, first_batch_row = b keys the same dropout elements.
        const int64_t one_off[2] = {0, t.off[size_t(b + 1)] - t.off[size_t(b)]};
        std::vector<double> s(static_cast<size_t>(C));
        encoder_forward(s.data(), P, t.hp, t.items.data() + t.off[size_t(b)], one_off, 1,
                        t.item_codes.data(), DropoutKeys{&rng, 2, 5, b, true}, ws);
        for (int64_t c = 0; c < C; ++c)
            // Eigen's GEMM kernels differ with the row count in the last bits only.
            EXPECT_NEAR(s[size_t(c)], whole[size_t(b * C + c)], 1e-12) << "row " << b;
    }
}

TEST(Encoder, FloatInstantiationMatchesDouble) {
    Tiny t(0.3, 0.2);
    const KeyedRng rng(11, RngPurpose::dropout);
    std::vector<float> pf(t.params.begin(), t.params.end());
    const auto Pd = bind_tensors<const double>(t.params.data(), t.layout);
    const auto Pf = bind_tensors<const float>(pf.data(), t.layout);
    EncoderWorkspace<double> wd;
    EncoderWorkspace<float> wf;
    const int64_t C = t.hp.shape.hidden;
    std::vector<double> sd(size_t(t.B * C));
    std::vector<float> sf(size_t(t.B * C));
    DropoutKeys keys{&rng, 2, 5, 0, true};
    encoder_forward(sd.data(), Pd, t.hp, t.items.data(), t.off.data(), t.B, t.item_codes.data(),
                    keys, wd);
    encoder_forward(sf.data(), Pf, t.hp, t.items.data(), t.off.data(), t.B, t.item_codes.data(),
                    keys, wf);
    // The outputs are LayerNorm outputs of O(1); float rounding through ~20 kernels of width 8.
    for (size_t i = 0; i < sd.size(); ++i) EXPECT_NEAR(sf[i], sd[i], 1e-4);
}
