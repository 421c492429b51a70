// Full-sort ranking metrics (docs/METHOD.md §9): where the one relevant item lands among all V
// real items of the domain, then Recall@K and NDCG@K averaged over rows, with a chosen rule for
// items scored exactly like the target (TieRule). The padding column 0 is never ranked (scored
// -inf); history items are NOT masked. Not here: computing scores (loss.hpp: cosine_scores) or
// choosing which rows to evaluate. Dimension letters: B rows, V items (a scores row has V+1
// entries, column j = item j), U distinct item embeddings (DistinctItems).
#pragma once

#include "core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

namespace pfcr {

// What to do with items that score exactly like the target (eval.ties). Items with identical
// code rows have identical embeddings, so ties are common (Scientific: 671 of 8,442 test targets
// share their score with another item) and decide a few per cent of Recall@10.
//   expected    the exact expectation over a uniformly random order of the tied items
//               (McSherry & Najork 2008): unbiased, the default
//   pessimistic the target after every tied item (a lower bound)
//   optimistic  the target before every tied item (an upper bound)
//   lower_id    tied items ordered by item id (pfcr's only rule before eval.ties existed;
//               optimistic for targets with low ids)
enum class TieRule { expected, pessimistic, optimistic, lower_id };

inline const char* tie_rule_name(TieRule t) {
    switch (t) {
    case TieRule::expected:
        return "expected";
    case TieRule::pessimistic:
        return "pessimistic";
    case TieRule::optimistic:
        return "optimistic";
    case TieRule::lower_id:
        return "lower-id";
    }
    return "?";
}
inline TieRule parse_tie_rule(const std::string& s) {
    for (TieRule t :
         {TieRule::expected, TieRule::pessimistic, TieRule::optimistic, TieRule::lower_id})
        if (s == tie_rule_name(t)) return t;
    fail("eval.ties: '", s, "' is not one of expected, pessimistic, optimistic, lower-id");
}

// Where the target stands in one scores row: `ahead` other items score strictly higher, `tied`
// other items score exactly the same, `tied_lower` of those have a smaller item id. The
// target's rank is ahead + 1 .. ahead + tied + 1, depending on the order of the tied items.
struct TargetStanding {
    int64_t ahead = 0, tied = 0, tied_lower = 0;
};

// The ranks a rule gives one row: positions first .. first + span - 1, each equally likely
// (span = 1: one definite rank).
struct RankSpan {
    int64_t first = 1, span = 1;
};
inline RankSpan rank_span(const TargetStanding& s, TieRule rule) {
    switch (rule) {
    case TieRule::expected:
        return {s.ahead + 1, s.tied + 1};
    case TieRule::pessimistic:
        return {s.ahead + s.tied + 1, 1};
    case TieRule::optimistic:
        return {s.ahead + 1, 1};
    case TieRule::lower_id:
        break;
    }
    return {s.ahead + s.tied_lower + 1, 1};
}

// scores_row (V+1), target in 1..V -> its standing among items 1..V (column 0 skipped). The plain
// reference: one comparison per item. NaN in the target's score is a model bug and throws; a NaN
// elsewhere is neither ahead nor tied.
template <typename T>
TargetStanding target_standing(const T* scores_row, int64_t V, int32_t target) {
    check(target >= 1 && target <= V, "target_standing: target ", target, " outside 1..", V);
    const T st = scores_row[target];
    check(!std::isnan(st), "target_standing: NaN score for target item ", target);
    TargetStanding s;
    for (int64_t j = 1; j <= V; ++j) {
        if (j == target) continue;
        s.ahead += (scores_row[j] > st);
        const bool tie = (scores_row[j] == st);
        s.tied += tie;
        s.tied_lower += tie && j < target;
    }
    return s;
}

// The rank under the lower-id rule (= rank_span(target_standing(...), lower_id).first):
//   rank = 1 + #{j != target : s_j > s_t} + #{1 <= j < target : s_j == s_t}
template <typename T> int64_t rank_of_target(const T* scores_row, int64_t V, int32_t target) {
    return rank_span(target_standing(scores_row, V, target), TieRule::lower_id).first;
}

// Items 1..V grouped by identical code rows: such items have bit-identical embeddings, so
// evaluation scores each group once (U columns instead of V) and every member gets the very same
// score by construction (a GEMM scoring duplicate rows separately may round them differently).
struct DistinctItems {
    std::vector<int32_t> representative; // (U) the smallest item id of each group, ascending
    std::vector<int32_t> group_of;       // (V+1) item -> group; group_of[0] = -1 (padding)
    std::vector<int64_t> size;           // (U) members per group
    std::vector<int64_t> rank_in_group;  // (V+1) members of the item's group with a smaller id

