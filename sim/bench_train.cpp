// Google Benchmark of the training engine on the "paper config on Scientific"
// workload: hidden 300, 2 layers, 2 heads, inner 256, dropout 0.5, batch 1024 real Scientific
// train histories, 4,386 candidates. Reports sequences/s, useful GFLOP/s (formula in
// useful_flops below), and SGEMMs of the step's dominant shapes on 1 and 2 threads as the
// yardstick (Eigen's, and pfcr's own gemm_f32 that the step runs on AVX-512 builds), under the
// core's register-only FMA ceiling (BM_PeakFma). Needs
// runs/scientific-office/prepared.h5 (or PFCR_BENCH_PREPARED=path):
//   build/release/bin/pfcr prepare -c configs/scientific-office.yaml
//   build/release/bin/bench_train --benchmark_out=bench.json --benchmark_out_format=json
// --phases (before the Google Benchmark flags) also times every kernel phase of the train step
// (core/phase_timer.hpp) and reports ms per step for each as counters phase_<name>, plus
// phase_unattributed (step time minus their sum: copies, residual adds, zeroing, scheduling).
// Phase times add up over threads, so at 2 threads they are CPU milliseconds per step, and
// phase_unattributed (threads x wall time minus the phases) also holds the threads' idle time.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/phase_timer.hpp"
#include "core/tensor.hpp"
#include "data/prepared.hpp"
#include "model/gemm.hpp"
#include "model/trainer.hpp"

using namespace pfcr;

namespace {

bool g_phases = false; // --phases

const PreparedDomain& scientific() {
    static const PreparedData data = [] {
        const char* env = std::getenv("PFCR_BENCH_PREPARED");
        return read_prepared(env ? env : "runs/scientific-office/prepared.h5");
    }();
    for (const auto& d : data.domains)
        if (d.name == "Scientific") return d;
    throw Error("bench_train: no domain 'Scientific' in the prepared file");
}

TrainOptions paper_options() {
    TrainOptions o; // defaults are PFCR's: C 300, F 256, L 2, NH 2, dropout 0.5, T 50, M 32
    o.train_batch_size = 1024;
    // PFCR_BENCH_CHUNK_ROWS overrides run.chunk_rows (rows per parallel chunk) for experiments.
    if (const char* env = std::getenv("PFCR_BENCH_CHUNK_ROWS")) o.chunk_rows = std::atoll(env);
    return o;
}

// Useful FLOPs of one forward pass over a batch (multiply-add = 2), counting only real
// tokens (no padding) and, in the last layer, only the read position; x3 for forward +
// backward (each GEMM's backward is two GEMMs of the same size).
//   layers 0..L-2 (N rows): QKV 6NC^2, dense 2NC^2, FFN 4NCF, attention 4 C P (P = sum of
//     len(len+1)/2: scores and P.V over the causal triangle)
//   last layer: K,V 4NC^2, Q + dense 4BC^2, FFN 4BCF, attention 4 C N
//   loss: logits 2 B C V1
double useful_flops(const PackedBatch& b, const ModelShape& s, int64_t V1) {
    const double N = double(b.tokens()), B = double(b.size()), C = double(s.hidden),
                 F = double(s.inner);
    double P = 0;
    for (int64_t r = 0; r < b.size(); ++r) {
        const double len = double(b.off[size_t(r + 1)] - b.off[size_t(r)]);
        P += len * (len + 1) / 2;
    }
    const double inner = double(s.layers - 1) * (8 * N * C * C + 4 * N * C * F + 4 * C * P);
    const double last = 4 * N * C * C + 4 * B * C * C + 4 * B * C * F + 4 * C * N;
    return 3 * (inner + last + 2 * B * C * double(V1));
}

// The paper-config model on Scientific, freshly initialised (RecBole init, seed 2020).
struct PaperModel {
    const PreparedDomain& d = scientific();
    TrainOptions opt = paper_options();
    ModelState st{opt.hp.shape};
    Trainer tr{opt, d};
    PaperModel() { init_params(st.layout, st.params.data(), opt.seed, 0.02); }
};

// Benchmark argument: threads.
void BM_TrainStep(benchmark::State& state) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(state.range(0)));
    PaperModel m;
    const PreparedDomain& d = m.d;
    const TrainOptions& opt = m.opt;
    ModelState& st = m.st;
    Trainer& tr = m.tr;
    const auto perm = epoch_permutation(int64_t(d.train.rows()), opt.seed, 0, 0);
    const int64_t n_batches = int64_t(d.train.rows()) / opt.train_batch_size;
    std::vector<PackedBatch> batches(static_cast<size_t>(n_batches));
    double flops = 0;
    for (int64_t i = 0; i < n_batches; ++i) {
        gather_batch(d.train, perm.data() + i * opt.train_batch_size, opt.train_batch_size,
                     batches[size_t(i)]);
        flops += useful_flops(batches[size_t(i)], opt.hp.shape, d.n_items + 1);
    }
    tr.train_step(st, batches[0]); // warm-up: workspaces reach their final size
    int64_t i = 0;
    prof::enable_phase_timing(g_phases);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state)
        benchmark::DoNotOptimize(tr.train_step(st, batches[size_t(i++ % n_batches)]));
    if (g_phases) {
        prof::enable_phase_timing(false);
        // Per step: Google Benchmark divides a kAvgIterations counter by the iteration count.
        double attributed = 0;
        for (int p = 0; p < int(prof::Phase::count); ++p) {
            const double s = prof::phase_seconds(prof::Phase(p));
            attributed += s;
            state.counters[std::string("phase_") + prof::phase_name(prof::Phase(p))] =
                benchmark::Counter(s * 1e3, benchmark::Counter::kAvgIterations);
        }
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        state.counters["phase_unattributed"] = benchmark::Counter(
            (wall * double(state.range(0)) - attributed) * 1e3, benchmark::Counter::kAvgIterations);
    }
    state.counters["seqs_per_s"] =
        benchmark::Counter(double(state.iterations()) * 1024, benchmark::Counter::kIsRate);
    state.counters["useful_GFLOP_per_s"] = benchmark::Counter(
        double(state.iterations()) * flops / double(n_batches) * 1e-9, benchmark::Counter::kIsRate);
    state.counters["mean_tokens_per_batch"] = double(batches[0].tokens());
}
BENCHMARK(BM_TrainStep)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(8.0);

