// The joint product quantizer of PFCR: one faiss `OPQ{M},IVF1,PQ{M}x{bits}` index with the
// inner-product metric, trained on the concatenated item features of all domains; the code
// of item r is row r of inverted list 0 (as in VQ-Rec/PFCR). Returns the raw sub-codes plus
// the trained transforms so they can be stored for inspection. Does not know about domains.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pfcr {

struct QuantizerOptions {
    int64_t code_dim = 32;            // M sub-quantizers
    int64_t code_cap = 256;           // 2^bits values per sub-code
    int seed = 1234;                  // data.quantizer_seed (OPQ init and every k-means)
    int kmeans_iterations = 25;       // data.quantizer_iterations
    int opq_iterations = 50;          // data.opq_iterations
    bool polysemous_training = false; // data.polysemous_training (faiss default for "PQ{M}x{b}")
    int threads = 2; // OpenMP threads of faiss (and OpenBLAS); results depend on it
};

struct QuantizerResult {
    std::string factory; // e.g. "OPQ32,IVF1,PQ32x8np"
    int64_t n = 0, dim = 0;
    std::vector<int32_t> codes;      // (n, M) sub-code values in 0..code_cap-1
    std::vector<float> opq_matrix;   // (d, d) rotation, y = A x
    std::vector<float> ivf_centroid; // (d) the single coarse centroid (in rotated space)
    std::vector<float> pq_centroids; // (M, code_cap, d/M)
    double relative_mse = 0;         // sum ||x - decode(x)||^2 / sum ||x||^2
};

QuantizerResult fit_joint_quantizer(const std::vector<float>& x, int64_t n, int64_t dim,
                                    const QuantizerOptions& opt);

} // namespace pfcr
