// Tests of `pfcr synth` (src/data/synth.cpp): byte determinism (also across thread counts), the
// UniSRec atomic-file format and leave-one-out rule (sequences are rebuilt from the files and
// the files rewritten byte for byte), heterogeneous domains, and the transferable feature
// semantics that make federation matter. The atomic-file reader has its own tests.
#include "data/synth.hpp"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.hpp"
#include "core/text.hpp"

namespace pfcr {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = fs::temp_directory_path() / ("pfcr_test_synth_" + std::to_string(::getpid()) + "_" +
                                             info->name() + "_" + std::to_string(counter++));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string str(const std::string& sub = "") const { return (path_ / sub).string(); }

private:
    fs::path path_;
};

std::string read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream os;
    os << f.rdbuf();
    return os.str();
}

// Every regular file under `dir`, keyed by its relative path.
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_bytes(e.path());
    return files;
}

// pfcr::split as owning strings (the tests keep pieces beyond the split text's lifetime).
std::vector<std::string> split_strings(const std::string& s, char sep) {
    const auto parts = pfcr::split(s, sep);
    return {parts.begin(), parts.end()};
}

// Lines of a text file that must end in exactly one LF per line.
std::vector<std::string> text_lines(const std::string& bytes) {
    EXPECT_TRUE(!bytes.empty() && bytes.back() == '\n') << "file must end with LF";
    EXPECT_EQ(bytes.find('\r'), std::string::npos) << "file must use LF line endings";
    auto lines = split_strings(bytes, '\n');
    lines.pop_back(); // the empty piece after the final LF
    return lines;
}

int64_t to_int(const std::string& s) {
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    EXPECT_EQ(used, s.size()) << "'" << s << "' is not an integer";
    return v;
}

SynthOptions small_options(const std::string& output) {
    SynthOptions o;
    o.output = output;
    o.n_domains = 3;
    o.users_min = 30;
    o.users_max = 90;
    o.items_min = 20;
    o.items_max = 70;
    o.seq_len_min = 4;
    o.seq_len_max = 30;
    o.seq_len_mean_min = 6;
    o.seq_len_mean_max = 12;
    o.feature_dim = 16;
    o.max_history = 8; // small, so that capped histories are exercised
    return o;
}

std::string domain_dir(const SynthOptions& o, const std::string& name) {
    return (fs::path(o.output) / name).string();
}

std::string domain_file(const SynthOptions& o, const std::string& name, const std::string& ext) {
    return (fs::path(o.output) / name / (name + "." + ext)).string();
}

const std::string inter_header = "user_id:token\titem_id_list:token_seq\titem_id:token";

// The leave-one-out rule of data/README.md, written independently of synth.cpp.
void write_split(const std::vector<std::vector<int64_t>>& seqs, int64_t max_history,
                 std::string& train, std::string& valid, std::string& test) {
    const auto row = [&](std::string& out, size_t user, const std::vector<int64_t>& s, size_t t) {
        out += std::to_string(user) + "\t";
        const size_t first = t > size_t(max_history) ? t - size_t(max_history) : 0;
        for (size_t j = first; j < t; ++j) out += (j > first ? " " : "") + std::to_string(s[j]);
        out += "\t" + std::to_string(s[t]) + "\n";
    };
    train = valid = test = inter_header + "\n";
    for (size_t u = 0; u < seqs.size(); ++u) {
        const auto& s = seqs[u];
        const size_t L = s.size();
        for (size_t k = 1; k + 3 <= L; ++k) row(train, u, s, L - 2 - k);
        row(valid, u, s, L - 2);
        row(test, u, s, L - 1);
    }
}

struct ParsedDomain {
    int64_t n_users = 0, n_items = 0;
    std::vector<std::vector<int64_t>> seqs; // (users) rebuilt full sequences
    std::vector<std::string> texts;         // (items) in index order
    std::vector<float> features;            // (items, feature_dim)
};