void BM_EvaluateValid(benchmark::State& state) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(state.range(0)));
    PaperModel m;
    const PreparedDomain& d = m.d;
    for (auto _ : state)
        benchmark::DoNotOptimize(m.tr.evaluate(m.st, d.valid, {10, 50}, TieRule::expected));
    state.counters["seqs_per_s"] = benchmark::Counter(
        double(state.iterations()) * double(d.valid.rows()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EvaluateValid)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(4.0);

// Yardstick: SGEMM of the step's dominant shapes, (M x K) * (K x N), on 1 thread, or on 2
// threads as two row halves in parallel (the machine's own 2-thread SGEMM speed-up: Eigen is
// built without its own threads, EIGEN_DONT_PARALLELIZE). Arguments: M, K, N, threads, kernel
// (0: Eigen's product, the library yardstick; 1: pfcr's own gemm_f32, model/gemm.hpp, which the
// step runs on AVX-512 builds, with B stored as the step stores it, [N, K]).
void BM_Sgemm(benchmark::State& state) {
    const int64_t M = state.range(0), K = state.range(1), N = state.range(2), T = state.range(3);
    const bool own = state.range(4) == 1;
    if (own && !kHaveFastGemm) {
        state.SkipWithError("pfcr's own GEMM needs an AVX-512 build");
        return;
    }
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(T));
    AlignedBuffer<float> a(M * K), b(N * K), c(M * N);
    for (int64_t i = 0; i < M * K; ++i) a[i] = float(i % 7) * 0.1f;
    for (int64_t i = 0; i < N * K; ++i) b[i] = float(i % 5) * 0.1f;
    const auto rows = [&](int64_t r0, int64_t r1) {
        if (own) {
            if constexpr (kHaveFastGemm)
                gemm_f32(c.data() + r0 * N, N, {a.data() + r0 * K, K, 1}, {b.data(), 1, K}, r1 - r0,
                         N, K, false);
            return;
        }
        mat(c.data() + r0 * N, r1 - r0, N).noalias() =
            mat(static_cast<const float*>(a.data()) + r0 * K, r1 - r0, K) *
            mat(static_cast<const float*>(b.data()), N, K).transpose();
    };
    for (auto _ : state) {
        if (T == 1)
            rows(0, M);
        else
            tbb::parallel_for(int64_t(0), T, [&](int64_t t) { rows(t * M / T, (t + 1) * M / T); });
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP_per_s"] = benchmark::Counter(
        double(state.iterations()) * 2.0 * double(M * K * N) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)
    ->ArgNames({"M", "K", "N", "threads", "own"})
    ->Args({7000, 300, 300, 1, 0})  // Q/K/V/dense over the tokens
    ->Args({7000, 300, 256, 1, 0})  // FFN over the tokens
    ->Args({1024, 300, 4386, 1, 0}) // logits over every candidate
    ->Args({7000, 300, 300, 2, 0})
    ->Args({7000, 300, 256, 2, 0})
    ->Args({1024, 300, 4386, 2, 0})
    ->Args({7000, 300, 300, 1, 1})
    ->Args({7000, 300, 256, 1, 1})
    ->Args({1024, 300, 4386, 1, 1})
    ->Args({7000, 300, 300, 2, 1})
    ->Args({7000, 300, 256, 2, 1})
    ->Args({1024, 300, 4386, 2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Ceiling: the core's FP32 fused multiply-add rate with everything in registers (no memory,
// no packing): 16 independent accumulator chains, enough to cover the FMA latency of every
// x86 core with two FMA pipes, in the widest vectors the build targets (AVX-512: 16 lanes,
// AVX2: 8, else SSE: 4). No GEMM can exceed it; a GEMM's share of it is its kernel efficiency.
// Argument: threads (each runs its own chains, like two row halves of an SGEMM).
void BM_PeakFma(benchmark::State& state) {
    const int64_t T = state.range(0);
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(T));
    // Explicit FMA intrinsics: the build uses -ffp-contract=off (bitwise-stable results), so
    // a * b + c would stay a multiply and an add.
#if defined(__AVX512F__)
    using vec = __m512;
    constexpr int lanes = 16;
    const auto set1 = [](float v) { return _mm512_set1_ps(v); };
    const auto fma = [](vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); };
    const auto add = [](vec a, vec b) { return _mm512_add_ps(a, b); };
    const auto total = [](vec a) { return _mm512_reduce_add_ps(a); };
#elif defined(__FMA__)
    using vec = __m256;
    constexpr int lanes = 8;
    const auto set1 = [](float v) { return _mm256_set1_ps(v); };
    const auto fma = [](vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); };
    const auto add = [](vec a, vec b) { return _mm256_add_ps(a, b); };
    const auto total = [](vec a) {
        alignas(32) float f[8];
        _mm256_store_ps(f, a);
        return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
    };
#else
    state.SkipWithError("BM_PeakFma needs FMA instructions (build with -march=native)");
    return;
#endif
#if defined(__AVX512F__) || defined(__FMA__)
    constexpr int chains = 16;
    constexpr int64_t steps = 1 << 20;
    const auto run = [&] {
        const vec x = set1(0.999999f), y = set1(1e-7f);
        vec a0 = set1(0), a1 = set1(1), a2 = set1(2), a3 = set1(3), a4 = set1(4), a5 = set1(5),
            a6 = set1(6), a7 = set1(7), a8 = set1(8), a9 = set1(9), a10 = set1(10), a11 = set1(11),
            a12 = set1(12), a13 = set1(13), a14 = set1(14), a15 = set1(15);
        for (int64_t s = 0; s < steps; ++s) {
            a0 = fma(a0, x, y), a1 = fma(a1, x, y), a2 = fma(a2, x, y), a3 = fma(a3, x, y);
            a4 = fma(a4, x, y), a5 = fma(a5, x, y), a6 = fma(a6, x, y), a7 = fma(a7, x, y);
            a8 = fma(a8, x, y), a9 = fma(a9, x, y), a10 = fma(a10, x, y), a11 = fma(a11, x, y);
            a12 = fma(a12, x, y), a13 = fma(a13, x, y), a14 = fma(a14, x, y);
            a15 = fma(a15, x, y);
        }
        const vec sum =
            add(add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7))),
                add(add(add(a8, a9), add(a10, a11)), add(add(a12, a13), add(a14, a15))));
        benchmark::DoNotOptimize(total(sum));
    };
    for (auto _ : state) {
        if (T == 1)
            run();
        else
            tbb::parallel_for(int64_t(0), T, [&](int64_t) { run(); });
    }
    state.counters["GFLOP_per_s"] = benchmark::Counter(
        double(state.iterations()) * double(T) * 2.0 * chains * lanes * double(steps) * 1e-9,
        benchmark::Counter::kIsRate);
    state.counters["lanes"] = lanes;
#endif
}
BENCHMARK(BM_PeakFma)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

int main(int argc, char** argv) {
    // Our own flag first (Google Benchmark rejects flags it does not know).
    int kept = 1;
    for (int a = 1; a < argc; ++a) {
        if (std::strcmp(argv[a], "--phases") == 0)
            g_phases = true;
        else
            argv[kept++] = argv[a];
    }
    argc = kept;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
