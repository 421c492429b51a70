// Keyed shuffles and packed batches (see batching.hpp).
#include "data/batching.hpp"

#include <algorithm>
#include <numeric>

namespace pfcr {

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint32_t client, uint32_t epoch) {
    std::vector<int64_t> perm(size_t(std::max<int64_t>(n, 0)));
    std::iota(perm.begin(), perm.end(), int64_t(0));
    auto s = KeyedRng(seed, RngPurpose::shuffle).stream(client, epoch);
    for (int64_t i = n - 1; i > 0; --i)
        std::swap(perm[size_t(i)], perm[size_t(s.below(uint64_t(i) + 1))]);
    return perm;
}

void gather_batch(const Split& split, const int64_t* rows, int64_t n, PackedBatch& out) {
    out.off.assign(1, 0);
    out.items.clear();
    out.targets.clear();
    out.rows.assign(rows, rows + n);
    out.max_len = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t r = rows[i];
        const int64_t a = split.indptr[size_t(r)], b = split.indptr[size_t(r + 1)];
        out.items.insert(out.items.end(), split.items.begin() + a, split.items.begin() + b);
        out.off.push_back(int64_t(out.items.size()));
        out.targets.push_back(split.targets[size_t(r)]);
        out.max_len = std::max(out.max_len, b - a);
    }
}

} // namespace pfcr