// Reads one domain back, checking every format rule on the way, and rebuilds each user's
// full sequence from train (targets newest first, first history item), valid and test.
void parse_domain(const SynthOptions& o, const std::string& name, int64_t domain_index,
                  ParsedDomain& out) {
    const std::string did = [&] {
        std::string s = std::to_string(domain_index);
        return "d" + std::string(s.size() < 3 ? 3 - s.size() : 0, '0') + s;
    }();
    // item2index / user2index: "<raw>\t<index>", indices 0..n-1 in order, distinct raw ids.
    const auto read_index = [&](const std::string& ext, char kind, int64_t& n) {
        const auto lines = text_lines(read_bytes(domain_file(o, name, ext)));
        std::set<std::string> raws;
        for (size_t i = 0; i < lines.size(); ++i) {
            const auto cols = split_strings(lines[i], '\t');
            ASSERT_EQ(cols.size(), 2u) << ext << ":" << i + 1;
            EXPECT_EQ(to_int(cols[1]), int64_t(i)) << ext << ":" << i + 1;
            EXPECT_EQ(cols[0].rfind(did + kind, 0), 0u) << cols[0];
            EXPECT_TRUE(raws.insert(cols[0]).second) << "repeated raw id " << cols[0];
        }
        n = int64_t(lines.size());
    };
    ASSERT_NO_FATAL_FAILURE(read_index("item2index", 'i', out.n_items));
    ASSERT_NO_FATAL_FAILURE(read_index("user2index", 'u', out.n_users));
    ASSERT_GT(out.n_items, 0);
    ASSERT_GT(out.n_users, 0);

    // .text: header, then one row per item with exactly one tab, joined through item2index.
    {
        const auto items = text_lines(read_bytes(domain_file(o, name, "item2index")));
        const auto lines = text_lines(read_bytes(domain_file(o, name, "text")));
        ASSERT_EQ(lines.size(), size_t(out.n_items) + 1);
        EXPECT_EQ(lines[0], "item_id:token\ttext:token_seq");
        std::map<std::string, std::string> by_raw;
        for (size_t i = 1; i < lines.size(); ++i) {
            const auto cols = split_strings(lines[i], '\t');
            ASSERT_EQ(cols.size(), 2u) << "text:" << i + 1;
            EXPECT_FALSE(cols[1].empty()) << "text:" << i + 1;
            EXPECT_TRUE(by_raw.emplace(cols[0], cols[1]).second) << cols[0];
        }
        for (const auto& line : items) {
            const auto raw = split_strings(line, '\t')[0];
            ASSERT_TRUE(by_raw.count(raw)) << raw << " has no text";
            out.texts.push_back(by_raw[raw]);
        }
    }

    // .inter files: header, ids in range, non-empty capped histories.
    struct Row {
        int64_t user;
        std::vector<int64_t> history;
        int64_t target;
    };
    const auto read_inter = [&](const std::string& ext, std::vector<Row>& rows) {
        const auto lines = text_lines(read_bytes(domain_file(o, name, ext)));
        ASSERT_FALSE(lines.empty());
        EXPECT_EQ(lines[0], inter_header);
        for (size_t i = 1; i < lines.size(); ++i) {
            const auto cols = split_strings(lines[i], '\t');
            ASSERT_EQ(cols.size(), 3u) << ext << ":" << i + 1;
            Row r{to_int(cols[0]), {}, to_int(cols[2])};
            for (const auto& tok : split_strings(cols[1], ' ')) r.history.push_back(to_int(tok));
            EXPECT_TRUE(r.user >= 0 && r.user < out.n_users) << ext << ":" << i + 1;
            EXPECT_TRUE(r.target >= 0 && r.target < out.n_items) << ext << ":" << i + 1;
            for (int64_t v : r.history) EXPECT_TRUE(v >= 0 && v < out.n_items) << ext;
            EXPECT_TRUE(!r.history.empty() && int64_t(r.history.size()) <= o.max_history)
                << ext << ":" << i + 1;
            rows.push_back(std::move(r));
        }
    };
    std::vector<Row> train, valid, test;
    ASSERT_NO_FATAL_FAILURE(read_inter("train.inter", train));
    ASSERT_NO_FATAL_FAILURE(read_inter("valid.inter", valid));
    ASSERT_NO_FATAL_FAILURE(read_inter("test.inter", test));
    ASSERT_EQ(valid.size(), size_t(out.n_users));
    ASSERT_EQ(test.size(), size_t(out.n_users));

    // Rebuild: users in index order; a user's train rows are consecutive, targets newest first.
    out.seqs.assign(size_t(out.n_users), {});
    size_t r = 0;
    for (int64_t u = 0; u < out.n_users; ++u) {
        ASSERT_EQ(valid[size_t(u)].user, u);
        ASSERT_EQ(test[size_t(u)].user, u);
        std::vector<int64_t> targets;
        size_t last = r;
        for (; r < train.size() && train[r].user == u; ++r) {
            targets.push_back(train[r].target);
            last = r;
        }
        ASSERT_FALSE(targets.empty()) << "user " << u << " has no train row";
        auto& s = out.seqs[size_t(u)];
        s.push_back(train[last].history.front()); // history of s[1] is exactly s[0]
        s.insert(s.end(), targets.rbegin(), targets.rend());
        s.push_back(valid[size_t(u)].target);
        s.push_back(test[size_t(u)].target);
        // train rows = L - 3 per user
        EXPECT_EQ(int64_t(targets.size()), int64_t(s.size()) - 3);
        // test history = (valid history + valid target), capped to max_history
        auto expect = valid[size_t(u)].history;
        expect.push_back(valid[size_t(u)].target);
        if (int64_t(expect.size()) > o.max_history)
            expect.erase(expect.begin(), expect.end() - o.max_history);
        EXPECT_EQ(test[size_t(u)].history, expect) << "user " << u;
    }
    ASSERT_EQ(r, train.size()) << "train rows out of user order";

    // Feature file: n_items x feature_dim little-endian float32, all finite.
    const std::string feat = read_bytes(domain_file(o, name, o.feature_suffix));
    ASSERT_EQ(feat.size(), size_t(out.n_items * o.feature_dim) * 4);
    out.features.resize(size_t(out.n_items * o.feature_dim));
    for (size_t i = 0; i < out.features.size(); ++i) {
        const auto* b = reinterpret_cast<const unsigned char*>(feat.data()) + 4 * i;
        const uint32_t bits =
            uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
        std::memcpy(&out.features[i], &bits, 4);
        ASSERT_TRUE(std::isfinite(out.features[i])) << "feature " << i;
    }
}

