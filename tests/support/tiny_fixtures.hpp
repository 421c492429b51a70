// Tiny data fixtures shared by C++ tests: a synthetic dataset written with `pfcr synth`'s
// generator and configs/tiny.yaml pointed at it. Needs PFCR_SOURCE_DIR (tests/CMakeLists.txt).
#pragma once

#include <string>

#include "data/synth.hpp"
#include "io/config.hpp"

namespace pfcr::test {

struct TinySynthetic {
    SynthSummary summary; // what write_synthetic_dataset wrote
    Config config;        // configs/tiny.yaml + the dataset's config fragment + output_dir
};

// Writes the synthetic dataset `so` (to so.output) and loads configs/tiny.yaml with its config
// fragment and output_dir = `output_dir`.
inline TinySynthetic tiny_synthetic(const SynthOptions& so, const std::string& output_dir) {
    TinySynthetic t;
    t.summary = write_synthetic_dataset(so);
    t.config = Config::load(
        {std::string(PFCR_SOURCE_DIR) + "/configs/tiny.yaml", t.summary.config_fragment_path},
        {"output_dir=" + output_dir});
    return t;
}

} // namespace pfcr::test
