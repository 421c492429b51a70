// Full-sort ranking metrics (docs/METHOD.md §9): the 1-based rank of the one relevant item among
// all V real items of the domain, then Recall@K and NDCG@K averaged over rows. The padding column
// 0 is never ranked (scored -inf); history items are NOT masked. Not here: computing scores
// (loss.hpp: cosine_scores) or choosing which rows to evaluate.
// Dimension letters: B rows, V items (a scores row has V+1 entries, column j = item j).
#pragma once

#include "core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace pfcr {

// scores_row (V+1), target in 1..V -> rank in 1..V
//   rank = 1 + #{j in 1..V, j != target : s_j > s_t} + #{1 <= j < target : s_j == s_t}
// i.e. ties are broken by lower item id first: an equally scored item with a smaller id ranks
// ahead of the target, one with a larger id behind it. Column 0 is skipped (= -inf).
// NaN in the target's score is a model bug and throws; a NaN elsewhere never ranks ahead.
template <typename T> int64_t rank_of_target(const T* scores_row, int64_t V, int32_t target) {
    check(target >= 1 && target <= V, "rank_of_target: target ", target, " outside 1..", V);
    const T st = scores_row[target];
    check(!std::isnan(st), "rank_of_target: NaN score for target item ", target);
    int64_t ahead = 0;
    for (int64_t j = 1; j < target; ++j) ahead += (scores_row[j] >= st); // ties count: lower id
    for (int64_t j = target + 1; j <= V; ++j) ahead += (scores_row[j] > st);
    return 1 + ahead;
}

// Sums over evaluated rows for a list of cut-offs K. Keeps an integer histogram of ranks
// 1..max K (ranks beyond land in no bucket), so sums are exact and independent of the order
// or grouping in which rows are added or accumulators merged (batches, threads, MPI ranks):
//   Recall@K = (1/rows) sum_{ρ<=K} count[ρ]
//   NDCG@K   = (1/rows) sum_{ρ<=K} count[ρ] / log2(ρ+1)      (one relevant item: IDCG = 1)
struct RankAccumulator {
    std::vector<int64_t> ks;         // the cut-offs, e.g. {10, 50}
    std::vector<int64_t> rank_count; // (max K + 1): rank_count[ρ] = rows with rank ρ <= max K
    int64_t rows = 0;                // every row added, whatever its rank

    explicit RankAccumulator(std::vector<int64_t> cutoffs) : ks(std::move(cutoffs)) {
        int64_t kmax = 0;
        for (int64_t k : ks) {
            check(k >= 1, "RankAccumulator: cut-off K = ", k, " must be >= 1");
            kmax = std::max(kmax, k);
        }
        rank_count.assign(size_t(kmax + 1), 0);
    }

    void add(int64_t rank) {
        ++rows;
        if (rank < int64_t(rank_count.size())) ++rank_count[size_t(rank)];
    }
    // scores (B,V+1) row-major, targets (B) -> one add per row.
    template <typename T>
    void add_batch(const T* scores, const int32_t* targets, int64_t B, int64_t V) {
        for (int64_t b = 0; b < B; ++b) add(rank_of_target(scores + b * (V + 1), V, targets[b]));
    }
    void merge(const RankAccumulator& other) {
        check(other.ks == ks, "RankAccumulator::merge: different cut-off lists");
        rows += other.rows;
        for (size_t r = 0; r < rank_count.size(); ++r) rank_count[r] += other.rank_count[r];
    }

    // Mean over rows (0 when no rows). K must be <= max of ks.
    double recall(int64_t K) const {
        check(K >= 1 && K < int64_t(rank_count.size()), "RankAccumulator: K = ", K, " not tracked");
        int64_t hits = 0;
        for (int64_t r = 1; r <= K; ++r) hits += rank_count[size_t(r)];
        return rows ? double(hits) / double(rows) : 0.0;
    }
    double ndcg(int64_t K) const {
        check(K >= 1 && K < int64_t(rank_count.size()), "RankAccumulator: K = ", K, " not tracked");
        double sum = 0;
        for (int64_t r = 1; r <= K; ++r)
            sum += double(rank_count[size_t(r)]) / std::log2(double(r + 1));
        return rows ? sum / double(rows) : 0.0;
    }
};

} // namespace pfcr
