// Input embeddings of PFCR (docs/METHOD.md §3-4): an item is the MEAN of its M code-table rows (no
// item-ID embedding), and a learned position embedding is added to each packed token. Forward
// and backward side by side; backward accumulates. Not here: LayerNorm/dropout after the sum,
// the L2 normalisation of candidates (loss.hpp).
// Dimension letters: n looked-up items, V items (V+1 rows with the padding item 0), M code_dim,
// R code-table rows, C hidden, B sequences, T positions, N packed tokens.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/phase_timer.hpp"
#include "model/vmath.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace pfcr {

// Code-table row 0 is the padding row: PFCR builds the table as
// nn.Embedding(code_dim*(code_cap+1), C, padding_idx=0), and PyTorch's embedding backward never
// writes the padding_idx row. Only the padding item 0 uses it (real items' codes are
// m*(code_cap+1)+c+1 >= 1), so row 0 keeps its initial value forever; backward skips it.
inline constexpr int32_t kPaddingCodeRow = 0;

namespace detail {
#if defined(__AVX512F__)
// o (C) = sum over i < n of row idx[i] of rows (rows of C floats), in i order, then divided by
// `divisor` unless it is 0: 64 columns at a time whose partial sums stay in four registers over
// the n rows, instead of loading and storing o once per row; per element the same additions in
// the same order as the plain loops (so the same bits). The code-mean row and the code table's
// row scatter are both this sum (inlined into each: a call per row measured slower).
[[gnu::always_inline]] inline void sum_indexed_rows(float* o, const float* rows, const int32_t* idx,
                                                    int64_t n, int64_t C, float divisor) {
    const __m512 d = _mm512_set1_ps(divisor);
    for (int64_t k0 = 0; k0 < C; k0 += 64) {
        const Tile64 tile(std::min<int64_t>(64, C - k0));
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < n; ++i) {
            const float* row = rows + int64_t(idx[i]) * C + k0;
            a0 = _mm512_add_ps(a0, tile.load(0, row));
            a1 = _mm512_add_ps(a1, tile.load(1, row + 16));
            a2 = _mm512_add_ps(a2, tile.load(2, row + 32));
            a3 = _mm512_add_ps(a3, tile.load(3, row + 48));
        }
        if (divisor != 0.0f) {
            a0 = _mm512_div_ps(a0, d), a1 = _mm512_div_ps(a1, d);
            a2 = _mm512_div_ps(a2, d), a3 = _mm512_div_ps(a3, d);
        }
        tile.store(0, o + k0, a0);
        tile.store(1, o + k0 + 16, a1);
        tile.store(2, o + k0 + 32, a2);
        tile.store(3, o + k0 + 48, a3);
    }
}
#endif

// o (C) = (sum_m table[codes[m]]) / M : sum in m order, then one division (torch's mean).
// With AVX-512 (float): sum_indexed_rows, the same bits as the plain loops below.
template <typename T>
void code_mean_row(T* o, const int32_t* codes, const T* code_table, int64_t M, int64_t C) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        sum_indexed_rows(o, code_table, codes, M, C, float(M));
        return;
    }
#endif
    for (int64_t k = 0; k < C; ++k) o[k] = T(0);
    for (int64_t m = 0; m < M; ++m) {
        const T* row = code_table + int64_t(codes[m]) * C;
        for (int64_t k = 0; k < C; ++k) o[k] += row[k];
    }
    for (int64_t k = 0; k < C; ++k) o[k] /= T(M);
}
// d_code_table[codes[m]] += g / M for m = 0..M-1 in order, skipping the padding row.
template <typename T>
void code_mean_row_backward(T* d_code_table, const T* g, const int32_t* codes, int64_t M,
                            int64_t C) {
    for (int64_t m = 0; m < M; ++m) {
        if (codes[m] == kPaddingCodeRow) continue;
        T* d = d_code_table + int64_t(codes[m]) * C;
        for (int64_t k = 0; k < C; ++k) d[k] += g[k] / T(M);
    }
}
} // namespace detail

