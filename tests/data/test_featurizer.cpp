// Text featurizer: tokenization rules, determinism (same bits on repeat and at any thread
// count), unit norm, and that it captures lexical similarity on the real Scientific texts.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>

#include "data/atomic_files.hpp"
#include "data/featurizer.hpp"

using namespace pfcr;

TEST(Featurizer, TokenizeLowercasesAndSplitsOnPunctuation) {
    EXPECT_EQ(tokenize("PORTER-CABLE 4 1/2-Inch, Grit."),
              (std::vector<std::string>{"porter", "cable", "4", "1", "2", "inch", "grit"}));
    EXPECT_EQ(tokenize("Café  crème"), (std::vector<std::string>{"café", "crème"}));
    EXPECT_TRUE(tokenize(" ,. ").empty());
}

TEST(Featurizer, DeterministicUnitNormAndThreadIndependent) {
    const DomainData d =
        read_domain(std::string(PFCR_SOURCE_DIR) + "/data/Scientific", "Scientific", 50);
    std::vector<std::string> texts = read_item_texts(d);
    texts.resize(800);
    TextFeaturizerOptions opt;
    opt.dim = 96;
    const auto a = featurize_texts(texts, opt);
    std::vector<float> b;
    {
        tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
        b = featurize_texts(texts, opt);
    }
    ASSERT_EQ(a.size(), 800u * 96u);
    EXPECT_EQ(a, b); // bitwise
    for (size_t i = 0; i < 800; ++i) {
        double n2 = 0;
        for (size_t j = 0; j < 96; ++j) n2 += double(a[i * 96 + j]) * a[i * 96 + j];
        EXPECT_NEAR(n2, 1.0, 1e-5);
    }
    opt.seed = 7;
    EXPECT_NE(featurize_texts(texts, opt), a); // the projection is keyed by the seed
}

TEST(Featurizer, SimilarTextsAreCloserThanUnrelatedOnes) {
    const std::vector<std::string> texts{
        "PORTER-CABLE 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll. Abrasive Sanding "
        "Rolls.",
        "PORTER-CABLE 4 1/2-Inch by 10yd 120 Grit Adhesive-Backed Sanding Roll. Abrasive Sanding "
        "Rolls.",
        "Nitrile examination gloves, powder free, large, box of 100. Lab Safety Gloves.",
    };
    TextFeaturizerOptions opt;
    opt.dim = 768;
    const auto f = featurize_texts(texts, opt);
    const auto cos = [&](size_t a, size_t b) {
        double s = 0;
        for (size_t j = 0; j < 768; ++j) s += double(f[a * 768 + j]) * f[b * 768 + j];
        return s;
    };
    // The two sanding rolls share most n-grams; the gloves share none. With 768 random
    // dimensions, unrelated texts have |cos| ~ 1/sqrt(768) = 0.036, so 0.2 is a wide margin.
    EXPECT_GT(cos(0, 1), 0.6);
    EXPECT_LT(std::abs(cos(0, 2)), 0.2);
}
