// `pfcr synth`: a deterministic synthetic multi-domain dataset in the UniSRec atomic-file
// format, built so that federation can matter: all domains draw their items from one shared
// latent semantic space (item features carry transferable meaning), users follow
// topic-driven sequences with popularity skew and sequential structure, and domains differ
// in size and sparsity. Output depends only on the options (incl. seed), never on threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pfcr {

struct SynthOptions {
    std::string output = "synthetic"; // folder; one sub-folder per domain
    int64_t n_domains = 8;
    int64_t users_min = 200, users_max = 2000; // per domain, log-uniform
    int64_t items_min = 100, items_max = 1000; // per domain, log-uniform
    int64_t seq_len_min = 5, seq_len_max = 60;
    double seq_len_mean_min = 6, seq_len_mean_max = 14; // per-domain mean, sparse..dense
    int64_t feature_dim = 64;
    int64_t n_topics = 32;
    int64_t latent_dim = 16;
    int64_t topics_per_domain = 8;
    double popularity_exponent = 1.0;
    double topic_stay = 0.85;
    double transition_prob = 0.6;
    double feature_noise = 0.1;
    int64_t trace_clients = 0; // synth.trace_clients: availability trace (written by run_synth)
    double trace_hours = 24;   // synth.trace_hours
    int64_t max_history = 50;  // MAX_ITEM_LIST_LENGTH: histories in .inter files are capped
    uint64_t seed = 2020;
    std::string feature_suffix = "feat1CLS";
};

struct SynthDomainSummary {
    std::string name;
    int64_t n_users = 0, n_items = 0, n_interactions = 0, n_train_rows = 0;
    double mean_seq_len = 0;
};

struct SynthSummary {
    std::vector<SynthDomainSummary> domains;
    std::string config_fragment_path; // <output>/synth.yaml: data.path, data.domains, plm_size...
};

SynthSummary write_synthetic_dataset(const SynthOptions& opt);

// Ground truth behind the files, for tests and analysis: the shared topic (0..n_topics-1) of
// every item of domain `domain` (0..n_domains-1), in item-index order. Recomputed from the
// options alone; writes nothing.
std::vector<int32_t> synthetic_item_topics(const SynthOptions& opt, int64_t domain);

} // namespace pfcr
