// The data stage of `pfcr prepare`: every domain's atomic files -> item features -> one joint
// OPQ/PQ quantizer over all domains' items -> PreparedData with its manifest. Writing the
// result is write_prepared's (prepared.hpp); the config keys behind PrepareOptions are mapped
// in src/options. No MPI and no output files here.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "data/featurizer.hpp"
#include "data/prepared.hpp"
#include "data/quantizer.hpp"

namespace pfcr {

struct PrepareOptions {
    std::string path;                        // data.path: one sub-folder <D>/ per domain
    std::vector<std::string> domains;        // data.domains, in client order
    std::string domains_origin;              // where data.domains was set (for error messages)
    std::string features = "auto";           // data.features: auto | file | text
    std::string feature_suffix = "feat1CLS"; // data.feature_suffix
    int64_t max_history = 50;                // MAX_ITEM_LIST_LENGTH
    TextFeaturizerOptions text;              // text.dim = plm_size (also the feature file's width)
    QuantizerOptions quantizer;              // code_dim, code_cap, data.quantizer_*, data.opq_*
    std::string config_yaml;                 // the resolved config, recorded in the manifest
};

// Reads every domain, featurizes, fits the joint quantizer; returns the prepared data in memory.
PreparedData prepare_dataset(const PrepareOptions& opt, const Logger& log);

// Human-readable summary table of prepared data.
void print_prepared_summary(const PreparedData& d, std::ostream& out);

} // namespace pfcr
