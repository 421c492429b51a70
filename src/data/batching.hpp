// Deterministic batching of a split: a per-epoch shuffle that is a pure function of
// (seed, client, epoch), and gathering of a batch's rows into a packed layout (offsets +
// concatenated true-length histories) that the model kernels read. No padding anywhere.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.hpp"
#include "data/atomic_files.hpp"

namespace pfcr {

// Permutation of 0..n-1 by Fisher–Yates on the keyed stream (shuffle, client, epoch).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint32_t client, uint32_t epoch);

// A batch of B rows, packed: history of batch row b is items[off[b] .. off[b+1]).
struct PackedBatch {
    std::vector<int64_t> off{0};  // (B+1)
    std::vector<int32_t> items;   // (N) internal item ids
    std::vector<int32_t> targets; // (B)
    std::vector<int64_t> rows;    // (B) row index in the split (for reports)
    int64_t max_len = 0;          // longest history in the batch
    int64_t size() const { return int64_t(targets.size()); }
    int64_t tokens() const { return off.back(); }
};

// Fills `out` (reusing its capacity) with split rows rows[0..n).
void gather_batch(const Split& split, const int64_t* rows, int64_t n, PackedBatch& out);

} // namespace pfcr
