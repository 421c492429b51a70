// The parameter layout of the PFCR sequence model: every parameter's PyTorch state_dict name,
// shape and offset in ONE flat buffer. Parameters, gradients and Adam moments are buffers of
// the same layout; the same names label checkpoint datasets (ARCHITECTURE.md §5) and the
// `shared` flag says what federation sends. This file does not run the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pfcr {

// Sizes of the encoder (PFCR.md §4). Letters: C hidden, F inner, L layers, NH heads,
// T max positions, R code-table rows = code_dim * (code_cap + 1).
struct ModelShape {
    int64_t hidden = 300;       // C   hidden_size
    int64_t inner = 256;        // F   inner_size
    int64_t layers = 2;         // L   n_layers
    int64_t heads = 2;          // NH  n_heads
    int64_t max_positions = 50; // T   MAX_ITEM_LIST_LENGTH
    int64_t code_dim = 32;      // M
    int64_t code_cap = 256;
    int64_t code_rows() const { return code_dim * (code_cap + 1); }
};

enum class ParamInit { normal, zeros, ones }; // N(0, initializer_range^2), 0, 1

struct ParamEntry {
    std::string name;           // e.g. "trm_encoder.layer.0.multi_head_attention.query.weight"
    std::vector<int64_t> shape; // PyTorch shape; linear weights [out, in]
    int64_t offset = 0;         // into the flat buffer (elements)
    int64_t size = 0;           // product of shape
    ParamInit init = ParamInit::normal;
    bool shared = false; // federated (the code table) vs local to a client
};

class ParamLayout {
public:
    explicit ParamLayout(const ModelShape& shape);
    const std::vector<ParamEntry>& entries() const { return entries_; }
    const ParamEntry& at(const std::string& name) const; // throws Error if unknown
    int64_t total() const { return total_; }
    const ModelShape& shape() const { return shape_; }

private:
    void add(std::string name, std::vector<int64_t> shape, ParamInit init, bool shared = false);
    ModelShape shape_;
    std::vector<ParamEntry> entries_;
    int64_t total_ = 0;
};

// Initializes a flat buffer of `layout` as RecBole's _init_weights does (PFCR.md §4):
// weights and embeddings (incl. padding rows) ~ N(0, range^2), biases 0, LayerNorm 1 / 0.
// Every entry draws from its own keyed stream (seed, init, fnv(name)), so the values of a
// parameter do not depend on which other parameters exist or on their order.
void init_params(const ParamLayout& layout, float* params, uint64_t seed, double initializer_range);

} // namespace pfcr
