// See compact_moments.hpp.
#include "federation/compact_moments.hpp"

#include <algorithm>
#include <cstring>

namespace pfcr {
namespace {

// True if every value is +0.0f (bit pattern 0): -0.0f and denormals count as content.
bool all_plus_zero(const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, x + i, sizeof bits);
        if (bits != 0) return false;
    }
    return true;
}

} // namespace

void CompactMoments::store(const ParamLayout& layout, const float* m, const float* v) {
    // Built aside and swapped in: an allocation failure leaves the stored moments intact.
    std::vector<std::pair<int64_t, int64_t>> spans;
    std::vector<float> km, kv;
    const auto keep = [&](int64_t at, int64_t len) {
        if (len <= 0 || (all_plus_zero(m + at, len) && all_plus_zero(v + at, len))) return;
        if (!spans.empty() && spans.back().first + spans.back().second == at)
            spans.back().second += len;
        else
            spans.emplace_back(at, len);
        km.insert(km.end(), m + at, m + at + len);
        kv.insert(kv.end(), v + at, v + at + len);
    };
    // Entries in offset order; the alignment gaps between them count as rows too, so that even
    // a value there would survive.
    std::vector<const ParamEntry*> order;
    for (const auto& e : layout.entries()) order.push_back(&e);
    std::sort(order.begin(), order.end(),
              [](const ParamEntry* a, const ParamEntry* b) { return a->offset < b->offset; });
    int64_t pos = 0;
    for (const ParamEntry* e : order) {
        keep(pos, e->offset - pos);
        const int64_t rows = e->shape.size() >= 2 ? e->shape[0] : 1;
        const int64_t len = rows > 0 ? e->size / rows : 0;
        for (int64_t r = 0; r < rows; ++r) keep(e->offset + r * len, len);
        pos = e->offset + e->size;
    }
    keep(pos, layout.total() - pos);
    km.shrink_to_fit();
    kv.shrink_to_fit();
    spans.shrink_to_fit();
    spans_.swap(spans);
    m_.swap(km);
    v_.swap(kv);
}

void CompactMoments::load(const ParamLayout& layout, float* m, float* v) const {
    std::fill(m, m + layout.total(), 0.0f);
    std::fill(v, v + layout.total(), 0.0f);
    int64_t k = 0;
    for (const auto& [at, len] : spans_) {
        std::copy(m_.begin() + k, m_.begin() + k + len, m + at);
        std::copy(v_.begin() + k, v_.begin() + k + len, v + at);
        k += len;
    }
}

int64_t CompactMoments::bytes() const {
    return int64_t(sizeof(float) * (m_.capacity() + v_.capacity()) +
                   sizeof(spans_[0]) * spans_.capacity());
}

} // namespace pfcr
