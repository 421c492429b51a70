// Whole-model parity with PyTorch through the committed fixture tests/reference/
// encoder_fixture.h5 (made by make_encoder_fixture.py with Debian's python3-torch, float64,
// dropout off): a batch with history lengths 1..50 gives the same loss, logits, every
// parameter gradient, and parameters after 3 Adam steps, to 1e-9 relative in double (the
// issue asks for 1e-5; double arithmetic on both sides leaves only rounding-order noise).
// The float trainer's loss on the same batch matches to 1e-5.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "io/h5.hpp"
#include "model/adam.hpp"
#include "model/encoder.hpp"
#include "model/loss.hpp"
#include "model/trainer.hpp"

using namespace pfcr;

namespace {

struct Fixture {
    h5::File f =
        h5::File::open_read(std::string(PFCR_SOURCE_DIR) + "/tests/reference/encoder_fixture.h5");
    EncoderHyper hp;
    double tau = 0, lr = 0;
    int64_t V = 0;
    std::vector<int32_t> codes, items, targets;
    std::vector<int64_t> off;

    Fixture() {
        hp.shape.hidden = f.attr_int("hidden_size");
        hp.shape.inner = f.attr_int("inner_size");
        hp.shape.layers = f.attr_int("n_layers");
        hp.shape.heads = f.attr_int("n_heads");
        hp.shape.max_positions = f.attr_int("MAX_ITEM_LIST_LENGTH");
        hp.shape.code_dim = f.attr_int("code_dim");
        hp.shape.code_cap = f.attr_int("code_cap");
        hp.hidden_dropout = hp.attn_dropout = 0.0;
        hp.layer_norm_eps = f.attr_double("layer_norm_eps");
        tau = f.attr_double("temperature");
        lr = f.attr_double("learning_rate");
        V = f.attr_int("n_items");
        codes = f.read<int32_t>("item_codes");
        const auto b = f.open_group("batch");
        off = b.read<int64_t>("indptr");
        items = b.read<int32_t>("items");
        targets = b.read<int32_t>("targets");
    }
    // A flat buffer of the layout filled from group `g` (state_dict names).
    std::vector<double> tensors(const ParamLayout& layout, const std::string& g) const {
        std::vector<double> out(size_t(layout.total()), 0.0);
        const auto grp = f.open_group(g);
        for (const auto& e : layout.entries()) {
            h5::Shape shape;
            const auto v = grp.read<double>(e.name, &shape);
            EXPECT_EQ(int64_t(v.size()), e.size) << e.name;
            std::copy(v.begin(), v.end(), out.begin() + e.offset);
        }
        return out;
    }
    int64_t B() const { return int64_t(targets.size()); }
};

// Forward + backward of the double model: returns the loss; fills logits (B,V1) and grad.
double loss_and_grad(const Fixture& fx, const ParamLayout& layout,
                     const std::vector<double>& params, std::vector<double>& logits,
                     std::vector<double>& grad) {
    const int64_t B = fx.B(), C = fx.hp.shape.hidden, V1 = fx.V + 1, M = fx.hp.shape.code_dim;
    const KeyedRng rng(1, RngPurpose::dropout);
    const DropoutKeys keys{&rng, 0, 0, 0, false};
    const auto P = bind_tensors<const double>(params.data(), layout);
    EncoderWorkspace<double> ws;
    std::vector<double> s(size_t(B * C)), E(size_t(V1 * C));
    encoder_forward(s.data(), P, fx.hp, fx.items.data(), fx.off.data(), B, fx.codes.data(), keys,
                    ws);
    all_item_embeddings_forward(E.data(), fx.codes.data(), P.code_table, V1, M, C);
    std::vector<double> s_hat(size_t(B * C)), s_norm(static_cast<size_t>(B)), e_hat(size_t(V1 * C)),
        e_norm(static_cast<size_t>(V1)), probs(size_t(B * V1)), d_s_hat(size_t(B * C)),
        d_e_hat(size_t(V1 * C));
    const CosineCeBuffers<double> buf{s_hat.data(), s_norm.data(), e_hat.data(),   e_norm.data(),
                                      probs.data(), probs.data(),  d_s_hat.data(), d_e_hat.data()};
    const double loss =
        cosine_ce_forward(buf, s.data(), E.data(), fx.targets.data(), B, V1, C, fx.tau);
    logits.assign(size_t(B * V1), 0.0);
    cosine_scores(logits.data(), s_hat.data(), e_hat.data(), B, V1, C, fx.tau);
    std::vector<double> ds(size_t(B * C), 0.0), dE(size_t(V1 * C), 0.0),
        d_emb(size_t(fx.off.back() * C), 0.0);
    cosine_ce_backward(ds.data(), dE.data(), buf, fx.targets.data(), B, V1, C, fx.tau);
    grad.assign(size_t(layout.total()), 0.0);
    const auto G = bind_tensors<double>(grad.data(), layout);
    encoder_backward(d_emb.data(), G, ds.data(), P, fx.hp, keys, ws);
    item_embedding_backward(G.code_table, d_emb.data(), fx.items.data(), fx.codes.data(),
                            fx.off.back(), M, C);
    all_item_embeddings_backward(G.code_table, dE.data(), fx.codes.data(), V1, M, C);
    return loss;
}

double rel_err(const double* a, const double* b, int64_t n) {
    double d2 = 0, b2 = 0, a2 = 0;
    for (int64_t i = 0; i < n; ++i) {
        d2 += (a[i] - b[i]) * (a[i] - b[i]);
        a2 += a[i] * a[i];
        b2 += b[i] * b[i];
    }
    return std::sqrt(d2) / std::max({std::sqrt(a2), std::sqrt(b2), 1e-300});
}

bool is_key_bias(const std::string& name) {
    return name.find("key.bias") != std::string::npos;
}

} // namespace

