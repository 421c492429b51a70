// The parameter layout of the PFCR sequence model: every parameter's PyTorch state_dict name,
// shape and offset in ONE flat buffer. Parameters, gradients and Adam moments are buffers of
// the same layout; the same names label checkpoint datasets (docs/ARCHITECTURE.md §5) and the
// `shared` flag says what federation sends. This file does not run the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pfcr {

// Which fine-tuning head sits on the encoder (docs/METHOD.md §8; model/prompt.hpp): none
// (pre-training and plain fine-tuning), PFCR's "full prompt tuning" (id_prompt) or "light prompt
// tuning" (seq_prompt).
enum class HeadMode { none, prompt_full, prompt_light };

// Sizes of the encoder (docs/METHOD.md §4). Letters: C hidden, F inner, L layers, NH heads,
// T max positions, R code-table rows = code_dim * (code_cap + 1); for a prompt head also
// NP prompts, PH prompt heads, V1 ID-embedding rows.
struct ModelShape {
    int64_t hidden = 300;       // C   hidden_size
    int64_t inner = 256;        // F   inner_size
    int64_t layers = 2;         // L   n_layers
    int64_t heads = 2;          // NH  n_heads
    int64_t max_positions = 50; // T   MAX_ITEM_LIST_LENGTH
    int64_t code_dim = 32;      // M
    int64_t code_cap = 256;
    int64_t code_rows() const { return code_dim * (code_cap + 1); }
    // Fine-tuning head (all ignored when head == none).
    HeadMode head = HeadMode::none;
    int64_t n_prompts = 1024; // NP  rows of the domain prompt (PFCR hard-codes 1024)
    int64_t prompt_heads = 4; // PH  heads of the prompt attention (nn.MultiheadAttention)
    int64_t id_items = 0;     // V1  prompt_full: item_embedding rows = domain items + 1
    // false = the reference: the encoder is frozen except the code table; true = train it too.
    bool train_encoder = false;
};

// normal: N(0, initializer_range^2) (RecBole _init_weights); zeros; ones;
// uniform: U(-init_bound, init_bound) (Xavier-uniform, or PyTorch's Linear default
// kaiming_uniform(a=sqrt(5)) whose bound is 1/sqrt(fan_in)); unit_normal_pad0: N(0, 1) with row
// 0 zero (nn.Embedding(..., padding_idx=0) default init).
enum class ParamInit { normal, zeros, ones, uniform, unit_normal_pad0 };

struct ParamEntry {
    std::string name;           // e.g. "trm_encoder.layer.0.multi_head_attention.query.weight"
    std::vector<int64_t> shape; // PyTorch shape; linear weights [out, in]
    int64_t offset = 0;         // into the flat buffer (elements)
    int64_t size = 0;           // product of shape
    ParamInit init = ParamInit::normal;
    bool shared = false;   // federated (the code table) vs local to a client
    double init_bound = 0; // ParamInit::uniform only
    // A fine-tuning head's parameter (model/prompt.hpp): `name` is the key in the reference
    // head module's own state_dict (id_prompt / seq_prompt without "vqrec."), so it may repeat
    // an encoder name ("LayerNorm.weight"); key() = "prompt/" + name tells them apart and is
    // the checkpoint dataset name.
    bool prompt = false;
    // Adam updates it. false: frozen, as the reference sets requires_grad = False (the encoder
    // except the code table under a prompt head); its gradient is never computed.
    bool trainable = true;
    std::string key() const { return prompt ? "prompt/" + name : name; }
};

class ParamLayout {
public:
    explicit ParamLayout(const ModelShape& shape);
    const std::vector<ParamEntry>& entries() const { return entries_; }
    // By key(): encoder names as they are, head parameters as "prompt/<name>". Throws if unknown.
    const ParamEntry& at(const std::string& key) const;
    bool contains(const std::string& key) const;
    int64_t total() const { return total_; }
    // Offset of the first head parameter (total() without a head). Head entries follow every
    // encoder entry, so [0, head_begin()) is exactly today's encoder layout.
    int64_t head_begin() const { return head_begin_; }
    const ModelShape& shape() const { return shape_; }

private:
    ParamEntry& add(std::string name, std::vector<int64_t> shape, ParamInit init,
                    bool shared = false);
    void add_head(const ModelShape& s);
    ModelShape shape_;
    std::vector<ParamEntry> entries_;
    int64_t total_ = 0;
    int64_t head_begin_ = 0;
};

// Initializes a flat buffer of `layout` as RecBole's _init_weights does (docs/METHOD.md §4):
// weights and embeddings (incl. padding rows) ~ N(0, range^2), biases 0, LayerNorm 1 / 0;
// head parameters as the reference's PyTorch modules initialise them (see ParamInit).
// Every entry draws from its own keyed stream (seed, init, fnv(key)), so the values of a
// parameter do not depend on which other parameters exist or on their order.
void init_params(const ParamLayout& layout, float* params, uint64_t seed, double initializer_range);

} // namespace pfcr
