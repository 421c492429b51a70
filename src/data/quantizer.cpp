// faiss OPQ + IVF1 + PQ training and code extraction (see quantizer.hpp).
#include "data/quantizer.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/utils/hamming.h>
#include <omp.h>

#include <bit>
#include <memory>

#include "core/error.hpp"
#include "core/heap.hpp"

namespace pfcr {

QuantizerResult fit_joint_quantizer(const std::vector<float>& x, int64_t n, int64_t dim,
                                    const QuantizerOptions& opt) {
    const int64_t M = opt.code_dim;
    const int bits = std::countr_zero(uint64_t(opt.code_cap));
    check(opt.code_cap >= 2 && (int64_t(1) << bits) == opt.code_cap && bits <= 8,
          "code_cap = ", opt.code_cap, " must be a power of two in 2..256");
    check(dim % M == 0, "plm_size = ", dim, " must be divisible by code_dim = ", M);
    check(int64_t(x.size()) == n * dim, "quantizer: feature matrix has the wrong size");
    check(n >= opt.code_cap, "the quantizer needs at least code_cap = ", opt.code_cap,
          " items over all domains to train ", opt.code_cap,
          " centroids per sub-quantizer, but there are ", n, "; lower code_cap");

    QuantizerResult r;
    // "np" skips faiss's polysemous training, which only relabels each sub-quantizer's
    // centroids so that Hamming distances between codes track vector distances. PFCR uses a
    // code only as an index into an i.i.d.-initialised embedding table, so any relabelling
    // gives an equivalent model — and that step is ~90% of the training time here.
    r.factory = "OPQ" + std::to_string(M) + ",IVF1,PQ" + std::to_string(M) + "x" +
                std::to_string(bits) + (opt.polysemous_training ? "" : "np");
    r.n = n;
    r.dim = dim;
    const ScopedHeapReuse heap; // faiss's per-step 16 MiB scratch reused, not re-mapped
    // OpenMP's thread count for faiss, restored on every exit (an error thrown by a check below
    // as well as a FaissException).
    struct OmpThreads {
        int saved = omp_get_max_threads();
        explicit OmpThreads(int n) {
            if (n > 0) omp_set_num_threads(n);
        }
        ~OmpThreads() { omp_set_num_threads(saved); }
    } const omp_threads(opt.threads);
    try {
        std::unique_ptr<faiss::Index> index(
            faiss::index_factory(int(dim), r.factory.c_str(), faiss::METRIC_INNER_PRODUCT));
        auto* pre = dynamic_cast<faiss::IndexPreTransform*>(index.get());
        check(pre && pre->chain.size() == 1, "faiss: unexpected index structure for ", r.factory);
        auto* opq = dynamic_cast<faiss::OPQMatrix*>(pre->chain[0]);
        auto* ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(pre->index);
        check(opq && ivfpq, "faiss: unexpected index structure for ", r.factory);

        // Make every random choice depend on data.quantizer_seed (faiss defaults to 1234).
        faiss::ProductQuantizer opq_pq{size_t(dim), size_t(M), size_t(bits)};
        // faiss warns on every k-means when there are fewer than 39 points per centroid; with
        // a few thousand items that is expected (PFCR trains on the same item counts), so the
        // threshold is lowered to keep the log readable.
        for (faiss::ClusteringParameters* cp : {&opq_pq.cp, &ivfpq->cp, &ivfpq->pq.cp}) {
            cp->seed = opt.seed;
            cp->min_points_per_centroid = 1;
        }
        opq->pq = &opq_pq;
        opq->niter = opt.opq_iterations;
        ivfpq->pq.cp.niter = opt.kmeans_iterations;

        index->train(n, x.data());
        index->add(n, x.data());
        opq->pq = nullptr;

        // Codes: list 0 holds every item, in insertion order (checked through its ids).
        const auto* lists = ivfpq->invlists;
        check(int64_t(lists->list_size(0)) == n, "faiss: inverted list 0 does not hold every item");
        const faiss::Index::idx_t* ids = lists->get_ids(0);
        const uint8_t* codes = lists->get_codes(0);
        const size_t code_size = ivfpq->code_size;
        r.codes.assign(size_t(n * M), 0);
        for (int64_t row = 0; row < n; ++row) {
            const int64_t item = ids[row];
            check(item >= 0 && item < n, "faiss: bad id in inverted list");
            faiss::BitstringReader reader(codes + size_t(row) * code_size, code_size);
            for (int64_t m = 0; m < M; ++m)
                r.codes[size_t(item * M + m)] = int32_t(reader.read(bits));
        }

        r.opq_matrix = opq->A;
        auto* coarse = dynamic_cast<faiss::IndexFlat*>(ivfpq->quantizer);
        check(coarse != nullptr, "faiss: unexpected coarse quantizer");
        r.ivf_centroid.assign(coarse->get_xb(), coarse->get_xb() + dim);
        r.pq_centroids = ivfpq->pq.centroids;

        // Reconstruction quality, reported by `pfcr prepare`.
        ivfpq->make_direct_map();
        std::vector<float> recon(size_t(n * dim));
        index->reconstruct_n(0, n, recon.data());
        double err = 0, norm = 0;
        for (size_t i = 0; i < recon.size(); ++i) {
            err += double(x[i] - recon[i]) * double(x[i] - recon[i]);
            norm += double(x[i]) * double(x[i]);
        }
        r.relative_mse = norm > 0 ? err / norm : 0.0;
    } catch (const faiss::FaissException& e) {
        fail("faiss ", r.factory, ": ", e.what());
    }
    return r;
}

} // namespace pfcr
