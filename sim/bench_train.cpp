// Google Benchmark of the training engine on the issue's "paper config on Scientific"
// workload: hidden 300, 2 layers, 2 heads, inner 256, dropout 0.5, batch 1024 real Scientific
// train histories, 4,386 candidates. Reports sequences/s, useful GFLOP/s (formula in
// useful_flops below), and two SGEMM yardsticks on 1 and 2 threads: the step's three dominant
// shapes (BM_Sgemm) and every GEMM call of one step replayed alone (BM_SgemmStep), each run by
// Eigen, by pfcr's own gemm_f32 that the step runs on AVX-512 builds, and by the system BLAS
// (OpenBLAS here), under the core's register-only FMA ceiling (BM_PeakFma); BM_GemmResidency
// shows what the kernel loses when its operands come from memory. At the end it prints
// (stderr) the targets' ratios from this one run: useful GFLOP/s over each SGEMM's rate on the
// step's FLOP mix and on the step's own calls, and the 2-thread speed-ups. Needs
// runs/scientific-office/prepared.h5
// (or PFCR_BENCH_PREPARED=path):
//   build/release/bin/pfcr prepare -c configs/scientific-office.yaml
//   env -u OPENBLAS_CORETYPE build/release/bin/bench_train --benchmark_out=bench.json
//       --benchmark_out_format=json          (one command line)
// (OPENBLAS_CORETYPE unset: OpenBLAS picks its kernels for this CPU, the strongest yardstick.)
// --phases (before the Google Benchmark flags) also times every kernel phase of the train step
// (core/phase_timer.hpp) and reports ms per step for each as counters phase_<name>, plus
// phase_unattributed (step time minus their sum: copies, residual adds, zeroing, scheduling).
// Phase times add up over threads, so at 2 threads they are CPU milliseconds per step, and
// phase_unattributed (threads x wall time minus the phases) also holds the threads' idle time.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/phase_timer.hpp"
#include "core/tensor.hpp"
#include "data/prepared.hpp"
#include "model/gemm.hpp"
#include "model/trainer.hpp"

using namespace pfcr;