double cosine(const float* a, const float* b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t j = 0; j < n; ++j) {
        ab += double(a[j]) * b[j];
        aa += double(a[j]) * a[j];
        bb += double(b[j]) * b[j];
    }
    return ab / std::sqrt(aa * bb);
}

TEST(Synth, SameOptionsGiveIdenticalBytesOnAnyThreadCount) {
    TempDir dir;
    const auto o = small_options(dir.str("a"));
    write_synthetic_dataset(o);
    const auto first = snapshot(o.output);
    EXPECT_EQ(first.size(), size_t(o.n_domains) * 7 + 1); // 7 files per domain + synth.yaml
    write_synthetic_dataset(o);
    EXPECT_EQ(snapshot(o.output), first); // also: no temp files left behind

    // A single worker thread writes the same domain files (synth.yaml names its own folder).
    auto serial = o;
    serial.output = dir.str("b");
    {
        tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
        write_synthetic_dataset(serial);
    }
    auto second = snapshot(serial.output);
    ASSERT_EQ(second.size(), first.size());
    for (const auto& [path, bytes] : first) {
        if (path != "synth.yaml") {
            EXPECT_TRUE(second[path] == bytes) << path;
        }
    }
}

TEST(Synth, DifferentSeedChangesEveryDomain) {
    TempDir dir;
    auto o = small_options(dir.str("a"));
    auto p = o;
    p.output = dir.str("b");
    p.seed = o.seed + 1;
    const auto so = write_synthetic_dataset(o);
    const auto sp = write_synthetic_dataset(p);
    for (const auto& d : so.domains) {
        EXPECT_NE(read_bytes(domain_file(o, d.name, "train.inter")),
                  read_bytes(domain_file(p, d.name, "train.inter")))
            << d.name;
        EXPECT_NE(read_bytes(domain_file(o, d.name, o.feature_suffix)),
                  read_bytes(domain_file(p, d.name, p.feature_suffix)))
            << d.name;
        EXPECT_NE(read_bytes(domain_file(o, d.name, "text")),
                  read_bytes(domain_file(p, d.name, "text")))
            << d.name;
    }
}