    DistinctItems() = default;
    // item_codes (V+1, M) row-major, row 0 = padding (ignored).
    DistinctItems(const int32_t* item_codes, int64_t V, int64_t M) {
        group_of.assign(size_t(V + 1), -1);
        rank_in_group.assign(size_t(V + 1), 0);
        std::map<std::vector<int32_t>, int32_t> seen;
        for (int64_t j = 1; j <= V; ++j) {
            std::vector<int32_t> row(item_codes + j * M, item_codes + (j + 1) * M);
            const auto [it, fresh] = seen.emplace(std::move(row), int32_t(representative.size()));
            if (fresh) {
                representative.push_back(int32_t(j));
                size.push_back(0);
            }
            group_of[size_t(j)] = it->second;
            rank_in_group[size_t(j)] = size[size_t(it->second)]++;
        }
    }
    int64_t groups() const { return int64_t(representative.size()); }
    // Members of group g with an id below `item` (a cross-group tie under lower_id: rare, so a
    // scan of the item ids; groups are not stored as member lists).
    int64_t members_below(int32_t g, int32_t item) const {
        int64_t n = 0;
        for (int32_t j = representative[size_t(g)]; j < item; ++j) n += (group_of[size_t(j)] == g);
        return n;
    }
};

// scores_row (U): one score per group of `items`; target in 1..V -> its standing among items
// 1..V, the same as target_standing on the row expanded to every item.
template <typename T>
TargetStanding target_standing(const T* scores_row, const DistinctItems& items, int32_t target) {
    const int64_t V = int64_t(items.group_of.size()) - 1;
    check(target >= 1 && target <= V, "target_standing: target ", target, " outside 1..", V);
    const int32_t gt = items.group_of[size_t(target)];
    const T st = scores_row[gt];
    check(!std::isnan(st), "target_standing: NaN score for target item ", target);
    TargetStanding s;
    s.tied = items.size[size_t(gt)] - 1;
    s.tied_lower = items.rank_in_group[size_t(target)];
    // Group g's contribution (g != gt): its members ahead, or tied (a cross-group tie: different
    // codes, equal score).
    const auto group = [&](int64_t g) {
        const int64_t n = items.size[size_t(g)];
        s.ahead += (scores_row[g] > st) ? n : 0;
        if (scores_row[g] == st) {
            s.tied += n;
            if (items.representative[size_t(g)] < target)
                s.tied_lower += items.members_below(int32_t(g), target);
        }
    };
    int64_t g = 0;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    // 8 groups per step: the members ahead summed in 64-bit lanes (integer sums: exact in any
    // order, so the same counts), the rare ties and the target's own group left to group().
    // The scalar loop was a fifth of the full-sort evaluation.
    if constexpr (std::is_same_v<T, float>) {
        const __m256 vst = _mm256_set1_ps(st);
        __m512i ahead = _mm512_setzero_si512();
        for (; g + 8 <= items.groups(); g += 8) {
            const __m256 sc = _mm256_loadu_ps(scores_row + g);
            __mmask8 gt_mask = _mm256_cmp_ps_mask(sc, vst, _CMP_GT_OQ);
            __mmask8 eq_mask = _mm256_cmp_ps_mask(sc, vst, _CMP_EQ_OQ);
            if (gt >= g && gt < g + 8) { // the target's group: counted above
                gt_mask &= __mmask8(~(1u << (gt - g)));
                eq_mask &= __mmask8(~(1u << (gt - g)));
            }
            ahead = _mm512_mask_add_epi64(ahead, gt_mask, ahead,
                                          _mm512_loadu_si512(items.size.data() + g));
            for (int l = 0; l < 8; ++l)
                if (eq_mask & (1u << l)) group(g + l); // a tie: ahead adds 0 there
        }
        s.ahead += _mm512_reduce_add_epi64(ahead);
    }
#endif
    for (; g < items.groups(); ++g)
        if (g != gt) group(g);
    return s;
}

// Sums over evaluated rows for a list of cut-offs K. Keeps an integer count per rank span
// (first, span) with first <= max K (spans starting beyond land nowhere), so sums are exact and
// independent of the order or grouping in which rows are added or accumulators merged (batches,
// threads, MPI ranks); the means are then summed in (first, span) order:
//   Recall@K = (1/rows) Σ count · |[first, first+span-1] ∩ [1, K]| / span
//   NDCG@K   = (1/rows) Σ count · (1/span) Σ_{ρ in the span, ρ <= K} 1/log2(ρ+1)
// (one relevant item: IDCG = 1). With span 1 everywhere (every rule but expected) these are the
// plain mean hit rate and mean 1/log2(rank+1).
struct RankAccumulator {
    std::vector<int64_t> ks;                              // the cut-offs, e.g. {10, 50}
    int64_t kmax = 0;                                     // max of ks
    std::map<std::pair<int64_t, int64_t>, int64_t> spans; // (first, span) -> rows, first <= kmax
    int64_t rows = 0;                                     // every row added, whatever its rank