namespace {

bool g_phases = false; // --phases

// The benchmark's domain: Scientific, or PFCR_BENCH_DOMAIN (e.g. Office2014: 2.4x the tokens per
// batch), from the prepared file.
const PreparedDomain& bench_domain() {
    static const PreparedData data = [] {
        const char* env = std::getenv("PFCR_BENCH_PREPARED");
        return read_prepared(env ? env : "runs/scientific-office/prepared.h5");
    }();
    const char* env = std::getenv("PFCR_BENCH_DOMAIN");
    const std::string name = env ? env : "Scientific";
    for (const auto& d : data.domains)
        if (d.name == name) return d;
    throw Error("bench_train: no domain '" + name + "' in the prepared file");
}

TrainOptions paper_options() {
    TrainOptions o; // defaults are PFCR's: C 300, F 256, L 2, NH 2, dropout 0.5, T 50, M 32
    o.train_batch_size = 1024;
    // PFCR_BENCH_CHUNK_ROWS overrides run.chunk_rows (rows per parallel chunk) for experiments.
    if (const char* env = std::getenv("PFCR_BENCH_CHUNK_ROWS")) o.chunk_rows = std::atoll(env);
    // PFCR_BENCH_FOLD=0 runs the last layer's plain path (every token's k and v) instead of the
    // folded one (read_attention.hpp): the before/after of the fold in one binary.
    if (const char* env = std::getenv("PFCR_BENCH_FOLD")) o.hp.fold_read_kv = std::atoi(env) != 0;
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

// The two shares of useful_flops that the SGEMM yardstick weighs at their own shape's rate (the
// rest, the C x C layers and the attention, at 7000 x 300 x 300): the logits (x3) and the FFN.
double logits_flops(const PackedBatch& b, const ModelShape& s, int64_t V1) {
    return 3 * 2 * double(b.size()) * double(s.hidden) * double(V1);
}
double ffn_flops(const PackedBatch& b, const ModelShape& s) {
    const double N = double(b.tokens()), B = double(b.size()), C = double(s.hidden),
                 F = double(s.inner);
    return 3 * (double(s.layers - 1) * 4 * N * C * F + 4 * B * C * F);
}

// The paper-config model on Scientific, freshly initialised (RecBole init, seed 2020).
struct PaperModel {
    const PreparedDomain& d = bench_domain();
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
    double flops = 0, logits = 0, ffn = 0;
    for (int64_t i = 0; i < n_batches; ++i) {
        gather_batch(d.train, perm.data() + i * opt.train_batch_size, opt.train_batch_size,
                     batches[size_t(i)]);
        flops += useful_flops(batches[size_t(i)], opt.hp.shape, d.n_items + 1);
        logits += logits_flops(batches[size_t(i)], opt.hp.shape, d.n_items + 1);
        ffn += ffn_flops(batches[size_t(i)], opt.hp.shape);
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
    // The step's useful FLOP mix (GFLOP per step, mean over the batches) for the summary.
    state.counters["useful_GFLOP_per_step"] = flops / double(n_batches) * 1e-9;
    state.counters["logits_GFLOP_per_step"] = logits / double(n_batches) * 1e-9;
    state.counters["ffn_GFLOP_per_step"] = ffn / double(n_batches) * 1e-9;
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

// The system BLAS: cblas_sgemm of libblas.so.3, the library Debian's alternatives select (OpenBLAS
// on the benchmark machine) and the one PyTorch and faiss call. Looked up at run time, so the
// build needs no BLAS headers; OpenBLAS is held to one thread per call (its own threads would
// make a "1 thread" yardstick use both cores), and its kernel is named in the summary, since
// OPENBLAS_CORETYPE can select a slower one than the CPU supports. OpenBLAS's 2-thread yardstick
// is its own threading over the whole product (two callers at once serialise inside its OpenMP
// build: measured 1.34x for two row halves); another BLAS runs as two row halves like Eigen.
struct SystemBlas {
    using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                           int, float, float*, int);
    Sgemm sgemm = nullptr;
    void (*set_threads)(int) = nullptr; // openblas_set_num_threads, if the BLAS is OpenBLAS
    std::string name = "not found (no libblas.so.3 with cblas_sgemm)";
    SystemBlas() {
        void* lib = dlopen("libblas.so.3", RTLD_NOW | RTLD_LOCAL);
        if (!lib) return;
        sgemm = reinterpret_cast<Sgemm>(dlsym(lib, "cblas_sgemm"));
        if (!sgemm) return;
        Dl_info info{};
        name = dladdr(reinterpret_cast<void*>(sgemm), &info) && info.dli_fname ? info.dli_fname
                                                                               : "libblas.so.3";
        if (char* real = realpath(name.c_str(), nullptr)) name = real, std::free(real);
        using SetThreads = void (*)(int);
        using CoreName = const char* (*)();
        set_threads = reinterpret_cast<SetThreads>(dlsym(lib, "openblas_set_num_threads"));
        if (set_threads) set_threads(1);
        if (auto core = reinterpret_cast<CoreName>(dlsym(lib, "openblas_get_corename"))) {
            const char* env = std::getenv("OPENBLAS_CORETYPE");
            name += std::string(" (OpenBLAS core ") + core() +
                    ", OPENBLAS_CORETYPE=" + (env ? env : "unset") + ")";
        }
    }
};
const SystemBlas& system_blas() {
    static const SystemBlas blas;
    return blas;
}

// Yardstick: SGEMM of the step's dominant shapes, (M x K) * (K x N), on 1 thread, or on 2
// threads as two row halves in parallel (the machine's own 2-thread SGEMM speed-up: Eigen is
// built without its own threads, EIGEN_DONT_PARALLELIZE), the system BLAS with its own threads.
// Arguments: M, K, N, threads, kernel (0: Eigen's product; 1: pfcr's own gemm_f32,
// model/gemm.hpp, which the step runs on AVX-512 builds; 2: the system BLAS's cblas_sgemm, see
// SystemBlas), with B stored as the step stores it, [N, K].
void BM_Sgemm(benchmark::State& state) {
    const int64_t M = state.range(0), K = state.range(1), N = state.range(2), T = state.range(3);
    const int64_t kernel = state.range(4);
    if (kernel == 1 && !kHaveFastGemm) {
        state.SkipWithError("pfcr's own GEMM needs an AVX-512 build");
        return;
    }
    const SystemBlas& blas = system_blas();
    if (kernel == 2 && !blas.sgemm) {
        state.SkipWithError("no system BLAS: libblas.so.3 with cblas_sgemm not found");
        return;
    }
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(T));
    AlignedBuffer<float> a(M * K), b(N * K), c(M * N);
    for (int64_t i = 0; i < M * K; ++i) a[i] = float(i % 7) * 0.1f;
    for (int64_t i = 0; i < N * K; ++i) b[i] = float(i % 5) * 0.1f;
    const auto rows = [&](int64_t r0, int64_t r1) {
        if (kernel == 2) { // row-major C = A Bᵀ: CblasRowMajor 101, NoTrans 111, Trans 112
            blas.sgemm(101, 111, 112, int(r1 - r0), int(N), int(K), 1.0f, a.data() + r0 * K, int(K),
                       b.data(), int(K), 0.0f, c.data() + r0 * N, int(N));
            return;
        }
        if (kernel == 1) {
            if constexpr (kHaveFastGemm)
                gemm_f32(c.data() + r0 * N, N, {a.data() + r0 * K, K, 1}, {b.data(), 1, K}, r1 - r0,
                         N, K, false);
            return;
        }
        mat(c.data() + r0 * N, r1 - r0, N).noalias() =
            mat(static_cast<const float*>(a.data()) + r0 * K, r1 - r0, K) *
            mat(static_cast<const float*>(b.data()), N, K).transpose();
    };
    const bool blas_threads = kernel == 2 && T > 1 && blas.set_threads;
    if (blas_threads) blas.set_threads(int(T));
    for (auto _ : state) {
        if (T == 1 || blas_threads)
            rows(0, M);
        else
            tbb::parallel_for(int64_t(0), T, [&](int64_t t) { rows(t * M / T, (t + 1) * M / T); });
        benchmark::ClobberMemory();
    }
    if (blas_threads) blas.set_threads(1);
    state.counters["GFLOP_per_s"] = benchmark::Counter(
        double(state.iterations()) * 2.0 * double(M * K * N) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)
    ->ArgNames({"M", "K", "N", "threads", "kernel"})
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
    ->Args({7000, 300, 300, 1, 2})
    ->Args({7000, 300, 256, 1, 2})
    ->Args({1024, 300, 4386, 1, 2})
    ->Args({7000, 300, 300, 2, 2})
    ->Args({7000, 300, 256, 2, 2})
    ->Args({1024, 300, 4386, 2, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Runs `step` (one training step) while recording its GEMM calls into `calls` (cleared first).
// False if the recording is inexact: a packed B of the step was packed before it began.
template <typename Step> bool record_gemm_calls(std::vector<GemmCall>& calls, Step&& step) {
    calls.clear();
    gemm_record_calls(&calls);
    step();
    return gemm_record_calls(nullptr) == 0;
}

// The GEMM calls of one training step (batch 0 of the paper model, recorded by gemm.hpp's
// gemm_record_calls): every gemm_f32 / gemm_f32_packed call of the step (the linear layers' and
// the logits' products; not the attention's, which has its own kernels), with its shape, operand
// storage and accumulate flag. Empty on builds without the fast GEMM (Eigen's products there).
// Throws if the recording is inexact (a B packed before it began: see gemm_record_calls).
const std::vector<GemmCall>& step_gemm_calls() {
    static const std::vector<GemmCall> calls = [] {
        PaperModel m;
        const PreparedDomain& d = m.d;
        const auto perm = epoch_permutation(int64_t(d.train.rows()), m.opt.seed, 0, 0);
        PackedBatch batch;
        gather_batch(d.train, perm.data(), m.opt.train_batch_size, batch);
        std::vector<GemmCall> out;
        if (!record_gemm_calls(out, [&] { m.tr.train_step(m.st, batch); }))
            throw Error("bench_train: a GEMM's packed B was packed before the step began");
        return out;
    }();
    return calls;
}

// The q-quantile of v, interpolated between order statistics (NaN if v is empty).
double quantile(std::vector<double> v, double q) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    const double pos = q * double(v.size() - 1);
    const size_t lo = size_t(pos), hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

// Runs recorded GEMM calls alone, one after another, by one SGEMM (kernel as BM_Sgemm: 0 Eigen,
// 1 pfcr's gemm_f32, 2 the system BLAS) as plain calls (each packs what it needs; the step
// shares packed weights between calls), on operands with the step's transposes but stored
// tightly (leading dimension = the operand's own width: the step's dÊ reads its A with the
// gradient's stride instead), on 1 thread or 2 (as BM_Sgemm: two row halves, the system BLAS
// with its own threads). Buffers grow to the largest call and are reused, so every call reads
// warm operands, as in BM_Sgemm.
class CallReplay {
public:
    // FLOPs of the calls (multiply-add = 2).
    static double flops(const std::vector<GemmCall>& calls) {
        double f = 0;
        for (const GemmCall& g : calls) f += 2.0 * double(g.M * g.N * g.K);
        return f;
    }
    void run(const std::vector<GemmCall>& calls, int64_t kernel, int64_t T) {
        for (const GemmCall& g : calls) fit(g);
        const SystemBlas& blas = system_blas();
        const bool blas_threads = kernel == 2 && T > 1 && blas.set_threads;
        if (blas_threads) blas.set_threads(int(T));
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(T));
        for (const GemmCall& g : calls) {
            if (T == 1 || blas_threads)
                rows(g, 0, g.M, kernel);
            else
                tbb::parallel_for(int64_t(0), T, [&](int64_t t) {
                    rows(g, t * g.M / T, (t + 1) * g.M / T, kernel);
                });
        }
        if (blas_threads) blas.set_threads(1);
        benchmark::ClobberMemory();
    }

private:
    AlignedBuffer<float> a_, b_, c_;

    static void grow(AlignedBuffer<float>& v, int64_t n, int64_t pattern) {
        if (v.size() >= n) return;
        v.resize(n);
        for (int64_t i = 0; i < n; ++i) v[i] = float(i % pattern) * 0.1f;
    }
    void fit(const GemmCall& g) {
        grow(a_, g.M * g.K, 7), grow(b_, g.K * g.N, 5), grow(c_, g.M * g.N, 3);
    }
    // Rows [r0, r1) of call g: C rows are contiguous, A's rows start r0 rows (or columns) in.
    void rows(const GemmCall& g, int64_t r0, int64_t r1, int64_t kernel) {
        const int64_t M = r1 - r0, N = g.N, K = g.K;
        const int64_t lda = g.a_transposed ? g.M : K, ldb = g.b_transposed ? K : N;
        const float* ap = a_.data() + (g.a_transposed ? r0 : r0 * K);
        const float* bp = b_.data();
        float* cp = c_.data() + r0 * N;
        if (kernel == 2) { // CblasRowMajor 101, NoTrans 111, Trans 112
            system_blas().sgemm(101, g.a_transposed ? 112 : 111, g.b_transposed ? 112 : 111, int(M),
                                int(N), int(K), 1.0f, ap, int(lda), bp, int(ldb),
                                g.accumulate ? 1.0f : 0.0f, cp, int(N));
            return;
        }
        if (kernel == 1) {
            if constexpr (kHaveFastGemm) {
                const GemmOperand ao =
                    g.a_transposed ? GemmOperand{ap, 1, lda} : GemmOperand{ap, lda, 1};
                const GemmOperand bo =
                    g.b_transposed ? GemmOperand{bp, 1, ldb} : GemmOperand{bp, ldb, 1};
                gemm_f32(cp, N, ao, bo, M, N, K, g.accumulate);
            }
            return;
        }
        using Stride = Eigen::OuterStride<>;
        using Map =
            Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                       0, Stride>;
        auto out = mat(cp, M, N);
        const auto product = [&](const auto& lhs, const auto& rhs) {
            if (g.accumulate)
                out.noalias() += lhs * rhs;
            else
                out.noalias() = lhs * rhs;
        };
        const Map am = g.a_transposed ? Map(ap, K, M, Stride(lda)) : Map(ap, M, K, Stride(lda));
        const Map bm = g.b_transposed ? Map(bp, N, K, Stride(ldb)) : Map(bp, K, N, Stride(ldb));
        if (g.a_transposed && g.b_transposed)
            product(am.transpose(), bm.transpose());
        else if (g.a_transposed)
            product(am.transpose(), bm);
        else if (g.b_transposed)
            product(am, bm.transpose());
        else
            product(am, bm);
    }
};

// Why a kernel cannot run here, or nullptr.
const char* replay_unavailable(const std::vector<GemmCall>& calls, int64_t kernel) {
    if (calls.empty()) return "no GEMM calls recorded: the step uses Eigen on this build";
    if (kernel == 2 && !system_blas().sgemm)
        return "no system BLAS: libblas.so.3 with cblas_sgemm not found";
    return nullptr;
}

// Yardstick on the step's own products, the literal "SGEMM of the same shapes": every GEMM call
// of one training step (step_gemm_calls) replayed alone (CallReplay). Its rate (the calls' FLOPs
// over their time) differs from BM_Sgemm's three shapes by the backward products' forms and the
// chunks' row counts. Arguments: threads, kernel (as BM_Sgemm).
void BM_SgemmStep(benchmark::State& state) {
    const int64_t T = state.range(0), kernel = state.range(1);
    const std::vector<GemmCall>& calls = step_gemm_calls();
    if (const char* why = replay_unavailable(calls, kernel)) {
        state.SkipWithError(why);
        return;
    }
    CallReplay replay;
    for (auto _ : state) replay.run(calls, kernel, T);
    const double flops = CallReplay::flops(calls);
    state.counters["GFLOP_per_s"] =
        benchmark::Counter(double(state.iterations()) * flops * 1e-9, benchmark::Counter::kIsRate);
    state.counters["GFLOP_per_step"] = flops * 1e-9;
    state.counters["calls_per_step"] = double(calls.size());
}
BENCHMARK(BM_SgemmStep)
    ->ArgNames({"threads", "kernel"})
    ->ArgsProduct({{1, 2}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The two ratios of the issue's targets measured in adjacent pairs, so that the VM's speed, which
// drifts by 10-25 % over a run, cancels: each iteration takes the next batch and runs, back to
// back, the train step on 1 thread (untimed, recording its GEMM calls), then the step and those
// calls replayed alone by the chosen SGEMM (CallReplay) on 1 thread, then both on 2 threads; each
// is run twice and the second run timed (warm caches, as in a run of many steps: a step timed
// right after a replay ran 3 % slower), and every other iteration runs the replay before the
// step. Reports the
// median over the iterations, and the quartiles, of
//   useful_over_sgemm_pct = (useful FLOPs / step time) / (the calls' FLOPs / replay time), 1 thread
//   speedup_over_sgemm_pct = (2-thread step speed-up) / (2-thread replay speed-up)
//   replay_over_step_pct = replay time / step time, 1 thread: the share of the step its GEMM
//     calls would take alone. It differs from useful_over_sgemm_pct by the ratio of the FLOPs
//     the calls execute (executed_GFLOP_per_step) to the useful ones: the step executes fewer
//     (the last layer's folded keys and values, read_attention.hpp), so a step can deliver
//     useful FLOPs faster than the SGEMM runs its own calls.
// Argument: kernel (as BM_Sgemm). A fixed 16 iterations (pairs).
void BM_StepVsSgemm(benchmark::State& state) {
    const int64_t kernel = state.range(0);
    PaperModel m;
    const PreparedDomain& d = m.d;
    const auto perm = epoch_permutation(int64_t(d.train.rows()), m.opt.seed, 0, 0);
    const int64_t n_batches = int64_t(d.train.rows()) / m.opt.train_batch_size;
    std::vector<GemmCall> calls;
    PackedBatch batch;
    gather_batch(d.train, perm.data(), m.opt.train_batch_size, batch);
    // Warm-up (workspaces reach their final size), recording the calls to check the kernel.
    if (!record_gemm_calls(calls, [&] { m.tr.train_step(m.st, batch); })) {
        state.SkipWithError("a GEMM's packed B was packed before the step began");
        return;
    }
    if (const char* why = replay_unavailable(calls, kernel)) {
        state.SkipWithError(why);
        return;
    }
    CallReplay replay;
    replay.run(calls, kernel, 1); // warm-up: the replay's buffers reach their final size
    const auto seconds = [](auto&& f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    const auto step = [&](int64_t threads) {
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));
        benchmark::DoNotOptimize(m.tr.train_step(m.st, batch));
    };
    std::vector<double> useful_ratio, speedup_ratio, replay_share;
    int64_t i = 0;
    for (auto _ : state) {
        gather_batch(d.train, perm.data() + (i++ % n_batches) * m.opt.train_batch_size,
                     m.opt.train_batch_size, batch);
        if (!record_gemm_calls(calls, [&] { step(1); })) { // untimed
            state.SkipWithError("a GEMM's packed B was packed before the step began");
            break; // Google Benchmark: leave the loop at once after SkipWithError
        }
        // Each timed run follows an untimed run of the same (caches as in a run of many steps);
        // every other iteration times the replay first, so that a drift of the VM's speed within
        // a pair tilts half the pairs one way and half the other.
        const bool replay_first = i % 2 == 0;
        double step1 = 0, sgemm1 = 0, step2 = 0, sgemm2 = 0;
        for (int64_t threads : {1, 2}) {
            double& t_step = threads == 1 ? step1 : step2;
            double& t_sgemm = threads == 1 ? sgemm1 : sgemm2;
            for (int half = 0; half < 2; ++half) {
                if ((half == 0) == replay_first) {
                    replay.run(calls, kernel, threads);
                    t_sgemm = seconds([&] { replay.run(calls, kernel, threads); });
                } else {
                    step(threads);
                    t_step = seconds([&] { step(threads); });
                }
            }
        }
        state.SetIterationTime(step1 + sgemm1 + step2 + sgemm2);
        const double useful = useful_flops(batch, m.opt.hp.shape, d.n_items + 1);
        useful_ratio.push_back((useful / step1) / (CallReplay::flops(calls) / sgemm1));
        speedup_ratio.push_back((step1 / step2) / (sgemm1 / sgemm2));
        replay_share.push_back(sgemm1 / step1);
    }
    if (state.error_occurred()) return;
    const auto pct = [](const std::vector<double>& v, double q) { return 100 * quantile(v, q); };
    state.counters["useful_over_sgemm_pct"] = pct(useful_ratio, 0.5);
    state.counters["useful_over_sgemm_q1"] = pct(useful_ratio, 0.25);
    state.counters["useful_over_sgemm_q3"] = pct(useful_ratio, 0.75);
    state.counters["speedup_over_sgemm_pct"] = pct(speedup_ratio, 0.5);
    state.counters["speedup_over_sgemm_q1"] = pct(speedup_ratio, 0.25);
    state.counters["speedup_over_sgemm_q3"] = pct(speedup_ratio, 0.75);
    state.counters["replay_over_step_pct"] = pct(replay_share, 0.5);
    state.counters["executed_GFLOP_per_step"] = CallReplay::flops(calls) * 1e-9;
    state.counters["useful_GFLOP_per_step"] =
        useful_flops(batch, m.opt.hp.shape, d.n_items + 1) * 1e-9; // the last pair's batch
}
BENCHMARK(BM_StepVsSgemm)
    ->ArgName("kernel")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Iterations(16)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

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

// Where a GEMM's operands live, measured: pfcr's kernel on the shape of one chunk's linear
// forward (1,000 tokens x 300 x 300, B packed once as the step packs its weights, 1 thread),
// in pairs: the call run twice back to back on the same buffers, the second timed (warm: B in
// L2, A and C, 1.2 MB each, in L2/L3), then after writing 64 MB (untimed) once more (evicted:
// A, B and C from memory). Medians over the pairs (~20 s of wall time for 2 s of timed calls);
// docs/PERFORMANCE.md (window N): warm it runs at 90-94 % of the FMA ceiling, evicted ~6 % lower.
void BM_GemmResidency(benchmark::State& state) {
    if constexpr (!kHaveFastGemm) {
        state.SkipWithError("pfcr's own GEMM needs an AVX-512 build");
        return;
    } else {
        constexpr int64_t M = 1000, K = 300, N = 300;
        AlignedBuffer<float> a(M * K), b(N * K), c(M * N), packed(gemm_packed_b_size(K, N));
        for (int64_t i = 0; i < M * K; ++i) a[i] = float(i % 7) * 0.1f;
        for (int64_t i = 0; i < N * K; ++i) b[i] = float(i % 5) * 0.1f;
        gemm_pack_b(packed.data(), {b.data(), 1, K}, K, N); // Bᵀ stored (N, K), as a weight
        std::vector<float> junk(size_t(16) << 20);          // 64 MB
        const auto call = [&] {
            const auto t0 = std::chrono::steady_clock::now();
            gemm_f32_packed(c.data(), N, {a.data(), K, 1}, packed.data(), M, N, K, false);
            benchmark::ClobberMemory();
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        };
        std::vector<double> warm, evicted;
        for (auto _ : state) {
            call();
            warm.push_back(call());
            for (size_t i = 0; i < junk.size(); i += 16) junk[i] += 1.0f;
            benchmark::ClobberMemory();
            evicted.push_back(call());
            state.SetIterationTime(warm.back() + evicted.back());
        }
        const double flop = 2.0 * double(M * K * N);
        state.counters["warm_GFLOP_per_s"] = flop / quantile(warm, 0.5) * 1e-9;
        state.counters["evicted_GFLOP_per_s"] = flop / quantile(evicted, 0.5) * 1e-9;
    }
}
BENCHMARK(BM_GemmResidency)->Unit(benchmark::kMicrosecond)->UseManualTime()->MinTime(2.0);

// Passes every report to the display reporter that --benchmark_format selects and keeps the
// counters the summary needs, keyed by run name.
class KeepingReporter : public benchmark::BenchmarkReporter {
public:
    explicit KeepingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}
    bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
    // With --benchmark_repetitions the median aggregate is kept (also when only aggregates are
    // reported: --benchmark_report_aggregates_only); otherwise the run itself.
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.error_occurred) continue;
            const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
            if (r.run_type != Run::RT_Iteration && !median) continue;
            const std::string name = r.run_name.str();
            if (!median && medians_.count(name)) continue;
            if (median) medians_.insert(name);
            auto& kept = counters_[name + "/"];
            for (const auto& [counter_name, counter] : r.counters)
                kept[counter_name] = counter.value;
        }
        display_->ReportRuns(runs);
    }
    void Finalize() override { display_->Finalize(); }
    // counter of the first run whose name starts with prefix, or NaN
    double get(const std::string& prefix, const std::string& counter) const {
        for (const auto& [name, kept] : counters_)
            if (name.rfind(prefix, 0) == 0)
                if (auto it = kept.find(counter); it != kept.end()) return it->second;
        return std::nan("");
    }

private:
    std::unique_ptr<benchmark::BenchmarkReporter> display_;
    std::map<std::string, std::map<std::string, double>> counters_;
    std::set<std::string> medians_;
};

// The targets' ratios from this one run (docs/PERFORMANCE.md): pfcr's useful GFLOP/s against
// each SGEMM's rate on the step's FLOP mix (the time that SGEMM would take for the step's useful
// FLOPs, each share at the rate of its shape) and on the step's own calls, and the 2-thread
// speed-ups; then the same ratios from adjacent pairs (BM_StepVsSgemm). Printed to stderr
// (stdout may be JSON), only for what ran (e.g. --benchmark_filter='BM_TrainStep|BM_Sgemm').
void print_summary(const KeepingReporter& kept) {
    const double total = kept.get("BM_TrainStep/1/", "useful_GFLOP_per_step");
    const double logits = kept.get("BM_TrainStep/1/", "logits_GFLOP_per_step");
    const double ffn = kept.get("BM_TrainStep/1/", "ffn_GFLOP_per_step");
    const double step1 = kept.get("BM_TrainStep/1/", "useful_GFLOP_per_s");
    const double step2 = kept.get("BM_TrainStep/2/", "useful_GFLOP_per_s");
    const double paired = kept.get("BM_StepVsSgemm/", "useful_over_sgemm_pct");
    if (std::isnan(total) && std::isnan(paired)) return; // nothing to compare
    const char* mix_names[] = {"Eigen SGEMM, step's mix", "pfcr gemm_f32, step's mix",
                               "system BLAS SGEMM, step's mix"};
    const char* call_names[] = {"Eigen SGEMM, step's calls", "pfcr gemm_f32, step's calls",
                                "system BLAS SGEMM, step's calls"};
    // A value, or "-" where its benchmark did not run.
    const auto num = [](double x, const char* format) {
        char buf[32] = "-";
        if (!std::isnan(x)) std::snprintf(buf, sizeof buf, format, x);
        return std::string(buf);
    };
    bool blas_ran = false;
    std::fprintf(stderr, "\nSummary of this run");
    if (!std::isnan(total)) { // the ratios of separate benchmarks need the 1-thread train step
        std::fprintf(stderr,
                     ": useful FLOPs per step %.2f GFLOP (logits %.2f, FFN %.2f, C x C layers and "
                     "attention %.2f)\n",
                     total, logits, ffn, total - logits - ffn);
        const auto mix = [&](int kernel, int threads) {
            const auto rate = [&](const char* shape) {
                return kept.get(std::string("BM_Sgemm/") + shape +
                                    "/threads:" + std::to_string(threads) +
                                    "/kernel:" + std::to_string(kernel) + "/",
                                "GFLOP_per_s");
            };
            return total /
                   (logits / rate("M:1024/K:300/N:4386") + ffn / rate("M:7000/K:300/N:256") +
                    (total - logits - ffn) / rate("M:7000/K:300/N:300"));
        };
        const auto calls = [&](int kernel, int threads) {
            return kept.get("BM_SgemmStep/threads:" + std::to_string(threads) +
                                "/kernel:" + std::to_string(kernel) + "/",
                            "GFLOP_per_s");
        };
        std::fprintf(stderr, "  %-32s %9s %9s %9s\n", "GFLOP/s", "1 thread", "2 threads",
                     "speed-up");
        std::fprintf(stderr, "  %-32s %9.1f %9s %9s\n", "pfcr train step, useful", step1,
                     num(step2, "%.1f").c_str(), num(step2 / step1, "%.2fx").c_str());
        const auto line = [&](const char* name, double r1, double r2) {
            if (std::isnan(r1)) return false;
            std::fprintf(
                stderr, "  %-32s %9.1f %9s %9s   useful / it %5.1f %%, speed-up / its %s\n", name,
                r1, num(r2, "%.1f").c_str(), num(r2 / r1, "%.2fx").c_str(), 100 * step1 / r1,
                num(100 * (step2 / step1) / (r2 / r1), "%.1f %%").c_str());
            return true;
        };
        for (int k = 0; k < 3; ++k) blas_ran |= line(mix_names[k], mix(k, 1), mix(k, 2)) && k == 2;
        for (int k = 0; k < 3; ++k)
            blas_ran |= line(call_names[k], calls(k, 1), calls(k, 2)) && k == 2;
    } else {
        std::fprintf(stderr, "\n");
    }
    for (int k = 0; k < 3; ++k) {
        const std::string run = "BM_StepVsSgemm/kernel:" + std::to_string(k) + "/";
        const auto get = [&](const char* counter) { return kept.get(run, counter); };
        if (std::isnan(get("useful_over_sgemm_pct"))) continue;
        blas_ran |= k == 2;
        std::fprintf(stderr,
                     "  paired, %s: useful / its rate %.1f %% (quartiles %.1f-%.1f), 2-thread "
                     "speed-up / its %.1f %% (%.1f-%.1f)\n",
                     call_names[k], get("useful_over_sgemm_pct"), get("useful_over_sgemm_q1"),
                     get("useful_over_sgemm_q3"), get("speedup_over_sgemm_pct"),
                     get("speedup_over_sgemm_q1"), get("speedup_over_sgemm_q3"));
        std::fprintf(stderr,
                     "    (the step executes %.2f GEMM GFLOP of its %.2f useful; its calls "
                     "replayed alone take %.1f %% of its time)\n",
                     get("executed_GFLOP_per_step"), get("useful_GFLOP_per_step"),
                     get("replay_over_step_pct"));
    }
    if (blas_ran) std::fprintf(stderr, "  system BLAS: %s\n", system_blas().name.c_str());
}

} // namespace