TEST(Synth, FilesParseBackAndFollowLeaveOneOut) {
    TempDir dir;
    const auto o = small_options(dir.str("out"));
    const auto summary = write_synthetic_dataset(o);
    ASSERT_EQ(summary.domains.size(), size_t(o.n_domains));
    bool some_history_capped = false;
    for (int64_t d = 0; d < o.n_domains; ++d) {
        const auto& sum = summary.domains[size_t(d)];
        SCOPED_TRACE(sum.name);
        EXPECT_TRUE(fs::is_directory(domain_dir(o, sum.name)));
        ParsedDomain p;
        ASSERT_NO_FATAL_FAILURE(parse_domain(o, sum.name, d, p));
        EXPECT_EQ(p.n_users, sum.n_users);
        EXPECT_EQ(p.n_items, sum.n_items);
        int64_t interactions = 0, train_rows = 0;
        for (const auto& s : p.seqs) {
            const int64_t L = int64_t(s.size());
            EXPECT_GE(L, o.seq_len_min);
            EXPECT_LE(L, o.seq_len_max);
            for (size_t j = 1; j < s.size(); ++j) EXPECT_NE(s[j], s[j - 1]) << "immediate repeat";
            interactions += L;
            train_rows += L - 3;
            some_history_capped |= L - 1 > o.max_history;
        }
        EXPECT_EQ(interactions, sum.n_interactions);
        EXPECT_EQ(train_rows, sum.n_train_rows);
        EXPECT_DOUBLE_EQ(sum.mean_seq_len, double(interactions) / double(p.n_users));
        // Round trip: rewriting the rebuilt sequences with the README rule gives the same bytes.
        std::string train, valid, test;
        write_split(p.seqs, o.max_history, train, valid, test);
        EXPECT_TRUE(train == read_bytes(domain_file(o, sum.name, "train.inter")));
        EXPECT_TRUE(valid == read_bytes(domain_file(o, sum.name, "valid.inter")));
        EXPECT_TRUE(test == read_bytes(domain_file(o, sum.name, "test.inter")));
        EXPECT_EQ(synthetic_item_topics(o, d).size(), size_t(p.n_items));
    }
    EXPECT_TRUE(some_history_capped) << "max_history cap was not exercised";
}

TEST(Synth, DomainsDifferInSizeAndSparsity) {
    TempDir dir;
    SynthOptions o; // default sizes: users 200..2000, items 100..1000, mean length 6..14
    o.output = dir.str("out");
    o.n_domains = 8;
    const auto summary = write_synthetic_dataset(o);
    std::set<int64_t> users, items;
    double lo = 1e9, hi = 0;
    for (const auto& d : summary.domains) {
        EXPECT_GE(d.n_users, o.users_min);
        EXPECT_LE(d.n_users, o.users_max);
        EXPECT_GE(d.n_items, o.items_min);
        EXPECT_LE(d.n_items, o.items_max);
        EXPECT_GE(d.mean_seq_len, double(o.seq_len_min));
        EXPECT_LE(d.mean_seq_len, o.seq_len_mean_max + 1.0);
        users.insert(d.n_users);
        items.insert(d.n_items);
        lo = std::min(lo, d.mean_seq_len);
        hi = std::max(hi, d.mean_seq_len);
    }
    EXPECT_GE(users.size(), 6u);
    EXPECT_GE(items.size(), 6u);
    EXPECT_GT(hi - lo, 2.0) << "domains should differ in sparsity";
}

