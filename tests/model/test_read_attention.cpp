// The last layer's folded attention (read_attention.hpp) against the plain path it replaces
// (k, v projections of every token + attention.hpp), through the whole encoder: the same
// representations and the same gradient of every parameter (and of the token embeddings), with
// dropout on, off, and on the hidden states only (the probabilities' buffers then alias), and
// with some last-layer gradients not requested (frozen), in double (agreement to rounding: 1e-12
// relative, when a wrong term gives O(1)); and in float on larger shapes that run pfcr's own
// GEMM, edge tiles included (5e-4 of the double reference's norm: the plain float path itself is
// at up to 1.2e-4 on those shapes, float rounding through two layers). The folded path's own
// central-difference gradient check is test_encoder's (the encoder folds by default). The terms
// from c_h = q_h·bk_h (the key bias's gradient, its share of dq) are zero in exact arithmetic, so
// only their size is checked.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "encoder_fixture.hpp"
#include "gradcheck.hpp"
#include "model/encoder.hpp"

using namespace pfcr;

namespace {

struct Case {
    EncoderHyper hp;
    ParamLayout layout;
    std::vector<double> params;
    std::vector<int32_t> item_codes, items;
    std::vector<int64_t> off;
    int64_t B = 0;

    Case(int64_t C, int64_t NH, int64_t F, int64_t T_max, int64_t V, int64_t B_, double p_hid,
         double p_att)
        : hp(hyper(C, NH, F, T_max, p_hid, p_att)), layout(hp.shape), B(B_) {
        // Biases away from 0, so the value bias's term of the fold (σ_h bv_h) is exercised.
        params = test::encoder_test_params(layout, 5, 0.5, 4);
        item_codes = test::encoder_test_item_codes(V, hp.shape.code_dim, hp.shape.code_cap);
        off.push_back(0);
        for (int64_t b = 0; b < B; ++b) {
            const int64_t len = b == 0 ? 1 : b == 1 ? T_max : 1 + (b * 13) % T_max;
            for (int64_t t = 0; t < len; ++t) items.push_back(int32_t(1 + (b * 31 + t * 17) % V));
            off.push_back(off.back() + len);
        }
    }
    static EncoderHyper hyper(int64_t C, int64_t NH, int64_t F, int64_t T_max, double p_hid,
                              double p_att) {
        EncoderHyper h;
        h.shape.hidden = C;
        h.shape.heads = NH;
        h.shape.inner = F;
        h.shape.layers = 2;
        h.shape.max_positions = T_max;
        h.shape.code_dim = 3;
        h.shape.code_cap = 8;
        h.hidden_dropout = p_hid;
        h.attn_dropout = p_att;
        return h;
    }
};

struct Result {
    std::vector<double> s, grad, d_emb;
};

// Forward and backward of loss = Σ probe·s in precision T, folded or plain; with frozen, the last
// layer's key weight and value bias gradients are not requested (null).
template <typename T> Result run(const Case& c, bool fold, bool train, bool frozen = false) {
    EncoderHyper hp = c.hp;
    hp.fold_read_kv = fold;
    const KeyedRng rng(11, RngPurpose::dropout);
    const DropoutKeys keys{&rng, 2, 5, 0, train};
    const std::vector<T> params(c.params.begin(), c.params.end());
    const auto P = bind_tensors<const T>(params.data(), c.layout);
    const int64_t C = hp.shape.hidden, N = c.off.back();
    EncoderWorkspace<T> ws;
    std::vector<T> s(size_t(c.B * C));
    encoder_forward(s.data(), P, hp, c.items.data(), c.off.data(), c.B, c.item_codes.data(), keys,
                    ws);
    const auto probe = test::probe_weights(s.size(), 9);
    const std::vector<T> ds(probe.begin(), probe.end());
    std::vector<T> grad(size_t(c.layout.total()), T(0)), d_emb(size_t(N * C));
    auto G = bind_tensors<T>(grad.data(), c.layout);
    if (frozen) G.layers.back().k_w = G.layers.back().v_b = nullptr;
    encoder_backward(d_emb.data(), G, ds.data(), P, hp, keys, ws);
    return {std::vector<double>(s.begin(), s.end()), std::vector<double>(grad.begin(), grad.end()),
            std::vector<double>(d_emb.begin(), d_emb.end())};
}

// ||a - b|| / max(||b||, 1e-30) over [first, first + n)
double rel(const std::vector<double>& a, const std::vector<double>& b, int64_t first = 0,
           int64_t n = -1) {
    if (n < 0) n = int64_t(b.size()) - first;
    double d2 = 0, b2 = 0;
    for (int64_t i = first; i < first + n; ++i) {
        d2 += (a[size_t(i)] - b[size_t(i)]) * (a[size_t(i)] - b[size_t(i)]);
        b2 += b[size_t(i)] * b[size_t(i)];
    }
    return std::sqrt(d2) / std::max(std::sqrt(b2), 1e-30);
}

// Every output of `got` within tol (relative, per tensor) of `want`; the key biases, whose
// gradients are zero up to rounding on both paths (softmax is shift-invariant), within
// zero_tol times the largest gradient of `want` of zero instead.
void expect_close(const Case& c, const Result& got, const Result& want, double tol, double zero_tol,
                  const std::string& what) {
    double g_max = 0;
    for (double g : want.grad) g_max = std::max(g_max, std::abs(g));
    const double abs_zero = zero_tol * g_max;
    EXPECT_LE(rel(got.s, want.s), tol) << what << ": representations";
    EXPECT_LE(rel(got.d_emb, want.d_emb), tol) << what << ": token embedding gradient";
    for (const auto& e : c.layout.entries()) {
        if (e.name.find("key.bias") != std::string::npos) {
            for (int64_t i = 0; i < e.size; ++i) {
                EXPECT_LE(std::abs(got.grad[size_t(e.offset + i)]), abs_zero) << what << e.name;
                EXPECT_LE(std::abs(want.grad[size_t(e.offset + i)]), abs_zero) << what << e.name;
            }
            continue;
        }
        EXPECT_LE(rel(got.grad, want.grad, e.offset, e.size), tol) << what << ": " << e.name;
    }
}

} // namespace

