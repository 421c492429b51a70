// A pre-training client's Adam moments kept between rounds without their all-zero rows. Adam
// leaves a parameter row's m and v at exactly 0 until a step gives it a non-zero gradient, and
// a client's code-table gradient only reaches the rows its own items' codes use; so a small
// domain never touches most of the 32 x 257 table rows, and storing only touched rows is
// lossless: load() gives back the same bits store() saw (a row is dropped only if every value
// of m and v is +0.0f bit for bit). This is what lets ~1,000 clients fit on one node
// (docs/ARCHITECTURE.md §3). No training here; the engine expands before a client trains and
// compresses after.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "model/params.hpp"

namespace pfcr {

class CompactMoments {
public:
    // Keeps the rows of `m` and `v` (layout.total() floats each) that are not all +0.0f. A row
    // is shape[1..] of an entry with two or more dimensions; a 1-D entry is one row; so is each
    // alignment gap between entries.
    void store(const ParamLayout& layout, const float* m, const float* v);
    // Writes all layout.total() values of `m` and `v`: the kept rows, +0.0f elsewhere.
    void load(const ParamLayout& layout, float* m, float* v) const;
    // Heap bytes held (values and the row index).
    int64_t bytes() const;
    // Floats of m (= of v) kept.
    int64_t kept() const { return int64_t(m_.size()); }

private:
    std::vector<std::pair<int64_t, int64_t>> spans_; // (offset, length) of kept rows, merged
    std::vector<float> m_, v_;                       // kept values, span after span
};

} // namespace pfcr
