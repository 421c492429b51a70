// Reader of one domain in the UniSRec atomic-file format (data/README.md):
// <D>.{train,valid,test}.inter, <D>.item2index, <D>.user2index, <D>.text and an optional
// float32 feature file. Every malformed input is an Error naming file and line. Histories
// are kept at their true length (CSR); item ids become internal ids (domain item i -> i+1,
// 0 = padding). Does not featurize or quantize.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pfcr {

// One split as CSR rows: history of row r = items[indptr[r] .. indptr[r+1]), oldest first.
struct Split {
    std::vector<int64_t> indptr{0}; // (rows+1)
    std::vector<int32_t> items;     // (nnz) internal item ids, 1..n_items
    std::vector<int32_t> targets;   // (rows) internal item ids
    std::vector<int32_t> users;     // (rows) user index from <D>.user2index
    size_t rows() const { return targets.size(); }
};

struct DomainData {
    std::string name;
    std::string dir;
    int64_t n_users = 0;
    int64_t n_items = 0;                   // real items; internal ids 1..n_items
    std::vector<std::string> item_raw_ids; // (n_items) raw id of domain item i (index order)
    Split train, valid, test;
    std::vector<std::string> input_files; // every file read, for the manifest
};

// Paths of one domain's files: <dir>/<name>.<suffix>.
std::string domain_file(const std::string& dir, const std::string& name, const std::string& suffix);

// Reads and checks the three .inter files, item2index and user2index.
DomainData read_domain(const std::string& dir, const std::string& name, int max_history);

// Item texts from <D>.text in item-index order (joined through item2index).
std::vector<std::string> read_item_texts(const DomainData& domain);

// Float32 little-endian features (n_items x dim, row = item index); checks size and finiteness.
std::vector<float> read_item_features(const std::string& path, int64_t n_items, int64_t dim);

} // namespace pfcr
