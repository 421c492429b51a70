// The built-in text featurizer: a deterministic stand-in for the BERT [CLS] item features of
// UniSRec/PFCR, which cannot be computed here (no pretrained language model). Item text ->
// lower-cased word tokens -> word n-grams -> hashed TF-IDF (IDF over the joint corpus of all
// domains' items) -> fixed sparse random projection (+-1/sqrt(d), keyed Philox per bucket)
// to plm_size dimensions -> L2 normalisation. It captures lexical, not contextual, similarity.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pfcr {

struct TextFeaturizerOptions {
    int64_t dim = 768;              // plm_size
    int64_t hash_buckets = 1 << 20; // data.text_hash_buckets
    int ngrams = 2;                 // data.text_ngrams: unigrams .. n-grams
    uint64_t seed = 2020;           // data.featurizer_seed
};

// Lower-cased tokens: maximal runs of ASCII letters/digits and non-ASCII bytes (UTF-8 words).
std::vector<std::string> tokenize(std::string_view text);

// Features of every text, row-major (texts.size() x dim). Pure function of texts + options;
// parallel over texts, identical for any thread count.
std::vector<float> featurize_texts(const std::vector<std::string>& texts,
                                   const TextFeaturizerOptions& opt);

} // namespace pfcr