TEST(Synth, SixtyFourSmallDomainsAndConfigFragment) {
    TempDir dir;
    SynthOptions o;
    o.output = dir.str("out");
    o.n_domains = 64;
    o.users_min = 10;
    o.users_max = 20;
    o.items_min = 10;
    o.items_max = 20;
    o.feature_dim = 8;
    o.feature_suffix = "feat8";
    const auto summary = write_synthetic_dataset(o);
    ASSERT_EQ(summary.domains.size(), 64u);
    std::string names;
    for (int d = 0; d < 64; ++d) {
        char name[16];
        std::snprintf(name, sizeof name, "synth%03d", d);
        EXPECT_EQ(summary.domains[size_t(d)].name, name);
        EXPECT_EQ(fs::file_size(domain_file(o, name, "feat8")),
                  uintmax_t(summary.domains[size_t(d)].n_items * 8 * 4));
        names += std::string(d ? ", " : "") + "\"" + name + "\"";
    }
    EXPECT_EQ(summary.config_fragment_path, (fs::path(o.output) / "synth.yaml").string());
    EXPECT_EQ(read_bytes(summary.config_fragment_path),
              "data:\n  path: \"" + o.output + "\"\n  domains: [" + names +
                  "]\n  features: \"file\"\n  feature_suffix: \"feat8\"\nplm_size: 8\n");
}

TEST(Synth, FeaturesAndTextCarryTopicAcrossDomains) {
    TempDir dir;
    SynthOptions o;
    o.output = dir.str("out");
    o.n_domains = 6;
    o.users_min = 50;
    o.users_max = 100;
    const auto summary = write_synthetic_dataset(o);
    const int64_t F = o.feature_dim;
    std::vector<ParsedDomain> doms(size_t(o.n_domains));
    std::vector<std::vector<int32_t>> topics;
    for (int64_t d = 0; d < o.n_domains; ++d) {
        ASSERT_NO_FATAL_FAILURE(
            parse_domain(o, summary.domains[size_t(d)].name, d, doms[size_t(d)]));
        topics.push_back(synthetic_item_topics(o, d));
        ASSERT_EQ(topics.back().size(), size_t(doms[size_t(d)].n_items));
        std::set<int32_t> covered(topics.back().begin(), topics.back().end());
        EXPECT_LE(int64_t(covered.size()), o.topics_per_domain);
        for (int32_t t : covered) EXPECT_TRUE(t >= 0 && t < o.n_topics);
    }
    // Mean cosine over all item pairs from different domains, split by same / other topic.
    double same = 0, other = 0;
    int64_t n_same = 0, n_other = 0;
    for (size_t a = 0; a < doms.size(); ++a)
        for (size_t b = a + 1; b < doms.size(); ++b)
            for (int64_t i = 0; i < doms[a].n_items; ++i)
                for (int64_t j = 0; j < doms[b].n_items; ++j) {
                    const double c =
                        cosine(doms[a].features.data() + i * F, doms[b].features.data() + j * F, F);
                    if (topics[a][size_t(i)] == topics[b][size_t(j)]) {
                        same += c;
                        ++n_same;
                    } else {
                        other += c;
                        ++n_other;
                    }
                }
    ASSERT_GT(n_same, 1000) << "domains should share topics";
    same /= double(n_same);
    other /= double(n_other);
    EXPECT_GT(same, 0.5);
    EXPECT_LT(std::abs(other), 0.15);
    EXPECT_GT(same - other, 0.4);

    // Text: the category sentence (minus the domain's root word) names the topic, the same
    // way in every domain, and different topics get different category words.
    std::map<int32_t, std::set<std::string>> category_of;
    for (size_t d = 0; d < doms.size(); ++d)
        for (size_t i = 0; i < doms[d].texts.size(); ++i) {
            const auto sentences = split_strings(doms[d].texts[i], '.');
            ASSERT_GE(sentences.size(), 3u) << doms[d].texts[i];
            const auto words = split_strings(sentences[1], ' '); // "", root, category words...
            ASSERT_GE(words.size(), 3u) << doms[d].texts[i];
            std::string cat;
            for (size_t w = 2; w < words.size(); ++w) cat += words[w] + " ";
            category_of[topics[d][i]].insert(cat);
        }
    std::set<std::string> all;
    for (const auto& [t, cats] : category_of) {
        EXPECT_EQ(cats.size(), 1u) << "topic " << t;
        all.insert(cats.begin(), cats.end());
    }
    EXPECT_EQ(all.size(), category_of.size());
}

