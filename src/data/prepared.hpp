// `prepared.h5`: everything training needs from the data stage, in one HDF5 file — every
// domain's splits (CSR histories, targets, user ids; internal item ids, 0 = padding), item
// code rows into the shared code table, train popularity, and a manifest (input sha256s,
// featurizer and quantizer parameters, software version). The exact schema is documented in
// docs/formats.md; this file writes it (atomically) and reads + validates it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/atomic_files.hpp"

namespace pfcr {

inline constexpr const char* prepared_format = "pfcr-prepared";
inline constexpr const char* prepared_format_version = "1.0";

struct PreparedDomain {
    std::string name;
    int64_t n_users = 0;
    int64_t n_items = 0;
    Split train, valid, test;
    std::vector<int32_t> item_codes;      // (n_items+1, code_dim) code-table rows; row 0 = 0
    std::vector<int64_t> item_popularity; // (n_items+1) train-target counts; [0] = 0
    std::string feature_source;           // "file:<path>" or "text"
};

struct PreparedManifest {
    std::vector<std::string> input_files;
    std::vector<std::string> input_sha256;
    std::string software_version;
    std::string created_utc;
    std::string config_yaml;       // the resolved config of the prepare run
    std::string fingerprint;       // sha256 over inputs + every parameter that shapes the output
    std::string quantizer_factory; // "OPQ32,IVF1,PQ32x8"
    std::string metric = "inner_product";
    int64_t code_dim = 0, code_cap = 0, plm_size = 0, max_history = 0;
    int64_t quantizer_seed = 0, quantizer_iterations = 0, opq_iterations = 0;
    std::string features; // data.features as resolved: "file", "text" or "mixed"
    int64_t text_hash_buckets = 0, text_ngrams = 0, featurizer_seed = 0;
    double quantizer_relative_mse = 0;
};

struct PreparedData {
    PreparedManifest manifest;
    std::vector<PreparedDomain> domains;
    // The trained quantizer, for inspection and for coding new items later.
    std::vector<float> opq_matrix;   // (plm_size, plm_size)
    std::vector<float> ivf_centroid; // (plm_size)
    std::vector<float> pq_centroids; // (code_dim, code_cap, plm_size/code_dim)
};

// Code-table row of sub-code m with value c (PFCR: row 0 is padding): m*(code_cap+1) + c + 1.
inline int32_t code_table_row(int64_t m, int64_t c, int64_t code_cap) {
    return int32_t(m * (code_cap + 1) + c + 1);
}

// Writes to `<path>.tmp.<pid>` and renames on success: no partial file under `path`.
void write_prepared(const std::string& path, const PreparedData& data);

// Reads and fully validates; throws Error naming the file and object on any violation.
PreparedData read_prepared(const std::string& path);

// Validation only: every schema violation found (empty = valid). Never throws on bad content.
std::vector<std::string> validate_prepared(const std::string& path);

} // namespace pfcr

namespace pfcr {

// Splits a domain's users into `shards` disjoint clients (docs/ARCHITECTURE.md §3): user u goes to
// shard mix64(u) % shards, and each shard keeps the train/valid/test rows of its users, in
// file order, with the domain's items and codes. Shard s is named "<domain>#<s>". Throws
// Error if a shard gets no train rows (too many shards for the domain).
std::vector<PreparedDomain> split_into_shards(const PreparedDomain& domain, int64_t shards);

} // namespace pfcr
