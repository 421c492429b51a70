// prepared.h5 end to end: prepare on real data (ScientificMM with its CLIP feature file, and
// the bundled pair through the text featurizer, tiny quantizer), write, read back equal,
// validate; determinism of the whole file's content; schema violations are detected; a
// synthetic dataset goes through prepare.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tbb/global_control.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "../support/tiny_fixtures.hpp"
#include "core/error.hpp"
#include "data/prepare.hpp"
#include "data/synth.hpp"
#include "io/h5.hpp"
#include "options/options.hpp"
#include "sim/commands.hpp"

using namespace pfcr;
using ::testing::HasSubstr;

namespace {

std::string temp_dir(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / "pfcr_test_prepared" / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir.string();
}

Config mm_config(const std::string& out) {
    return Config::load({}, {"data.path=" + std::string(PFCR_SOURCE_DIR) + "/tests/fixtures",
                             "data.domains=[ScientificMM]", "data.features=file", "plm_size=512",
                             "code_dim=8", "data.opq_iterations=2", "data.quantizer_iterations=5",
                             "output_dir=" + out});
}

bool same_split(const Split& a, const Split& b) {
    return a.indptr == b.indptr && a.items == b.items && a.targets == b.targets &&
           a.users == b.users;
}

} // namespace

TEST(Prepared, FeatureFileDomainRoundTrips) {
    const auto out = temp_dir("mm");
    const Config cfg = mm_config(out);
    const Logger log(0, true);
    const PreparedData d = prepare_dataset(resolve_options(cfg).prepare, log);
    ASSERT_EQ(d.domains.size(), 1u);
    const auto& pd = d.domains[0];
    EXPECT_EQ(pd.n_items, 1585);
    EXPECT_EQ(pd.n_users, 2928);
    EXPECT_EQ(pd.train.rows(), 10928u);
    EXPECT_EQ(pd.item_codes.size(), 1586u * 8u);
    EXPECT_EQ(d.manifest.quantizer_factory, "OPQ8,IVF1,PQ8x8np");
    EXPECT_EQ(d.manifest.features, "file");
    EXPECT_EQ(d.manifest.input_files.size(), 6u); // 5 atomic files + feat1CLS
    EXPECT_EQ(d.manifest.input_sha256.back(),
              "45fc2f23e1cd621f67ffc8584aa0cc30adae6eb5d7a354f79a2f93e6b94f8ae2"); // data README
    int64_t pop = 0;
    for (auto c : pd.item_popularity) pop += c;
    EXPECT_EQ(pop, 10928);

    const std::string path = out + "/prepared.h5";
    write_prepared(path, d);
    EXPECT_TRUE(validate_prepared(path).empty());
    const PreparedData back = read_prepared(path);
    const auto& bd = back.domains[0];
    EXPECT_EQ(bd.item_codes, pd.item_codes);
    EXPECT_EQ(bd.item_popularity, pd.item_popularity);
    EXPECT_TRUE(same_split(bd.train, pd.train));
    EXPECT_TRUE(same_split(bd.valid, pd.valid));
    EXPECT_TRUE(same_split(bd.test, pd.test));
    EXPECT_EQ(back.manifest.fingerprint, d.manifest.fingerprint);
    EXPECT_EQ(back.manifest.config_yaml, d.manifest.config_yaml);
    EXPECT_EQ(back.opq_matrix, d.opq_matrix);
    // The stored config is a loadable pfcr config that reproduces the settings.
    EXPECT_EQ(resolve_options(Config::from_yaml_text(back.manifest.config_yaml, "stored"))
                  .train.hp.shape.code_dim,
              8);
}

TEST(Prepared, SameInputsGiveSameCodesAndFingerprint) {
    const Logger log(0, true);
    const auto a = prepare_dataset(resolve_options(mm_config(temp_dir("det_a"))).prepare, log);
    PreparedData b;
    {
        // One worker thread and run.threads=1: faiss keeps data.quantizer_threads, so the
        // codes must not change.
        tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
        Config c1 = mm_config(temp_dir("det_b"));
        c1.set("run.threads", "1", "test");
        b = prepare_dataset(resolve_options(c1).prepare, log);
    }
    EXPECT_EQ(a.domains[0].item_codes, b.domains[0].item_codes);
    EXPECT_EQ(a.pq_centroids, b.pq_centroids);
    EXPECT_EQ(a.manifest.fingerprint, b.manifest.fingerprint);
    Config changed = mm_config(temp_dir("det_c"));
    changed.set("data.quantizer_seed", "7", "test");
    const auto c = prepare_dataset(resolve_options(changed).prepare, log);
    EXPECT_NE(c.domains[0].item_codes, a.domains[0].item_codes);
    EXPECT_NE(c.manifest.fingerprint, a.manifest.fingerprint);
}

