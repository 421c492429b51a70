// Opt-in wall-clock timers per kernel phase of the training step, for profiling only
// (`bench_train --phases`, docs/PERFORMANCE.md). Off by default: a disabled PhaseScope costs one
// relaxed atomic load. Scopes sit in LEAF kernels only (a GEMM, a dropout pass, a LayerNorm),
// never around a function that contains another scope, so phases never overlap and their sum is
// the attributed time; the rest of a step (copies, residual adds, zeroing, task scheduling) is
// what the caller's own total minus that sum leaves. Times add up over threads (CPU seconds).
// Not here: any effect on results (timers only read the clock).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace pfcr::prof {

enum class Phase : int {
    gemm_linear_fwd, // Q/K/V, attention dense, FFN: out = x Wᵀ + b
    gemm_linear_bwd, // their dx and dW (+ db)
    gemm_logits_fwd, // cosines Ŝ Êᵀ over every candidate
    gemm_logits_bwd, // dŜ = G Ê and dÊ = Gᵀ Ŝ
    attention_fwd,   // packed causal scores, softmax, dropout on P, P·V
    attention_bwd,   //
    dropout_fwd,     // hidden dropout: keyed mask generation and scaling
    dropout_bwd,     //
    layernorm_fwd,   //
    layernorm_bwd,   //
    gelu_fwd,        //
    gelu_bwd,        //
    softmax_ce,      // exp/sum/normalise over every candidate, and G = (P - onehot) scale
    normalize,       // row L2 normalisation of s and E, forward and backward
    embedding_fwd,   // code-mean gather of tokens and candidates, + position embedding
    embedding_bwd,   // their scatter into the code table / position table
    reduce_chunks,   // per-chunk gradient buffers summed in chunk order
    adam,            //
    count
};

inline const char* phase_name(Phase p) {
    static constexpr const char* names[] = {"gemm_linear_fwd", "gemm_linear_bwd", "gemm_logits_fwd",
                                            "gemm_logits_bwd", "attention_fwd",   "attention_bwd",
                                            "dropout_fwd",     "dropout_bwd",     "layernorm_fwd",
                                            "layernorm_bwd",   "gelu_fwd",        "gelu_bwd",
                                            "softmax_ce",      "normalize",       "embedding_fwd",
                                            "embedding_bwd",   "reduce_chunks",   "adam"};
    static_assert(sizeof(names) / sizeof(names[0]) == int(Phase::count));
    return names[int(p)];
}

struct PhaseTotals {
    std::array<std::atomic<int64_t>, size_t(Phase::count)> ns{};
    std::atomic<bool> enabled{false};
};

inline PhaseTotals& phase_totals() {
    static PhaseTotals totals;
    return totals;
}

// Turns timing on or off and (on) clears the totals.
inline void enable_phase_timing(bool on) {
    PhaseTotals& t = phase_totals();
    if (on)
        for (auto& v : t.ns) v.store(0, std::memory_order_relaxed);
    t.enabled.store(on, std::memory_order_relaxed);
}

inline double phase_seconds(Phase p) {
    return double(phase_totals().ns[size_t(p)].load(std::memory_order_relaxed)) * 1e-9;
}

class PhaseScope {
public:
    explicit PhaseScope(Phase p)
        : p_(p), on_(phase_totals().enabled.load(std::memory_order_relaxed)) {
        if (on_) t0_ = std::chrono::steady_clock::now();
    }
    ~PhaseScope() {
        if (!on_) return;
        const auto dt = std::chrono::steady_clock::now() - t0_;
        phase_totals().ns[size_t(p_)].fetch_add(
            std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count(),
            std::memory_order_relaxed);
    }
    PhaseScope(const PhaseScope&) = delete;
    PhaseScope& operator=(const PhaseScope&) = delete;

private:
    Phase p_;
    bool on_;
    std::chrono::steady_clock::time_point t0_{};
};

} // namespace pfcr::prof
