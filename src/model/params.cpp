// Parameter layout and initialisation (see params.hpp).
#include "model/params.hpp"

#include "core/error.hpp"
#include "core/rng.hpp"

#include <cmath>

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
    head_begin_ = total_;
    if (s.head == HeadMode::none) return;
    if (!s.train_encoder)
        for (auto& e : entries_) e.trainable = e.shared; // only the code table keeps learning
    const size_t first_head = entries_.size();
    add_head(s);
    head_begin_ = entries_[first_head].offset;
}

// The head's parameters, named by the reference module's own state_dict keys (PFCR
// model/light_prompt.py seq_prompt, model/full_prompt.py id_prompt), initialised as there:
//  prompts          nn.Parameter + xavier_uniform_          bound sqrt(6 / (NP + C))
//  attn_layer       nn.MultiheadAttention(C, PH) _reset_parameters: in_proj_weight
//                   xavier_uniform_ (fan_in C, fan_out 3C), in_proj_bias 0, out_proj.weight
//                   Linear default (bound 1/sqrt(C)), out_proj.bias 0
//  item_trm_encoder RecBole TransformerEncoder, never re-initialised (id_prompt does not apply
//                   _init_weights): Linear defaults (weight and bias bound 1/sqrt(fan_in)), LN 1/0
//  LayerNorm        1 / 0 (one module, used on the ID branch input AND after concat_layer)
//  concat_layer     Linear(3C, C) default: bound 1/sqrt(3C)
//  item_embedding   nn.Embedding(V1, C, padding_idx=0) default: N(0, 1), row 0 zero
// Order: the reference's registration order, except that item_embedding goes LAST: its
// gradient is row-sparse and is scattered like the code table's, outside the trainer's
// per-chunk gradient buffers, which therefore cover one contiguous range before it.
void ParamLayout::add_head(const ModelShape& s) {
    const int64_t C = s.hidden, F = s.inner, NP = s.n_prompts;
    check(NP > 0, "finetune.n_prompts must be positive");
    check(s.prompt_heads > 0 && C % s.prompt_heads == 0,
          "hidden_size must be a positive multiple of finetune.prompt_heads");
    const bool full = s.head == HeadMode::prompt_full;
    check(!full || s.id_items >= 1, "prompt-full needs the domain's item count (id_items)");
    const auto uniform = [&](std::string name, std::vector<int64_t> shape, double bound) {
        add(std::move(name), std::move(shape), ParamInit::uniform).init_bound = bound;
    };
    const double lin_c = 1.0 / std::sqrt(double(C)), lin_f = 1.0 / std::sqrt(double(F));
    const size_t first = entries_.size();
    uniform("prompts", {NP, C}, std::sqrt(6.0 / double(NP + C)));
    if (full) {
        for (int64_t l = 0; l < s.layers; ++l) {
            const std::string p = "item_trm_encoder.layer." + std::to_string(l) + ".";
            for (const char* proj : {"query", "key", "value", "dense"}) {
                uniform(p + "multi_head_attention." + proj + ".weight", {C, C}, lin_c);
                uniform(p + "multi_head_attention." + proj + ".bias", {C}, lin_c);
            }
            add(p + "multi_head_attention.LayerNorm.weight", {C}, ParamInit::ones);
            add(p + "multi_head_attention.LayerNorm.bias", {C}, ParamInit::zeros);
            uniform(p + "feed_forward.dense_1.weight", {F, C}, lin_c);
            uniform(p + "feed_forward.dense_1.bias", {F}, lin_c);
            uniform(p + "feed_forward.dense_2.weight", {C, F}, lin_f);
            uniform(p + "feed_forward.dense_2.bias", {C}, lin_f);
            add(p + "feed_forward.LayerNorm.weight", {C}, ParamInit::ones);
            add(p + "feed_forward.LayerNorm.bias", {C}, ParamInit::zeros);
        }
        add("LayerNorm.weight", {C}, ParamInit::ones);
        add("LayerNorm.bias", {C}, ParamInit::zeros);
    }
    uniform("attn_layer.in_proj_weight", {3 * C, C}, std::sqrt(6.0 / double(C + 3 * C)));
    add("attn_layer.in_proj_bias", {3 * C}, ParamInit::zeros);
    uniform("attn_layer.out_proj.weight", {C, C}, lin_c);
    add("attn_layer.out_proj.bias", {C}, ParamInit::zeros);
    if (full) {
        const double lin_3c = 1.0 / std::sqrt(double(3 * C));
        uniform("concat_layer.weight", {C, 3 * C}, lin_3c);
        uniform("concat_layer.bias", {C}, lin_3c);
        add("item_embedding.weight", {s.id_items, C}, ParamInit::unit_normal_pad0);
    }
    for (size_t i = first; i < entries_.size(); ++i) entries_[i].prompt = true;
}

ParamEntry& ParamLayout::add(std::string name, std::vector<int64_t> shape, ParamInit init,
                             bool shared) {
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
    return entries_.back();
}

const ParamEntry& ParamLayout::at(const std::string& key) const {
    for (const auto& e : entries_)
        if (e.key() == key) return e;
    fail("unknown parameter '", key, "'");
}

bool ParamLayout::contains(const std::string& key) const {
    for (const auto& e : entries_)
        if (e.key() == key) return true;
    return false;
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
        case ParamInit::normal:
        case ParamInit::uniform:
        case ParamInit::unit_normal_pad0: {
            uint64_t h = 0xcbf29ce484222325ull; // FNV-1a of the key keys the stream
            for (unsigned char c : e.key()) h = (h ^ c) * 0x100000001b3ull;
            auto s = rng.stream(uint32_t(h), uint32_t(h >> 32));
            if (e.init == ParamInit::normal) {
                for (int64_t i = 0; i < e.size; ++i) p[i] = float(s.normal() * initializer_range);
            } else if (e.init == ParamInit::uniform) {
                for (int64_t i = 0; i < e.size; ++i)
                    p[i] = float((2.0 * s.uniform() - 1.0) * e.init_bound);
            } else {
                const int64_t row = e.shape.back(); // padding row 0 = the first `row` elements
                for (int64_t i = 0; i < e.size; ++i) p[i] = i < row ? 0.0f : float(s.normal());
            }
            break;
        }
        }
    }
}

} // namespace pfcr
