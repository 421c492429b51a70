// Parameter layout and initialisation (see params.hpp).
#include "model/params.hpp"

#include "core/error.hpp"
#include "core/rng.hpp"

namespace pfcr {

ParamLayout::ParamLayout(const ModelShape& s) : shape_(s) {
    check(s.hidden > 0 && s.heads > 0 && s.hidden % s.heads == 0,
          "hidden_size must be a positive multiple of n_heads");
    const int64_t C = s.hidden, F = s.inner;
    // Registration order of PFCR/VQRec's modules, hence of its state_dict.
    add("pq_code_embedding.weight", {s.code_rows(), C}, ParamInit::normal, /*shared=*/true);
    for (int64_t l = 0; l < s.layers; ++l) {
        const std::string p = "trm_encoder.layer." + std::to_string(l) + ".";
        for (const char* proj : {"query", "key", "value", "dense"}) {
            add(p + "multi_head_attention." + proj + ".weight", {C, C}, ParamInit::normal);
            add(p + "multi_head_attention." + proj + ".bias", {C}, ParamInit::zeros);
        }
        add(p + "multi_head_attention.LayerNorm.weight", {C}, ParamInit::ones);
        add(p + "multi_head_attention.LayerNorm.bias", {C}, ParamInit::zeros);
        add(p + "feed_forward.dense_1.weight", {F, C}, ParamInit::normal);
        add(p + "feed_forward.dense_1.bias", {F}, ParamInit::zeros);
        add(p + "feed_forward.dense_2.weight", {C, F}, ParamInit::normal);
        add(p + "feed_forward.dense_2.bias", {C}, ParamInit::zeros);
        add(p + "feed_forward.LayerNorm.weight", {C}, ParamInit::ones);
        add(p + "feed_forward.LayerNorm.bias", {C}, ParamInit::zeros);
    }
    add("position_embedding.weight", {s.max_positions, C}, ParamInit::normal);
    add("LayerNorm.weight", {C}, ParamInit::ones);
    add("LayerNorm.bias", {C}, ParamInit::zeros);
}

void ParamLayout::add(std::string name, std::vector<int64_t> shape, ParamInit init, bool shared) {
    ParamEntry e;
    e.name = std::move(name);
    e.size = 1;
    for (int64_t d : shape) e.size *= d;
    e.shape = std::move(shape);
    // Keep every tensor 16-float (64-byte) aligned inside the flat buffer for vector loads.
    e.offset = (total_ + 15) / 16 * 16;
    e.init = init;
    e.shared = shared;
    total_ = e.offset + e.size;
    entries_.push_back(std::move(e));
}

const ParamEntry& ParamLayout::at(const std::string& name) const {
    for (const auto& e : entries_)
        if (e.name == name) return e;
    fail("unknown parameter '", name, "'");
}

void init_params(const ParamLayout& layout, float* params, uint64_t seed,
                 double initializer_range) {
    const KeyedRng rng(seed, RngPurpose::init);
    for (const auto& e : layout.entries()) {
        float* p = params + e.offset;
        switch (e.init) {
        case ParamInit::zeros:
            for (int64_t i = 0; i < e.size; ++i) p[i] = 0.0f;
            break;
        case ParamInit::ones:
            for (int64_t i = 0; i < e.size; ++i) p[i] = 1.0f;
            break;
        case ParamInit::normal: {
            uint64_t h = 0xcbf29ce484222325ull; // FNV-1a of the name keys the stream
            for (unsigned char c : e.name) h = (h ^ c) * 0x100000001b3ull;
            auto s = rng.stream(uint32_t(h), uint32_t(h >> 32));
            for (int64_t i = 0; i < e.size; ++i) p[i] = float(s.normal() * initializer_range);
            break;
        }
        }
    }
}

} // namespace pfcr
