// The data stage (`pfcr prepare`): read every domain's atomic files, featurize its items (a
// feature file or the built-in text featurizer), fit ONE joint faiss OPQ/PQ quantizer over all
// domains' items, and assemble the prepared data with its manifest (inputs, sha256, parameters,
// fingerprint). Writing prepared.h5 is prepared.hpp's; turning config keys into PrepareOptions
// is the options module's. No MPI here.
#include "data/prepare.hpp"

#include <tbb/parallel_for.h>

#include <exception>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "data/featurizer.hpp"
#include "io/sha256.hpp"
#include "pfcr/version.hpp"

namespace pfcr {
namespace {

// Runs fn(i) for i in [0, n) in parallel; if any throw, rethrows the lowest index's error so
// the message does not depend on scheduling.
template <typename Fn> void parallel_for_ordered_errors(size_t n, Fn&& fn) {
    std::vector<std::exception_ptr> errors(n);
    tbb::parallel_for(size_t(0), n, [&](size_t i) {
        try {
            fn(i);
        } catch (...) {
            errors[i] = std::current_exception();
        }
    });
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

} // namespace

PreparedData prepare_dataset(const PrepareOptions& opt, const Logger& log) {
    const auto& names = opt.domains;
    check(!names.empty(), "data.domains (", opt.domains_origin,
          ") is empty: list the domain folders under data.path = '", opt.path, "'");
    std::set<std::string> unique;
    for (const auto& n : names) {
        check(!n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos,
              "data.domains (", opt.domains_origin, "): '", n,
              "' is not a domain name (a folder name under data.path, without '/')");
        check(unique.insert(n).second, "data.domains (", opt.domains_origin, ") lists domain '", n,
              "' twice");
    }
    const int max_history = int(opt.max_history);
    const int64_t dim = opt.text.dim;
    const std::string& root = opt.path;
    const std::string& suffix = opt.feature_suffix;
    Stopwatch sw;

    // 1. Atomic files.
    std::vector<DomainData> domains(names.size());
    parallel_for_ordered_errors(names.size(), [&](size_t i) {
        domains[i] =
            read_domain((std::filesystem::path(root) / names[i]).string(), names[i], max_history);
    });
    log.info("read " + std::to_string(domains.size()) + " domains in " +
             std::to_string(sw.seconds()) + " s");

    // 2. Features: one source for all domains (a joint quantizer over mixed sources is
    // meaningless).
    std::string mode = opt.features;
    if (mode == "auto") {
        size_t with_file = 0;
        std::string with, without;
        for (const auto& d : domains) {
            const bool has = std::filesystem::exists(domain_file(d.dir, d.name, suffix));
            with_file += has ? 1 : 0;
            (has ? with : without) += (has ? with : without).empty() ? d.name : ", " + d.name;
        }
        check(with_file == 0 || with_file == domains.size(), "data.features = auto: ", with_file,
              " of ", domains.size(), " domains have a .", suffix, " feature file (with: ", with,
              "; without: ", without, "); set data.features to 'file' or 'text' explicitly");
        mode = with_file ? "file" : "text";
    }
    std::vector<int64_t> offset(domains.size() + 1, 0);
    for (size_t i = 0; i < domains.size(); ++i) offset[i + 1] = offset[i] + domains[i].n_items;
    const int64_t n_total = offset.back();
    std::vector<float> features;
    std::vector<std::string> feature_source(domains.size());
    sw.reset();
    if (mode == "file") {
        features.resize(size_t(n_total * dim));
        parallel_for_ordered_errors(domains.size(), [&](size_t i) {
            const auto path = domain_file(domains[i].dir, domains[i].name, suffix);
            const auto f = read_item_features(path, domains[i].n_items, dim);
            std::copy(f.begin(), f.end(), features.begin() + offset[i] * dim);
            domains[i].input_files.push_back(path);
            feature_source[i] = "file:" + path;
        });
    } else {
        std::vector<std::string> texts;
        for (auto& d : domains) {
            auto t = read_item_texts(d);
            texts.insert(texts.end(), std::make_move_iterator(t.begin()),
                         std::make_move_iterator(t.end()));
            d.input_files.push_back(domain_file(d.dir, d.name, "text"));
        }
        features = featurize_texts(texts, opt.text);
        for (auto& s : feature_source) s = "text";
    }
    log.info("features (" + mode + ", " + std::to_string(n_total) + " items x " +
             std::to_string(dim) + ") in " + std::to_string(sw.seconds()) + " s");

    // 3. One joint quantizer over all domains' items.
    sw.reset();
    const QuantizerOptions& qo = opt.quantizer;
    QuantizerResult q = fit_joint_quantizer(features, n_total, dim, qo);
    log.info("quantizer " + q.factory + " trained in " + std::to_string(sw.seconds()) +
             " s, relative MSE " + std::to_string(q.relative_mse));

    // 4. Assemble.
    PreparedData out;
    const int64_t M = qo.code_dim, cap = qo.code_cap;
    for (size_t i = 0; i < domains.size(); ++i) {
        auto& d = domains[i];
        PreparedDomain pd;
        pd.name = d.name;
        pd.n_users = d.n_users;
        pd.n_items = d.n_items;
        pd.feature_source = feature_source[i];
        pd.item_codes.assign(size_t((d.n_items + 1) * M), 0);
        for (int64_t item = 0; item < d.n_items; ++item)
            for (int64_t m = 0; m < M; ++m)
                pd.item_codes[size_t((item + 1) * M + m)] =
                    code_table_row(m, q.codes[size_t((offset[i] + item) * M + m)], cap);
        pd.item_popularity.assign(size_t(d.n_items + 1), 0);
        for (int32_t t : d.train.targets) ++pd.item_popularity[size_t(t)];
        pd.train = std::move(d.train);
        pd.valid = std::move(d.valid);
        pd.test = std::move(d.test);
        out.domains.push_back(std::move(pd));
    }
    out.opq_matrix = std::move(q.opq_matrix);
    out.ivf_centroid = std::move(q.ivf_centroid);
    out.pq_centroids = std::move(q.pq_centroids);

    // 5. Manifest: what went in, with which parameters.
    auto& m = out.manifest;
    for (const auto& d : domains)
        m.input_files.insert(m.input_files.end(), d.input_files.begin(), d.input_files.end());
    m.input_sha256.resize(m.input_files.size());
    parallel_for_ordered_errors(
        m.input_files.size(), [&](size_t i) { m.input_sha256[i] = sha256_file(m.input_files[i]); });
    m.software_version = software_version;
    m.created_utc = utc_timestamp();
    m.config_yaml = opt.config_yaml;
    m.quantizer_factory = q.factory;
    m.code_dim = M;
    m.code_cap = cap;
    m.plm_size = dim;
    m.max_history = max_history;
    m.quantizer_seed = qo.seed;
    m.quantizer_iterations = qo.kmeans_iterations;
    m.opq_iterations = qo.opq_iterations;
    m.features = mode;
    m.text_hash_buckets = mode == "text" ? opt.text.hash_buckets : 0;
    m.text_ngrams = mode == "text" ? opt.text.ngrams : 0;
    m.featurizer_seed = mode == "text" ? int64_t(opt.text.seed) : 0;
    m.quantizer_relative_mse = q.relative_mse;
    std::ostringstream fp;
    fp << "pfcr-prepared " << prepared_format_version << '\n';
    for (size_t i = 0; i < m.input_files.size(); ++i)
        fp << std::filesystem::path(m.input_files[i]).filename().string() << ' '
           << m.input_sha256[i] << '\n';
    fp << m.quantizer_factory << ' ' << m.plm_size << ' ' << m.max_history << ' '
       << m.quantizer_seed << ' ' << m.quantizer_iterations << ' ' << m.opq_iterations << ' '
       << m.features << ' ' << m.text_hash_buckets << ' ' << m.text_ngrams << ' '
       << m.featurizer_seed << '\n';
    const std::string fp_text = fp.str();
    m.fingerprint = sha256_hex(fp_text.data(), fp_text.size());
    return out;
}

void print_prepared_summary(const PreparedData& d, std::ostream& out) {
    const auto& m = d.manifest;
    out << "quantizer  " << m.quantizer_factory << " (" << m.metric << "), features: " << m.features
        << ", plm_size " << m.plm_size << ", relative reconstruction MSE " << std::setprecision(4)
        << m.quantizer_relative_mse << "\n";
    out << std::left << std::setw(14) << "domain" << std::right << std::setw(9) << "users"
        << std::setw(8) << "items" << std::setw(11) << "train" << std::setw(9) << "valid"
        << std::setw(9) << "test" << std::setw(10) << "mean len" << std::setw(16)
        << "distinct codes"
        << "\n";
    int64_t tot_users = 0, tot_items = 0, tot_train = 0;
    for (const auto& pd : d.domains) {
        const double mean_len =
            pd.test.rows() ? double(pd.test.items.size()) / double(pd.test.rows()) : 0;
        std::set<std::vector<int32_t>> distinct;
        const size_t M = size_t(m.code_dim);
        for (int64_t i = 1; i <= pd.n_items; ++i)
            distinct.emplace(pd.item_codes.begin() + i * int64_t(M),
                             pd.item_codes.begin() + (i + 1) * int64_t(M));
        out << std::left << std::setw(14) << pd.name << std::right << std::setw(9)
            << thousands(pd.n_users) << std::setw(8) << thousands(pd.n_items) << std::setw(11)
            << thousands(int64_t(pd.train.rows())) << std::setw(9)
            << thousands(int64_t(pd.valid.rows())) << std::setw(9)
            << thousands(int64_t(pd.test.rows())) << std::setw(10) << std::fixed
            << std::setprecision(2) << mean_len << std::setw(16)
            << thousands(int64_t(distinct.size())) << "\n";
        out.unsetf(std::ios::fixed);
        tot_users += pd.n_users;
        tot_items += pd.n_items;
        tot_train += int64_t(pd.train.rows());
    }
    out << std::left << std::setw(14) << "total" << std::right << std::setw(9)
        << thousands(tot_users) << std::setw(8) << thousands(tot_items) << std::setw(11)
        << thousands(tot_train) << "\n";
    out << "(mean len = mean test-history length; distinct codes = items with a unique "
        << m.code_dim << "-code tuple)\n";
}

} // namespace pfcr