TEST(Synth, SequencesFollowTopics) {
    TempDir dir;
    auto o = small_options(dir.str("out"));
    const auto summary = write_synthetic_dataset(o);
    int64_t same = 0, pairs = 0;
    for (int64_t d = 0; d < o.n_domains; ++d) {
        ParsedDomain p;
        ASSERT_NO_FATAL_FAILURE(parse_domain(o, summary.domains[size_t(d)].name, d, p));
        const auto topic = synthetic_item_topics(o, d);
        for (const auto& s : p.seqs)
            for (size_t j = 1; j < s.size(); ++j) {
                same += topic[size_t(s[j])] == topic[size_t(s[j - 1])];
                ++pairs;
            }
    }
    // topic_stay = 0.85 (switching to the same topic is impossible), so ~85% of steps.
    EXPECT_NEAR(double(same) / double(pairs), o.topic_stay, 0.05);

    // With topic_stay = 1 a user never leaves the starting topic, unless that topic has a
    // single item (it cannot follow itself, so the user must move on).
    auto stay = small_options(dir.str("stay"));
    stay.topic_stay = 1.0;
    const auto s2 = write_synthetic_dataset(stay);
    int64_t checked = 0;
    for (int64_t d = 0; d < stay.n_domains; ++d) {
        ParsedDomain p;
        ASSERT_NO_FATAL_FAILURE(parse_domain(stay, s2.domains[size_t(d)].name, d, p));
        const auto topic = synthetic_item_topics(stay, d);
        std::map<int32_t, int64_t> topic_size;
        for (int32_t t : topic) ++topic_size[t];
        for (const auto& s : p.seqs) {
            if (topic_size[topic[size_t(s[0])]] < 2) continue;
            for (size_t j = 1; j < s.size(); ++j)
                ASSERT_EQ(topic[size_t(s[j])], topic[size_t(s[0])]);
            ++checked;
        }
    }
    EXPECT_GT(checked, 100);
}

TEST(Synth, ExtremeSmallSettingsStillValid) {
    TempDir dir;
    SynthOptions o;
    o.output = dir.str("out");
    o.n_domains = 2;
    o.users_min = o.users_max = 5;
    o.items_min = o.items_max = 2; // fewer items than topics_per_domain: two one-item topics
    o.seq_len_min = o.seq_len_max = 4;
    o.seq_len_mean_min = o.seq_len_mean_max = 4;
    o.latent_dim = 1; // trajectory directions do not fit; must still be finite
    o.feature_dim = 3;
    o.max_history = 1;
    const auto summary = write_synthetic_dataset(o);
    for (int64_t d = 0; d < o.n_domains; ++d) {
        ParsedDomain p;
        ASSERT_NO_FATAL_FAILURE(parse_domain(o, summary.domains[size_t(d)].name, d, p));
        for (const auto& s : p.seqs) {
            ASSERT_EQ(s.size(), 4u);
            for (size_t j = 1; j < s.size(); ++j) EXPECT_NE(s[j], s[j - 1]);
        }
    }
}

TEST(Synth, RejectsBadOptions) {
    TempDir dir;
    const auto base = small_options(dir.str("out"));
    const auto rejects = [&](auto change, const std::string& needle) {
        auto o = base;
        change(o);
        try {
            write_synthetic_dataset(o);
            ADD_FAILURE() << "accepted options; expected an error about " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    rejects([](SynthOptions& o) { o.n_domains = 0; }, "n_domains");
    rejects([](SynthOptions& o) { o.items_min = 1; }, "items_min");
    rejects([](SynthOptions& o) { o.users_min = 100, o.users_max = 50; }, "users_max");
    rejects([](SynthOptions& o) { o.seq_len_min = 3; }, "seq_len_min");
    rejects([](SynthOptions& o) { o.seq_len_max = 3; }, "seq_len_max");
    rejects([](SynthOptions& o) { o.topics_per_domain = o.n_topics + 1; }, "topics_per_domain");
    rejects([](SynthOptions& o) { o.topic_stay = 1.5; }, "topic_stay");
    rejects([](SynthOptions& o) { o.feature_dim = 0; }, "feature_dim");
    rejects([](SynthOptions& o) { o.feature_suffix = "a/b"; }, "feature_suffix");
    EXPECT_FALSE(fs::exists(base.output)) << "nothing may be written for invalid options";
    EXPECT_THROW(synthetic_item_topics(base, base.n_domains), Error);
}

} // namespace
} // namespace pfcr