// items (n) int32 ids in 0..V, item_codes (V+1,M), code_table (R,C) -> out (n,C)
// out[r] = (sum_m code_table[item_codes[items[r], m]]) / M   (torch: Embedding(...).mean(-2))
template <typename T>
void item_embedding_forward(T* out, const int32_t* items, const int32_t* item_codes,
                            const T* code_table, int64_t n, int64_t M, int64_t C) {
    const prof::PhaseScope timer(prof::Phase::embedding_fwd);
    for (int64_t r = 0; r < n; ++r)
        detail::code_mean_row(out + r * C, item_codes + int64_t(items[r]) * M, code_table, M, C);
}

// dout (n,C), items (n), item_codes (V+1,M) -> d_code_table (R,C) +=
// Inverts out[r] = sum_m table[code_m]/M: each code row receives dout[r]/M, once per occurrence
// (an item listed twice, or two items sharing a code, add up). Scatter order is fixed
// (r ascending, then m), so the float result is deterministic; no atomics, no threads.
// Row kPaddingCodeRow receives nothing (padding_idx semantics, see above).
template <typename T>
void item_embedding_backward(T* d_code_table, const T* dout, const int32_t* items,
                             const int32_t* item_codes, int64_t n, int64_t M, int64_t C) {
    const prof::PhaseScope timer(prof::Phase::embedding_bwd);
    for (int64_t r = 0; r < n; ++r)
        detail::code_mean_row_backward(d_code_table, dout + r * C,
                                       item_codes + int64_t(items[r]) * M, M, C);
}

// The candidate matrix: every item 0..V (row 0 = padding item) in order.
// item_codes (V1,M), code_table (R,C) -> out (V1,C), V1 = V+1. Same math as above with
// items = 0..V1-1 (row j of item_codes is item j).
template <typename T>
void all_item_embeddings_forward(T* out, const int32_t* item_codes, const T* code_table, int64_t V1,
                                 int64_t M, int64_t C) {
    const prof::PhaseScope timer(prof::Phase::embedding_fwd);
    for (int64_t j = 0; j < V1; ++j)
        detail::code_mean_row(out + j * C, item_codes + j * M, code_table, M, C);
}

// dout (V1,C), item_codes (V1,M) -> d_code_table (R,C) +=   (fixed order: j, then m)
template <typename T>
void all_item_embeddings_backward(T* d_code_table, const T* dout, const int32_t* item_codes,
                                  int64_t V1, int64_t M, int64_t C) {
    const prof::PhaseScope timer(prof::Phase::embedding_bwd);
    for (int64_t j = 0; j < V1; ++j)
        detail::code_mean_row_backward(d_code_table, dout + j * C, item_codes + j * M, M, C);
}

// The same scatter turned around, for the training step: each code-table row gathers the rows
// that feed it. CodeRowIndex lists, per table row r, the items j with item_codes[j, m] == r in
// the scatter's order (j ascending, then m), the padding row's list empty.
struct CodeRowIndex {
    std::vector<int32_t> start; // R + 1 offsets into items
    std::vector<int32_t> items; // item ids, row by row
    CodeRowIndex() = default;
    CodeRowIndex(const int32_t* item_codes, int64_t V1, int64_t M, int64_t R)
        : start(size_t(R) + 1, 0) {
        for (int64_t i = 0; i < V1 * M; ++i) {
            const int32_t code = item_codes[i];
            check(code >= 0 && code < R, "item code ", code, " outside the code table's ", R,
                  " rows");
            if (code != kPaddingCodeRow) ++start[size_t(code) + 1];
        }
        for (int64_t r = 0; r < R; ++r) start[size_t(r + 1)] += start[size_t(r)];
        items.resize(size_t(start[size_t(R)]));
        std::vector<int32_t> next(start.begin(), start.end() - 1);
        for (int64_t j = 0; j < V1; ++j)
            for (int64_t m = 0; m < M; ++m) {
                const int32_t code = item_codes[j * M + m];
                if (code != kPaddingCodeRow) items[size_t(next[size_t(code)]++)] = int32_t(j);
            }
    }
    int64_t rows() const { return int64_t(start.size()) - 1; }
};

