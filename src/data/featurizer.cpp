// Hashed TF-IDF + sparse random projection (see featurizer.hpp for the pipeline and why).
#include "data/featurizer.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace pfcr {
namespace {

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

// (bucket, term count) of one text, sorted by bucket so sums run in a fixed order.
std::vector<std::pair<uint32_t, uint32_t>> bucket_counts(const std::string& text,
                                                         const TextFeaturizerOptions& opt) {
    const auto tokens = tokenize(text);
    std::vector<uint32_t> buckets;
    for (size_t i = 0; i < tokens.size(); ++i) {
        std::string term;
        for (int n = 1; n <= opt.ngrams && i + size_t(n) <= tokens.size(); ++n) {
            term += (n == 1 ? "" : " ") + tokens[i + size_t(n) - 1];
            buckets.push_back(uint32_t(mix64(fnv1a(term)) % uint64_t(opt.hash_buckets)));
        }
    }
    std::sort(buckets.begin(), buckets.end());
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (uint32_t b : buckets) {
        if (!out.empty() && out.back().first == b)
            ++out.back().second;
        else
            out.emplace_back(b, 1);
    }
    return out;
}

} // namespace

std::vector<std::string> tokenize(std::string_view text) {
    std::vector<std::string> out;
    std::string cur;
    for (unsigned char c : text) {
        const bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
        if (c >= 'A' && c <= 'Z')
            cur += char(c - 'A' + 'a');
        else if (word)
            cur += char(c);
        else if (!cur.empty())
            out.push_back(std::move(cur)), cur.clear();
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::vector<float> featurize_texts(const std::vector<std::string>& texts,
                                   const TextFeaturizerOptions& opt) {
    check(opt.dim > 0 && opt.hash_buckets > 0 && opt.ngrams >= 1, "featurizer: bad options");
    const size_t n = texts.size(), dim = size_t(opt.dim);
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> counts(n);
    tbb::parallel_for(size_t(0), n, [&](size_t i) { counts[i] = bucket_counts(texts[i], opt); });

    // Document frequency per bucket over the joint corpus (integer counts: order-free).
    std::vector<uint32_t> df(size_t(opt.hash_buckets), 0);
    for (const auto& c : counts)
        for (const auto& [b, tf] : c) ++df[b];

    const KeyedRng rng(opt.seed, RngPurpose::featurizer_projection);
    const double inv_sqrt_dim = 1.0 / std::sqrt(double(dim));
    std::vector<float> features(n * dim, 0.0f);
    tbb::parallel_for(size_t(0), n, [&](size_t i) {
        // TF-IDF weights (sublinear tf, smoothed idf), L2-normalised.
        std::vector<double> w(counts[i].size());
        double norm2 = 0;
        for (size_t t = 0; t < w.size(); ++t) {
            const auto [b, tf] = counts[i][t];
            const double idf = std::log((1.0 + double(n)) / (1.0 + double(df[b]))) + 1.0;
            w[t] = (1.0 + std::log(double(tf))) * idf;
            norm2 += w[t] * w[t];
        }
        // Projection: row b of the implicit (buckets x dim) matrix is +-1/sqrt(dim), one random
        // bit per entry from block (b, 0, 0, k) of the keyed stream — never materialised.
        std::vector<double> acc(dim, 0.0);
        for (size_t t = 0; t < w.size(); ++t) {
            const double wt = w[t] / std::sqrt(norm2) * inv_sqrt_dim;
            const uint32_t b = counts[i][t].first;
            for (size_t k = 0; k * 128 < dim; ++k) {
                const auto bits = rng.block(b, 0, 0, uint32_t(k));
                const size_t end = std::min(dim, k * 128 + 128);
                for (size_t j = k * 128; j < end; ++j) {
                    const size_t r = j - k * 128;
                    acc[j] += ((bits[r / 32] >> (r % 32)) & 1u) ? wt : -wt;
                }
            }
        }
        double out_norm2 = 0;
        for (double a : acc) out_norm2 += a * a;
        const double scale = out_norm2 > 0 ? 1.0 / std::sqrt(out_norm2) : 0.0;
        for (size_t j = 0; j < dim; ++j) features[i * dim + j] = float(acc[j] * scale);
    });
    return features;
}

} // namespace pfcr
