// Parameters and item codes for the encoder tests in double precision (test_encoder,
// test_read_attention): the shared part of their fixtures. Not a model of real data.
#pragma once

#include <cstdint>
#include <vector>

#include "gradcheck.hpp"
#include "model/params.hpp"

namespace pfcr::test {

// Every parameter of `layout` in double: init_params at `init_scale` (larger than the paper's
// 0.02, so the non-linear parts are exercised), then every non-normal-initialised tensor
// (biases, LayerNorm gains and biases) moved by 0.3 x probe_weights(probe_seed) away from its
// 0 / 1, so that their gradients and terms are tested non-trivially.
inline std::vector<double> encoder_test_params(const ParamLayout& layout, uint64_t init_seed,
                                               double init_scale, unsigned probe_seed) {
    std::vector<float> f(size_t(layout.total()));
    init_params(layout, f.data(), init_seed, init_scale);
    std::vector<double> params(f.begin(), f.end());
    const auto probe = probe_weights(size_t(layout.total()), probe_seed);
    for (const auto& e : layout.entries())
        if (e.init != ParamInit::normal)
            for (int64_t i = 0; i < e.size; ++i)
                params[size_t(e.offset + i)] += 0.3 * probe[size_t(e.offset + i)];
    return params;
}

// item_codes (V+1, M) of items 1..V spread over the code rows m*(cap+1)+1 .. m*(cap+1)+cap of
// each code position m (row 0 of the table, the padding item's, for item 0), as the real
// codes are laid out.
inline std::vector<int32_t> encoder_test_item_codes(int64_t V, int64_t M, int64_t cap) {
    std::vector<int32_t> codes(size_t((V + 1) * M), 0);
    for (int64_t i = 1; i <= V; ++i)
        for (int64_t m = 0; m < M; ++m)
            codes[size_t(i * M + m)] = int32_t(m * (cap + 1) + (i * 7 + m * 3) % cap + 1);
    return codes;
}

} // namespace pfcr::test