TEST(Prepared, BundledPairThroughTextFeaturizerWithOneJointQuantizer) {
    const auto out = temp_dir("pair");
    const Config cfg =
        Config::load({std::string(PFCR_SOURCE_DIR) + "/configs/scientific-office.yaml",
                      std::string(PFCR_SOURCE_DIR) + "/configs/tiny.yaml"},
                     {"data.path=" + std::string(PFCR_SOURCE_DIR) + "/data", "output_dir=" + out});
    std::ostringstream summary;
    run_prepare(resolve_options(cfg), Logger(0, true), summary);
    EXPECT_THAT(summary.str(), HasSubstr("Scientific"));
    const PreparedData d = read_prepared(out + "/prepared.h5");
    ASSERT_EQ(d.domains.size(), 2u);
    EXPECT_EQ(d.domains[0].train.rows(), 34101u);
    EXPECT_EQ(d.domains[1].train.rows(), 38543u);
    EXPECT_EQ(d.manifest.features, "text");
    // Joint quantizer: both domains use the same code rows (the shared table), so every
    // sub-code's row range is used by both domains.
    const int64_t M = d.manifest.code_dim, cap = d.manifest.code_cap;
    for (const auto& pd : d.domains) {
        std::set<int32_t> used;
        for (int64_t i = 1; i <= pd.n_items; ++i) used.insert(pd.item_codes[size_t(i * M)]);
        EXPECT_GT(int64_t(used.size()), cap / 2) << pd.name; // sub-code 0 uses most values
    }
    EXPECT_TRUE(std::filesystem::exists(out + "/config.resolved.yaml"));
}

TEST(Prepared, ValidatorFindsSchemaViolations) {
    const auto out = temp_dir("bad");
    PreparedData d = prepare_dataset(resolve_options(mm_config(out)).prepare, Logger(0, true));
    d.domains[0].item_codes[8 * 5 + 2] = 9999; // a code row outside sub-code 2's range
    d.domains[0].train.targets[3] = int32_t(d.domains[0].n_items + 1); // target out of range
    const std::string path = out + "/bad.h5";
    write_prepared(path, d);
    const auto problems = validate_prepared(path);
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_THAT(problems[0], HasSubstr("/domains/ScientificMM/item_codes: item 5 sub-code 2"));
    EXPECT_THAT(problems[1], HasSubstr("/domains/ScientificMM/train/targets: value 1586"));
    EXPECT_THROW(read_prepared(path), Error);

    // A file of another format is reported with what was expected.
    {
        h5::File f = h5::File::create(out + "/other.h5");
        f.set_attr("format", "something-else");
        f.set_attr("format_version", "9");
        f.close();
    }
    const auto p2 = validate_prepared(out + "/other.h5");
    ASSERT_EQ(p2.size(), 1u);
    EXPECT_THAT(p2[0], HasSubstr("expected 'pfcr-prepared' version '1.0'"));
}

TEST(Prepared, SyntheticDatasetIsAccepted) {
    const auto out = temp_dir("synth");
    SynthOptions so;
    so.output = out + "/data";
    so.n_domains = 12;
    so.users_min = 30;
    so.users_max = 80;
    so.items_min = 30;
    so.items_max = 60;
    so.feature_dim = 32;
    const auto [s, cfg] = test::tiny_synthetic(so, out);
    std::ostringstream summary;
    run_prepare(resolve_options(cfg), Logger(0, true), summary);
    const PreparedData d = read_prepared(out + "/prepared.h5");
    ASSERT_EQ(d.domains.size(), 12u);
    for (size_t i = 0; i < 12; ++i) {
        EXPECT_EQ(d.domains[i].name, s.domains[i].name);
        EXPECT_EQ(int64_t(d.domains[i].train.rows()), s.domains[i].n_train_rows);
        EXPECT_EQ(d.domains[i].n_items, s.domains[i].n_items);
    }
    EXPECT_EQ(d.manifest.features, "file");
}

TEST(Prepared, UserShardsPartitionEveryRowExactlyOnce) {
    const PreparedData d =
        prepare_dataset(resolve_options(mm_config(temp_dir("shards"))).prepare, Logger(0, true));
    const PreparedDomain& dom = d.domains[0];
    const auto shards = split_into_shards(dom, 5);
    ASSERT_EQ(shards.size(), 5u);
    size_t train = 0, valid = 0, test = 0;
    std::vector<int> shard_of_user(size_t(dom.n_users), -1);
    for (size_t s = 0; s < shards.size(); ++s) {
        const auto& p = shards[s];
        EXPECT_EQ(p.name, "ScientificMM#" + std::to_string(s));
        EXPECT_GT(p.train.rows(), 0u);
        train += p.train.rows();
        valid += p.valid.rows();
        test += p.test.rows();
        for (const Split* sp : {&p.train, &p.valid, &p.test})
            for (int32_t u : sp->users) {
                // Every user lives in exactly one shard, with all three of its splits.
                EXPECT_TRUE(shard_of_user[size_t(u)] == -1 || shard_of_user[size_t(u)] == int(s));
                shard_of_user[size_t(u)] = int(s);
            }
        int64_t pop = 0;
        for (auto c : p.item_popularity) pop += c;
        EXPECT_EQ(pop, int64_t(p.train.rows()));
    }
    EXPECT_EQ(train, dom.train.rows());
    EXPECT_EQ(valid, dom.valid.rows());
    EXPECT_EQ(test, dom.test.rows());
    EXPECT_EQ(split_into_shards(dom, 5)[3].train.targets, shards[3].train.targets); // fixed hash
    EXPECT_EQ(split_into_shards(dom, 1)[0].train.targets, dom.train.targets);
    EXPECT_THROW(split_into_shards(dom, 5000), Error); // more shards than users: some are empty
}
