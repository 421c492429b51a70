// Reader round trips on the bundled real files: counts equal data/README.md's table, ids are
// shifted to internal ids (0 = padding), and the leave-one-out structure holds.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "core/text.hpp"
#include "data/atomic_files.hpp"
#include "io/sha256.hpp"

using namespace pfcr;

namespace {
const std::string data_dir = std::string(PFCR_SOURCE_DIR) + "/data";

std::vector<int32_t> history(const Split& s, size_t r) {
    return {s.items.begin() + s.indptr[r], s.items.begin() + s.indptr[r + 1]};
}
} // namespace

TEST(AtomicFiles, ScientificCountsMatchReadme) {
    const DomainData d = read_domain(data_dir + "/Scientific", "Scientific", 50);
    EXPECT_EQ(d.n_users, 8442);
    EXPECT_EQ(d.n_items, 4385);
    EXPECT_EQ(d.train.rows(), 34101u);
    EXPECT_EQ(d.valid.rows(), 8442u);
    EXPECT_EQ(d.test.rows(), 8442u);
    // README: 59,427 interactions = train part + valid target + test target, per user the
    // train part has one row fewer than items (the first item is never a target).
    EXPECT_EQ(d.train.rows() + d.n_users /*first items*/ + d.valid.rows() + d.test.rows(), 59427u);
    EXPECT_EQ(d.item_raw_ids[0], "B00TNNWMXI");
    // First train line: "0\t0 1 2 3 4 5 6 7 8 9 10\t11" -> internal ids +1.
    EXPECT_EQ(d.train.users[0], 0);
    EXPECT_EQ(history(d.train, 0), (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
    EXPECT_EQ(d.train.targets[0], 12);
    EXPECT_EQ(d.input_files.size(), 5u);
}

TEST(AtomicFiles, Office2014CountsMatchReadme) {
    const DomainData d = read_domain(data_dir + "/Office2014", "Office2014", 50);
    EXPECT_EQ(d.n_users, 4905);
    EXPECT_EQ(d.n_items, 2420);
    EXPECT_EQ(d.train.rows(), 38543u);
    EXPECT_EQ(d.valid.rows(), 4905u);
    EXPECT_EQ(d.test.rows(), 4905u);
    EXPECT_EQ(d.train.rows() + d.n_users + d.valid.rows() + d.test.rows(), 53258u);
}

TEST(AtomicFiles, LeaveOneOutStructureHolds) {
    const DomainData d = read_domain(data_dir + "/Scientific", "Scientific", 50);
    size_t max_len = 0;
    for (size_t u = 0; u < d.test.rows(); ++u) {
        // valid row u and test row u belong to user u; test history = valid history + valid
        // target, capped to the last 50.
        ASSERT_EQ(d.valid.users[u], int32_t(u));
        ASSERT_EQ(d.test.users[u], int32_t(u));
        auto expect = history(d.valid, u);
        expect.push_back(d.valid.targets[u]);
        if (expect.size() > 50) expect.erase(expect.begin(), expect.end() - 50);
        ASSERT_EQ(history(d.test, u), expect) << "user " << u;
        max_len = std::max(max_len, history(d.test, u).size());
        for (int32_t it : history(d.test, u)) ASSERT_GE(it, 1);
    }
    EXPECT_EQ(max_len, 50u); // README: 3 users have more than 52 interactions
}

TEST(AtomicFiles, TextsJoinThroughItem2Index) {
    const DomainData d = read_domain(data_dir + "/Scientific", "Scientific", 50);
    const auto texts = read_item_texts(d);
    ASSERT_EQ(texts.size(), 4385u);
    // data/README.md: B0000223SI is a PORTER-CABLE sanding roll; find its index.
    const auto it = std::find(d.item_raw_ids.begin(), d.item_raw_ids.end(), "B0000223SI");
    ASSERT_NE(it, d.item_raw_ids.end());
    EXPECT_EQ(texts[size_t(it - d.item_raw_ids.begin())].rfind("PORTER-CABLE 740000801", 0), 0u);
    for (const auto& t : texts) EXPECT_FALSE(t.empty());
}

TEST(AtomicFiles, FeatureFileOfScientificMM) {
    const std::string dir = std::string(PFCR_SOURCE_DIR) + "/tests/fixtures/ScientificMM";
    const DomainData d = read_domain(dir, "ScientificMM", 50);
    EXPECT_EQ(d.n_items, 1585);
    const auto f = read_item_features(dir + "/ScientificMM.feat1CLS", d.n_items, 512);
    ASSERT_EQ(f.size(), 1585u * 512u);
    EXPECT_NEAR(f[0], -0.1028f, 1e-4); // data/README.md: first values -0.1028 -0.1687 ...
    EXPECT_NEAR(f[1], -0.1687f, 1e-4);
}

TEST(AtomicFiles, BundledFilesMatchTheSha256TableOfDataReadme) {
    // data/README.md lists "| <file> | <bytes> | <sha256> |" for every bundled file.
    std::ifstream readme(data_dir + "/README.md");
    std::map<std::string, std::string> table;
    for (std::string line; std::getline(readme, line);) {
        const auto cols = split(line, '|');
        if (cols.size() < 5) continue;
        const std::string file(trim(cols[1])), sha(trim(cols[3]));
        if (sha.size() == 64 &&
            (file.rfind("Scientific.", 0) == 0 || file.rfind("Office2014.", 0) == 0))
            table[file] = sha;
    }
    ASSERT_EQ(table.size(), 12u);
    for (const auto& [file, sha] : table) {
        const std::string domain = file.substr(0, file.find('.'));
        EXPECT_EQ(sha256_file(data_dir + "/" + domain + "/" + file), sha) << file;
    }
}