TEST(Parity, LossLogitsAndEveryGradientMatchPyTorch) {
    const Fixture fx;
    const ParamLayout layout(fx.hp.shape);
    const auto params = fx.tensors(layout, "weights");
    std::vector<double> logits, grad;
    const double loss = loss_and_grad(fx, layout, params, logits, grad);
    const double expected_loss = fx.f.read<double>("expected/loss")[0];
    EXPECT_NEAR(loss, expected_loss, 1e-9 * std::abs(expected_loss));
    const auto expected_logits = fx.f.read<double>("expected/logits");
    ASSERT_EQ(expected_logits.size(), logits.size());
    EXPECT_LE(rel_err(logits.data(), expected_logits.data(), int64_t(logits.size())), 1e-9);
    const auto expected_grad = fx.tensors(layout, "expected/grad");
    for (const auto& e : layout.entries()) {
        const double* a = grad.data() + e.offset;
        const double* b = expected_grad.data() + e.offset;
        if (is_key_bias(e.name)) {
            // Exactly zero in exact arithmetic (softmax shift invariance): both are rounding noise.
            for (int64_t i = 0; i < e.size; ++i) {
                EXPECT_LE(std::abs(a[i]), 1e-12) << e.name;
                EXPECT_LE(std::abs(b[i]), 1e-12) << e.name;
            }
            continue;
        }
        EXPECT_LE(rel_err(a, b, e.size), 1e-9) << e.name;
    }
    // padding_idx = 0: row 0 of the code table gets no gradient, as in PyTorch.
    for (int64_t c = 0; c < fx.hp.shape.hidden; ++c) EXPECT_EQ(grad[size_t(c)], 0.0);
}

TEST(Parity, ThreeAdamStepsMatchPyTorch) {
    const Fixture fx;
    const ParamLayout layout(fx.hp.shape);
    auto params = fx.tensors(layout, "weights");
    const auto start = params;
    std::vector<double> m(params.size(), 0.0), v(params.size(), 0.0), logits, grad;
    for (int64_t t = 1; t <= 3; ++t) {
        loss_and_grad(fx, layout, params, logits, grad);
        adam_step(params.data(), grad.data(), m.data(), v.data(), int64_t(params.size()), fx.lr,
                  0.9, 0.999, 1e-8, t);
    }
    const auto expected = fx.tensors(layout, "expected/after_3_adam");
    for (const auto& e : layout.entries()) {
        if (is_key_bias(e.name)) {
            // Adam turns the key bias's zero-plus-noise gradient into +-lr steps of arbitrary
            // sign in ANY implementation; only the bound |change| <= 3 lr is meaningful.
            for (int64_t i = 0; i < e.size; ++i) {
                EXPECT_LE(std::abs(params[size_t(e.offset + i)] - start[size_t(e.offset + i)]),
                          3 * fx.lr + 1e-12);
                EXPECT_LE(std::abs(expected[size_t(e.offset + i)] - start[size_t(e.offset + i)]),
                          3 * fx.lr + 1e-12);
            }
            continue;
        }
        EXPECT_LE(rel_err(params.data() + e.offset, expected.data() + e.offset, e.size), 1e-9)
            << e.name;
    }
}

TEST(Parity, FloatTrainerLossMatchesPyTorch) {
    const Fixture fx;
    PreparedDomain dom;
    dom.name = "fixture";
    dom.n_items = fx.V;
    dom.item_codes = fx.codes;
    TrainOptions opt;
    opt.hp = fx.hp;
    opt.temperature = fx.tau;
    opt.learning_rate = fx.lr;
    opt.chunk_rows = 4; // two chunks: exercises the chunked reduction
    ModelState st(fx.hp.shape);
    const auto w = fx.tensors(st.layout, "weights");
    for (size_t i = 0; i < w.size(); ++i) st.params[int64_t(i)] = float(w[i]);
    Trainer tr(opt, dom);
    PackedBatch batch;
    batch.off = fx.off;
    batch.items = fx.items;
    batch.targets = fx.targets;
    batch.max_len = 50;
    const double loss = tr.train_step(st, batch);
    const double expected = fx.f.read<double>("expected/loss")[0];
    // float32 end to end: about 1e-7 relative per operation over a few hundred-term sums.
    EXPECT_NEAR(loss, expected, 1e-5 * expected);
}