TEST(ReadAttention, FoldedEqualsPlainPathInDouble) {
    struct Setting {
        double p_hid, p_att;
        bool frozen;
        const char* what;
    };
    for (const Setting& x :
         {Setting{0.0, 0.0, false, "dropout off"}, Setting{0.3, 0.3, false, "dropout on"},
          Setting{0.3, 0.0, false, "hidden dropout only"},
          Setting{0.3, 0.3, true, "last layer partly frozen"}}) {
        const Case c(8, 2, 6, 6, 10, 5, x.p_hid, x.p_att);
        const bool train = x.p_hid > 0 || x.p_att > 0;
        const Result folded = run<double>(c, true, train, x.frozen);
        const Result plain = run<double>(c, false, train, x.frozen);
        expect_close(c, folded, plain, 1e-12, 1e-12, x.what);
    }
}

TEST(ReadAttention, FoldedFloatMatchesDoubleOnGemmSizedShapes) {
    // C = 96 with 2 heads (HS = 48: a full and a partial 32-column panel), lengths 1..50 over
    // 50 histories (four 12-row panels and a 2-row one): the products run pfcr's own GEMM
    // (fast-GEMM builds) on strided per-head views, edge tiles included.
    const Case c(96, 2, 48, 50, 300, 50, 0.3, 0.3);
    const Result want = run<double>(c, false, true);
    const Result folded = run<float>(c, true, true), plain = run<float>(c, false, true);
    expect_close(c, folded, want, 5e-4, 1e-5, "float folded");
    // The plain float path as a yardstick of float rounding on these shapes.
    expect_close(c, plain, want, 5e-4, 1e-5, "float plain");
}