constexpr const char* kUsage =
    R"(bench_train: the training engine's benchmark (docs/PERFORMANCE.md, issue 17).
The paper model on 1,024 real train histories: train step (BM_TrainStep/<threads>), full-sort
evaluation (BM_EvaluateValid), SGEMM yardsticks (BM_Sgemm, BM_SgemmStep: Eigen, pfcr's own, the
system BLAS), step and yardstick in pairs (BM_StepVsSgemm), the FMA ceiling (BM_PeakFma), one
product with warm and evicted operands (BM_GemmResidency); then a summary of the targets'
ratios on stderr. --benchmark_list_tests=true lists every benchmark. BM_Sgemm, BM_PeakFma and
BM_GemmResidency need no data (e.g. --benchmark_filter='BM_PeakFma|BM_GemmResidency', ~25 s).

  env -u OPENBLAS_CORETYPE build/release/bin/bench_train --benchmark_out=bench.json \
      --benchmark_out_format=json
  build/release/bin/bench_train --phases --benchmark_filter=BM_TrainStep/1/

Own flag:
  --phases                  also time every kernel phase of the train step (counters phase_<name>,
                            ms per step; at 2 threads CPU ms)
Environment:
  PFCR_BENCH_PREPARED=path  the prepared data (default runs/scientific-office/prepared.h5, made by
                            pfcr prepare -c configs/scientific-office.yaml)
  PFCR_BENCH_DOMAIN=name    the domain (default Scientific; Office2014: 2.4x the tokens per batch;
                            BM_Sgemm's three shapes, so the summary's "step's mix", stay
                            Scientific's)
  PFCR_BENCH_CHUNK_ROWS=n   run.chunk_rows of the paper model in every benchmark that builds it
                            (default 256; changes the bits)
  PFCR_BENCH_FOLD=0         the last layer's plain attention path (every token's keys and values)
                            instead of the folded one (read_attention.hpp; default 1)
  OPENBLAS_CORETYPE         unset it: OpenBLAS then picks its kernels for this CPU (the strongest)

Google Benchmark's flags:
)";

int main(int argc, char** argv) {
    // Our own flag first (Google Benchmark rejects flags it does not know).
    int kept = 1;
    for (int a = 1; a < argc; ++a) {
        if (std::strcmp(argv[a], "--phases") == 0)
            g_phases = true;
        else if (std::strcmp(argv[a], "-h") == 0)
            argv[kept++] = const_cast<char*>("--help");
        else
            argv[kept++] = argv[a];
    }
    argc = kept;
    // --help: our usage, then Google Benchmark's flags (it exits after printing).
    benchmark::Initialize(&argc, argv, [] {
        std::fputs(kUsage, stdout);
        benchmark::PrintDefaultHelp();
    });
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    KeepingReporter reporter(benchmark::CreateDefaultDisplayReporter());
    try {
        benchmark::RunSpecifiedBenchmarks(&reporter);
    } catch (const std::exception& e) { // e.g. no prepared data: say so instead of aborting
        std::fprintf(stderr, "bench_train: error: %s\n(--help: the data and the variables)\n",
                     e.what());
        return 1;
    }
    print_summary(reporter);
    benchmark::Shutdown();
    return 0;
}