    explicit RankAccumulator(std::vector<int64_t> cutoffs) : ks(std::move(cutoffs)) {
        for (int64_t k : ks) {
            check(k >= 1, "RankAccumulator: cut-off K = ", k, " must be >= 1");
            kmax = std::max(kmax, k);
        }
    }

    void add(RankSpan r) {
        ++rows;
        if (r.first <= kmax) ++spans[{r.first, r.span}];
    }
    void add(int64_t rank) { add(RankSpan{rank, 1}); }
    // scores (B,V+1) row-major, targets (B) -> one add per row.
    template <typename T>
    void add_batch(const T* scores, const int32_t* targets, int64_t B, int64_t V, TieRule rule) {
        for (int64_t b = 0; b < B; ++b)
            add(rank_span(target_standing(scores + b * (V + 1), V, targets[b]), rule));
    }
    // scores (B,U): one column per group of `items`.
    template <typename T>
    void add_batch(const T* scores, const int32_t* targets, int64_t B, const DistinctItems& items,
                   TieRule rule) {
        for (int64_t b = 0; b < B; ++b)
            add(rank_span(target_standing(scores + b * items.groups(), items, targets[b]), rule));
    }
    void merge(const RankAccumulator& other) {
        check(other.ks == ks, "RankAccumulator::merge: different cut-off lists");
        rows += other.rows;
        for (const auto& [key, n] : other.spans) spans[key] += n;
    }

    // Mean over rows (0 when no rows). K in 1..max of ks.
    double recall(int64_t K) const {
        tracked(K);
        double sum = 0;
        for (const auto& [key, n] : spans) {
            const auto [first, span] = key;
            const int64_t in = std::clamp<int64_t>(K - first + 1, 0, span);
            if (in == 0) continue;
            sum += span == 1 ? double(n) : double(n) * double(in) / double(span);
        }
        return rows ? sum / double(rows) : 0.0;
    }
    double ndcg(int64_t K) const {
        tracked(K);
        double sum = 0;
        for (const auto& [key, n] : spans) {
            const auto [first, span] = key;
            if (first > K) continue;
            if (span == 1) {
                sum += double(n) / std::log2(double(first + 1));
                continue;
            }
            double gain = 0;
            for (int64_t r = first; r <= std::min(K, first + span - 1); ++r)
                gain += 1.0 / std::log2(double(r + 1));
            sum += double(n) * gain / double(span);
        }
        return rows ? sum / double(rows) : 0.0;
    }

private:
    void tracked(int64_t K) const {
        check(K >= 1 && K <= kmax, "RankAccumulator: K = ", K, " not tracked");
    }
};

} // namespace pfcr