// Rows [r0, r1) of the scatter above, WRITTEN (not accumulated), from rows already divided by M
// (dout_over_m = dout / M element-wise, computed once per item rather than once per code):
// d_code_table[r] = 0 + sum of dout_over_m[j] over index's list for r, in its order, i.e.
// exactly the additions all_item_embeddings_backward makes into a zeroed row (g / M is the same
// float either way). Each row is written once from a register sum and read rows come from the
// (V1, C) matrix, instead of read-modify-writing table rows once per (item, code): in the step
// that was ~4.2 ms against ~3 ms. Row blocks are independent, so they may run in parallel.
template <typename T>
void all_item_embeddings_backward_rows(T* d_code_table, const T* dout_over_m,
                                       const CodeRowIndex& index, int64_t C, int64_t r0,
                                       int64_t r1) {
    const prof::PhaseScope timer(prof::Phase::embedding_bwd);
    for (int64_t r = r0; r < r1; ++r) {
        const int32_t* first = index.items.data() + index.start[size_t(r)];
        const int32_t* last = index.items.data() + index.start[size_t(r + 1)];
        T* d = d_code_table + r * C;
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float>) {
            detail::sum_indexed_rows(d, dout_over_m, first, last - first, C, 0.0f);
            continue;
        }
#endif
        for (int64_t k = 0; k < C; ++k) d[k] = T(0);
        for (const int32_t* j = first; j < last; ++j) {
            const T* g = dout_over_m + int64_t(*j) * C;
            for (int64_t k = 0; k < C; ++k) d[k] += g[k];
        }
    }
}

// inp (N,C), pos_table (T,C), off (B+1) -> out (N,C)
// Packed tokens: token row i of sequence b (off[b] <= i < off[b+1]) is position t = i - off[b]
// (0 = oldest item): out[i] = inp[i] + pos_table[t]. Caller guarantees every length <= T.
// out may alias inp (element-wise). With inp_rows (N), token i reads row inp_rows[i] of inp
// instead (the training step's tokens take their item's row of the candidate matrix, so the
// gather and the addition are one pass).
template <typename T, typename Index = int32_t>
void add_position_embedding_forward(T* out, const T* inp, const T* pos_table, const int64_t* off,
                                    int64_t B, int64_t C, const Index* inp_rows = nullptr) {
    const prof::PhaseScope timer(prof::Phase::embedding_fwd);
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = off[b]; i < off[b + 1]; ++i) {
            const T* p = pos_table + (i - off[b]) * C;
            const T* x = inp + (inp_rows ? int64_t(inp_rows[i]) : i) * C;
            for (int64_t k = 0; k < C; ++k) out[i * C + k] = x[k] + p[k];
        }
    }
}

// dout (N,C), off (B+1) -> dinp (N,C) +=, d_pos_table (T,C) +=
// Inverts out[i] = inp[i] + pos_table[i - off[b]]: identity into dinp; position t collects the
// sum over sequences b (ascending b, fixed order) of dout at that position; d_pos_table may be
// nullptr (a frozen table), and so may dinp (a caller that uses dout as dinp itself). dinp must
// not alias dout (it accumulates).
template <typename T>
void add_position_embedding_backward(T* dinp, T* d_pos_table, const T* dout, const int64_t* off,
                                     int64_t B, int64_t C) {
    const prof::PhaseScope timer(prof::Phase::embedding_bwd);
    for (int64_t b = 0; b < B; ++b) {
        assert(off[b] <= off[b + 1]);
        for (int64_t i = off[b]; i < off[b + 1]; ++i) {
            if (dinp)
                for (int64_t k = 0; k < C; ++k) dinp[i * C + k] += dout[i * C + k];
            if (!d_pos_table) continue;
            T* dp = d_pos_table + (i - off[b]) * C;
            for (int64_t k = 0; k < C; ++k) dp[k] += dout[i * C + k];
        }
    }
}

} // namespace pfcr
