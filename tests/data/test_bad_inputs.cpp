// Bad inputs of the data-preparation stage: every malformed atomic file, feature file and config
// value must end in ONE pfcr::Error whose message names the file and line (or the config key and
// where it was set), and a failed `prepare` must leave no partial prepared.h5 and must not touch
// an existing one. Each test writes a tiny valid two-domain data root, breaks one thing and runs
// the real code. The happy path and the file contents are tested elsewhere (test_data).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "data/atomic_files.hpp"
#include "data/prepare.hpp"
#include "io/config.hpp"
#include "options/options.hpp"
#include "sim/commands.hpp"

namespace pfcr {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string inter_header = "user_id:token\titem_id_list:token_seq\titem_id:token";

// ---------------------------------------------------------------------------------------------
// File helpers

std::string read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream os;
    os << f.rdbuf();
    return os.str();
}

void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << bytes;
    ASSERT_TRUE(bool(f)) << "cannot write " << p;
}

// Lines without their LF; the file is expected to end in LF.
std::vector<std::string> read_lines(const fs::path& p) {
    std::vector<std::string> lines;
    std::istringstream in(read_bytes(p));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
    std::string bytes;
    for (const auto& l : lines) bytes += l + "\n";
    write_bytes(p, bytes);
}

// Replaces 1-based line `line_no` of a text file.
void replace_line(const fs::path& p, size_t line_no, const std::string& text) {
    auto lines = read_lines(p);
    ASSERT_LE(line_no, lines.size()) << p;
    lines[line_no - 1] = text;
    write_lines(p, lines);
}

// A path as a YAML double-quoted scalar (temp paths hold no quotes or backslashes).
std::string yaml_quoted(const fs::path& p) {
    std::string s = "\"";
    s += p.string();
    s += '"';
    return s;
}

// Raw float32 features (n x dim), values in [-1, 1); deterministic in `seed`.
void write_features(const fs::path& p, int64_t n, int64_t dim, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> v(size_t(n * dim));
    for (auto& x : v) x = float(rng() % 2000) / 1000.0f - 1.0f;
    write_bytes(p, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

void poke_float(const fs::path& p, int64_t index, float value) {
    std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(std::streamoff(index * int64_t(sizeof(float))));
    f.write(reinterpret_cast<const char*>(&value), sizeof value);
    ASSERT_TRUE(bool(f)) << "cannot patch " << p;
}

// ---------------------------------------------------------------------------------------------
// A tiny valid domain, written with the leave-one-out rule of data/README.md: user u has
// a sequence of 5..8 items; the items are handed out round-robin first so every item occurs.

std::string raw_item_id(const std::string& domain, int64_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "B%c%08lld", domain[0], static_cast<long long>(i));
    return buf;
}

void write_tiny_domain(const fs::path& root, const std::string& name, int n_items, int n_users,
                       uint32_t seed) {
    const fs::path dir = root / name;
    fs::create_directories(dir);
    std::mt19937 rng(seed);
    int next_new = 0;
    std::vector<std::vector<int>> seqs(static_cast<size_t>(n_users));
    for (auto& s : seqs) {
        const int len = 5 + int(rng() % 4);
        for (int j = 0; j < len; ++j)
            s.push_back(next_new < n_items ? next_new++ : int(rng() % uint32_t(n_items)));
    }
    ASSERT_EQ(next_new, n_items) << "too few interactions to use every item";

    const auto row = [](std::string& out, size_t user, const std::vector<int>& s, size_t t) {
        out += std::to_string(user);
        out += '\t';
        const size_t first = t > 50 ? t - 50 : 0;
        for (size_t j = first; j < t; ++j) {
            if (j > first) out += ' ';
            out += std::to_string(s[j]);
        }
        out += '\t';
        out += std::to_string(s[t]);
        out += '\n';
    };
    std::string train = inter_header + "\n", valid = train, test = train;
    for (size_t u = 0; u < seqs.size(); ++u) {
        const auto& s = seqs[u];
        const size_t L = s.size();
        for (size_t k = 1; k + 3 <= L; ++k) row(train, u, s, L - 2 - k); // newest target first
        row(valid, u, s, L - 2);
        row(test, u, s, L - 1);
    }
    write_bytes(dir / (name + ".train.inter"), train);
    write_bytes(dir / (name + ".valid.inter"), valid);
    write_bytes(dir / (name + ".test.inter"), test);

    std::string items, users, text = "item_id:token\ttext:token_seq\n";
    for (int i = 0; i < n_items; ++i)
        items += raw_item_id(name, i) + "\t" + std::to_string(i) + "\n";
    for (int u = 0; u < n_users; ++u) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "U%c%09d", name[0], u);
        users += std::string(buf) + "\t" + std::to_string(u) + "\n";
    }
    static const char* words[] = {"glue",   "tape",  "sensor", "pipette", "scale",   "glove",
                                  "beaker", "drill", "pen",    "folder",  "stapler", "lamp"};
    // Reverse index order: the reader must join .text rows through item2index.
    for (int i = n_items - 1; i >= 0; --i)
        text += raw_item_id(name, i) + "\tItem " + std::to_string(i) + " " + words[rng() % 12] +
                " " + words[rng() % 12] + ". " + name + " Supplies. Brand" + std::to_string(i % 7) +
                ". \n";
    write_bytes(dir / (name + ".item2index"), items);
    write_bytes(dir / (name + ".user2index"), users);
    write_bytes(dir / (name + ".text"), text);
}

// ---------------------------------------------------------------------------------------------
// Fixture: <tmp>/data/{Sci,Office}/ (300 items / 60 users and 200 items / 40 users) and an
// output folder <tmp>/out, all removed after the test.

constexpr int sci_items = 300, sci_users = 60, office_items = 200, office_users = 40;

class BadInputs : public ::testing::Test {
protected:
    void SetUp() override {
        static std::atomic<int> counter{0};
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        tmp_ = fs::temp_directory_path() / ("pfcr_test_bad_inputs_" + std::to_string(::getpid()) +
                                            "_" + info->name() + "_" + std::to_string(counter++));
        fs::remove_all(tmp_);
        fs::create_directories(tmp_);
        write_tiny_domain(data_dir(), "Sci", sci_items, sci_users, 11);
        write_tiny_domain(data_dir(), "Office", office_items, office_users, 22);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(tmp_, ec);
    }

    fs::path data_dir() const { return tmp_ / "data"; }
    fs::path out_dir() const { return tmp_ / "out"; }
    // <data>/<D>/<D>.<suffix>, as a string because messages are compared as text.
    std::string file(const std::string& domain, const std::string& suffix) const {
        return (data_dir() / domain / (domain + "." + suffix)).string();
    }
    // "<path>:<line>: ", the prefix every line-level message must start its context with.
    std::string at(const std::string& domain, const std::string& suffix, size_t line) const {
        return file(domain, suffix) + ":" + std::to_string(line) + ": ";
    }

    // Small quantizer and featurizer so that the passing runs take well under a second. Line 7
    // is data.domains (checked by the empty-domains test).
    std::string base_yaml(const std::string& domains = "[Sci, Office]") const {
        std::string y;
        y += "output_dir: " + yaml_quoted(out_dir()) + "\n"; // line 1
        y += "code_dim: 4\ncode_cap: 16\nplm_size: 32\n";    // lines 2-4
        y += "data:\n";                                      // line 5
        y += "  path: " + yaml_quoted(data_dir()) + "\n";    // line 6
        y += "  domains: " + domains + "\n";                 // line 7
        y += "  features: text\n  text_hash_buckets: 1024\n  opq_iterations: 2\n";
        y += "  quantizer_iterations: 5\n  quantizer_threads: 1\n";
        return y;
    }
    Config config(const std::string& domains = "[Sci, Office]") const {
        return Config::from_yaml_text(base_yaml(domains), "test.yaml");
    }

    // Feature files for both domains, so data.features = file / auto can succeed.
    void write_both_feature_files(int64_t dim = 32) const {
        write_features(file("Sci", "feat1CLS"), sci_items, dim, 1);
        write_features(file("Office", "feat1CLS"), office_items, dim, 2);
    }

    fs::path tmp_;
    Logger log_{0, true};
};

// Runs fn, which must throw exactly one pfcr::Error, and returns its message. Anything else
// (no throw, another exception type, a multi-line message) fails the test.
std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_THAT(msg, Not(HasSubstr("\n"))) << "an error is one line";
        return msg;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected pfcr::Error, got another exception: " << e.what();
        return e.what();
    }
    ADD_FAILURE() << "expected pfcr::Error, nothing was thrown";
    return "";
}

std::string prepare_error(const Config& cfg, const Logger& log) {
    return error_of([&] { prepare_dataset(resolve_options(cfg).prepare, log); });
}

// Files in `dir` whose name marks them as an unfinished atomic write.
std::vector<std::string> temp_siblings(const fs::path& dir) {
    std::vector<std::string> found;
    if (!fs::exists(dir)) return found;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp.") != std::string::npos)
            found.push_back(e.path().filename().string());
    return found;
}

// ---------------------------------------------------------------------------------------------
// The fixture itself is valid; otherwise every test below would pass for the wrong reason.

TEST_F(BadInputs, FixtureDomainsPrepareCleanly) {
    const PreparedData d = prepare_dataset(resolve_options(config()).prepare, log_);
    ASSERT_EQ(d.domains.size(), 2u);
    EXPECT_EQ(d.domains[0].n_items, sci_items);
    EXPECT_EQ(d.domains[0].n_users, sci_users);
    EXPECT_EQ(d.domains[1].n_items, office_items);
    EXPECT_EQ(d.domains[0].valid.rows(), size_t(sci_users));
    EXPECT_EQ(d.domains[1].test.rows(), size_t(office_users));
}

// ---------------------------------------------------------------------------------------------
// .inter files

TEST_F(BadInputs, MalformedInterHeader) {
    replace_line(file("Sci", "train.inter"), 1, "user_id\titem_id_list\titem_id");
    const auto msg = prepare_error(config(), log_);
    EXPECT_THAT(msg, HasSubstr(at("Sci", "train.inter", 1) + "malformed header"));
    EXPECT_THAT(msg, HasSubstr("found 'user_id<TAB>item_id_list<TAB>item_id'"));
}

// A byte-order mark (an editor's "UTF-8 with BOM") is invisible in a terminal: the message
// shows it, so the header does not look identical to the expected one.
TEST_F(BadInputs, HeaderWithByteOrderMarkShowsIt) {
    replace_line(file("Sci", "train.inter"), 1,
                 "\xEF\xBB\xBFuser_id:token\titem_id_list:token_seq\titem_id:token");
    EXPECT_THAT(
        prepare_error(config(), log_),
        HasSubstr("found '<BOM>user_id:token<TAB>item_id_list:token_seq<TAB>item_id:token'"));
}

TEST_F(BadInputs, InterFileWithoutAnyLineIsEmpty) {
    write_bytes(file("Office", "valid.inter"), "");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Office", "valid.inter") + ": empty file (no header)"));
}

TEST_F(BadInputs, WrongColumnCount) {
    replace_line(file("Sci", "valid.inter"), 3, "1\t4 5 6");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "valid.inter", 3) +
                          "expected 3 tab-separated columns "
                          "(user_id, item_id_list, item_id), found 2"));
}

TEST_F(BadInputs, ExtraTrailingTabIsAColumnTooMany) {
    replace_line(file("Sci", "test.inter"), 2, read_lines(file("Sci", "test.inter"))[1] + "\t");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "test.inter", 2) + "expected 3 tab-separated columns"));
}

TEST_F(BadInputs, NonIntegerUserId) {
    replace_line(file("Sci", "train.inter"), 2, "u0\t0 1\t2");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "train.inter", 2) + "user id 'u0' is not an integer"));
}

TEST_F(BadInputs, NonIntegerItemIdInHistory) {
    replace_line(file("Sci", "train.inter"), 4, "0\t0 1x 2\t3");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "train.inter", 4) + "item id '1x' is not an integer"));
}

TEST_F(BadInputs, NonIntegerTarget) {
    replace_line(file("Office", "test.inter"), 5, "3\t1 2 3\t7.5");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Office", "test.inter", 5) + "item id '7.5' is not an integer"));
}

TEST_F(BadInputs, ItemIdNotInItem2index) {
    // Indices are 0..n-1, so n is the first id past the end.
    replace_line(file("Sci", "valid.inter"), 6, "4\t1 2 " + std::to_string(sci_items) + "\t5");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "valid.inter", 6) + "item " + std::to_string(sci_items) +
                          " not in item2index (300 items)"));
}

TEST_F(BadInputs, NegativeTargetNotInItem2index) {
    replace_line(file("Sci", "test.inter"), 2, "0\t1 2\t-1");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "test.inter", 2) + "item -1 not in item2index"));
}

TEST_F(BadInputs, UserIdNotInUser2index) {
    replace_line(file("Office", "train.inter"), 3, std::to_string(office_users) + "\t1 2\t3");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Office", "train.inter", 3) + "user 40 not in user2index (40 users)"));
}

TEST_F(BadInputs, EmptyHistory) {
    replace_line(file("Sci", "train.inter"), 3, "0\t\t2");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "train.inter", 3) + "empty history"));
}

TEST_F(BadInputs, HistoryOfOnlySpacesIsEmpty) {
    replace_line(file("Sci", "valid.inter"), 2, "0\t   \t2");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "valid.inter", 2) + "empty history"));
}

TEST_F(BadInputs, HistoryLongerThanMaxItemListLength) {
    // The first row (train is read first) whose history has more than 3 items.
    const auto lines = read_lines(file("Sci", "train.inter"));
    size_t line_no = 0, len = 0;
    for (size_t i = 1; i < lines.size() && !line_no; ++i) {
        len = 0;
        for (const auto& tok : split(split(lines[i], '\t')[1], ' ')) len += !tok.empty();
        if (len > 3) line_no = i + 1;
    }
    ASSERT_GT(line_no, 0u);
    Config cfg = config();
    cfg.set("MAX_ITEM_LIST_LENGTH", "3", "--set MAX_ITEM_LIST_LENGTH=3");
    EXPECT_THAT(prepare_error(cfg, log_),
                HasSubstr(at("Sci", "train.inter", line_no) + "history of " + std::to_string(len) +
                          " items is longer than MAX_ITEM_LIST_LENGTH = 3"));
}

TEST_F(BadInputs, InterFileWithOnlyAHeaderIsAnEmptyDomain) {
    write_bytes(file("Office", "train.inter"), inter_header + "\n");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Office", "train.inter") + ": no rows (empty domain)"));
}

// ---------------------------------------------------------------------------------------------
// item2index / user2index

TEST_F(BadInputs, EmptyItem2indexIsAnEmptyDomain) {
    write_bytes(file("Sci", "item2index"), "");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Sci", "item2index") + ": no items (empty domain)"));
}

TEST_F(BadInputs, DuplicateRawItemId) {
    replace_line(file("Sci", "item2index"), 5, raw_item_id("Sci", 1) + "\t4");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "item2index", 5) + "raw item id '" + raw_item_id("Sci", 1) +
                          "' repeats line 2"));
}

TEST_F(BadInputs, DuplicateIndexInItem2index) {
    replace_line(file("Sci", "item2index"), 5, raw_item_id("Sci", 4) + "\t3");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "item2index", 5) + "index 3 repeats line 4"));
}

TEST_F(BadInputs, NonContiguousIndexInItem2index) {
    // The last index is moved one past the end, so index n-1 is missing. No single line is at
    // fault, so the message names the file and the missing index.
    replace_line(file("Sci", "item2index"), sci_items,
                 raw_item_id("Sci", sci_items - 1) + "\t" + std::to_string(sci_items));
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Sci", "item2index") +
                          ": indices must be contiguous from 0, but index 299 is missing "
                          "(largest is 300)"));
}

TEST_F(BadInputs, NonIntegerIndexInUser2index) {
    replace_line(file("Office", "user2index"), 7, "UO000000006\tsix");
    EXPECT_THAT(
        prepare_error(config(), log_),
        HasSubstr(at("Office", "user2index", 7) + "index 'six' is not a non-negative integer"));
}

TEST_F(BadInputs, DuplicateRawUserId) {
    replace_line(file("Office", "user2index"), 3, "UO000000000\t2");
    EXPECT_THAT(
        prepare_error(config(), log_),
        HasSubstr(at("Office", "user2index", 3) + "raw user id 'UO000000000' repeats line 1"));
}

TEST_F(BadInputs, Item2indexRowWithOneColumn) {
    replace_line(file("Sci", "item2index"), 2, raw_item_id("Sci", 1));
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "item2index", 2) + "expected 2 tab-separated columns"));
}

// ---------------------------------------------------------------------------------------------
// Missing files and folders

TEST_F(BadInputs, MissingValidInter) {
    fs::remove(file("Office", "valid.inter"));
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Office", "valid.inter") + ": file not found"));
}

TEST_F(BadInputs, MissingDomainFolder) {
    const auto msg = prepare_error(config("[Sci, Arts]"), log_);
    EXPECT_THAT(msg, HasSubstr((data_dir() / "Arts").string() + ": domain folder not found"));
    EXPECT_THAT(msg, HasSubstr("domain 'Arts'"));
}

TEST_F(BadInputs, MissingDataPath) {
    Config cfg = config();
    cfg.set("data.path", yaml_quoted(tmp_ / "nowhere"), "--set data.path");
    EXPECT_THAT(prepare_error(cfg, log_),
                HasSubstr((tmp_ / "nowhere" / "Sci").string() + ": domain folder not found"));
}

TEST_F(BadInputs, MissingTextWhenFeaturesAreText) {
    fs::remove(file("Office", "text"));
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Office", "text") + ": file not found"));
}

// ---------------------------------------------------------------------------------------------
// .text

TEST_F(BadInputs, MalformedTextHeader) {
    replace_line(file("Sci", "text"), 1, "id\ttext");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "text", 1) + "malformed header"));
}

TEST_F(BadInputs, TextRowForUnknownItem) {
    replace_line(file("Sci", "text"), 4, "B0NOTANITEM\tSome text. ");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "text", 4) + "item 'B0NOTANITEM' not in item2index"));
}

TEST_F(BadInputs, ItemWithoutTextRow) {
    // Rows are written in reverse index order, so line 2 holds the last item.
    auto lines = read_lines(file("Sci", "text"));
    lines.erase(lines.begin() + 1);
    write_lines(file("Sci", "text"), lines);
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(file("Sci", "text") + ": item '" + raw_item_id("Sci", sci_items - 1) +
                          "' (index 299) has no text row"));
}

TEST_F(BadInputs, ItemWithTwoTextRows) {
    auto lines = read_lines(file("Sci", "text"));
    lines.push_back(lines[1]);
    write_lines(file("Sci", "text"), lines);
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Sci", "text", lines.size()) + "item '" +
                          raw_item_id("Sci", sci_items - 1) + "' already has a text at line 2"));
}

TEST_F(BadInputs, TextRowWithoutTab) {
    replace_line(file("Office", "text"), 3, "no tab on this line");
    EXPECT_THAT(prepare_error(config(), log_),
                HasSubstr(at("Office", "text", 3) + "expected 2 tab-separated columns"));
}

// ---------------------------------------------------------------------------------------------
// Feature files

TEST_F(BadInputs, FeatureFileOfTheWrongSizeNamesExpectedBytes) {
    write_both_feature_files(16); // half of plm_size = 32
    Config cfg = config();
    cfg.set("data.features", "file", "--set data.features=file");
    const auto msg = prepare_error(cfg, log_);
    EXPECT_THAT(msg, HasSubstr(file("Sci", "feat1CLS") + ": size is 19200 bytes"));
    EXPECT_THAT(msg, HasSubstr("expected n_items x plm_size x 4 = 300 x 32 x 4 = 38400 bytes"));
    EXPECT_THAT(msg, HasSubstr("it would fit plm_size = 16"));
}

TEST_F(BadInputs, TruncatedFeatureFile) {
    write_both_feature_files();
    fs::resize_file(file("Office", "feat1CLS"), office_items * 32 * 4 - 3);
    Config cfg = config();
    cfg.set("data.features", "file", "--set data.features=file");
    const auto msg = prepare_error(cfg, log_);
    EXPECT_THAT(msg, HasSubstr(file("Office", "feat1CLS") + ": size is 25597 bytes"));
    EXPECT_THAT(msg, HasSubstr("= 25600 bytes"));
    EXPECT_THAT(msg, Not(HasSubstr("it would fit")));
}

TEST_F(BadInputs, RealScientificMMFeaturesWithWrongPlmSize) {
    // The shipped 512-d CLIP file read with the UniSRec default plm_size = 768.
    const fs::path src = fs::path(PFCR_SOURCE_DIR) / "tests" / "fixtures" / "ScientificMM";
    fs::copy(src, data_dir() / "ScientificMM");
    Config cfg = config("[ScientificMM]");
    cfg.set("plm_size", "768", "--set plm_size=768");
    cfg.set("data.features", "auto", "--set data.features=auto");
    const auto msg = prepare_error(cfg, log_);
    EXPECT_THAT(msg, HasSubstr(file("ScientificMM", "feat1CLS") + ": size is 3246080 bytes"));
    EXPECT_THAT(msg, HasSubstr("1585 x 768 x 4 = 4869120 bytes"));
    EXPECT_THAT(msg, HasSubstr("it would fit plm_size = 512"));
}

TEST_F(BadInputs, MissingFeatureFileWhenFeaturesAreFile) {
    write_features(file("Sci", "feat1CLS"), sci_items, 32, 1);
    Config cfg = config();
    cfg.set("data.features", "file", "--set data.features=file");
    EXPECT_THAT(prepare_error(cfg, log_),
                HasSubstr(file("Office", "feat1CLS") + ": feature file not found"));
}

TEST_F(BadInputs, NaNInFeaturesNamesItemAndDimension) {
    write_both_feature_files();
    poke_float(file("Sci", "feat1CLS"), 7 * 32 + 5, std::numeric_limits<float>::quiet_NaN());
    Config cfg = config();
    cfg.set("data.features", "file", "--set data.features=file");
    const auto msg = prepare_error(cfg, log_);
    EXPECT_THAT(msg, HasSubstr(file("Sci", "feat1CLS") + ": non-finite value"));
    EXPECT_THAT(msg, HasSubstr("nan"));
    EXPECT_THAT(msg, HasSubstr("item 7, dimension 5"));
}

TEST_F(BadInputs, InfInFeaturesNamesItemAndDimension) {
    write_both_feature_files();
    poke_float(file("Office", "feat1CLS"), 199 * 32 + 31, -std::numeric_limits<float>::infinity());
    Config cfg = config();
    cfg.set("data.features", "file", "--set data.features=file");
    const auto msg = prepare_error(cfg, log_);
    EXPECT_THAT(msg, HasSubstr(file("Office", "feat1CLS") + ": non-finite value -inf"));
    EXPECT_THAT(msg, HasSubstr("item 199, dimension 31"));
}

TEST_F(BadInputs, AutoFeaturesWithAFeatureFileInOnlyOneDomain) {
    write_features(file("Office", "feat1CLS"), office_items, 32, 2);
    Config cfg = config();
    cfg.set("data.features", "auto", "--set data.features=auto");
    const auto msg = prepare_error(cfg, log_);
    EXPECT_THAT(msg,
                HasSubstr("data.features = auto: 1 of 2 domains have a .feat1CLS feature file"));
    EXPECT_THAT(msg, HasSubstr("set data.features to 'file' or 'text'"));
}

TEST_F(BadInputs, FeaturePathThatIsAFolder) {
    // Still a pfcr::Error naming the path, not a std::filesystem_error from file_size().
    write_both_feature_files();
    fs::remove(file("Sci", "feat1CLS"));
    fs::create_directory(file("Sci", "feat1CLS"));
    Config cfg = config();
    cfg.set("data.features", "file", "--set data.features=file");
    EXPECT_THAT(prepare_error(cfg, log_), HasSubstr(file("Sci", "feat1CLS") + ": "));
}

TEST_F(BadInputs, TooFewItemsForCodeCap) {
    // Valid files, but 10 items cannot train 16 centroids; the message names the key to change.
    write_tiny_domain(data_dir(), "Tiny", 10, 2, 3);
    const auto msg = prepare_error(config("[Tiny]"), log_);
    EXPECT_THAT(msg, HasSubstr("at least code_cap = 16 items"));
    EXPECT_THAT(msg, HasSubstr("there are 10"));
}

// ---------------------------------------------------------------------------------------------
// Errors from several domains: the first domain in data.domains order wins, every time, although
// the domains are read in parallel.

TEST_F(BadInputs, FirstBrokenDomainInListOrderIsReported) {
    replace_line(file("Sci", "test.inter"), 9, "x\t1\t2");
    replace_line(file("Office", "train.inter"), 2, "y\t1\t2");
    for (int rep = 0; rep < 5; ++rep) {
        EXPECT_THAT(prepare_error(config("[Office, Sci]"), log_),
                    HasSubstr(at("Office", "train.inter", 2)));
        EXPECT_THAT(prepare_error(config("[Sci, Office]"), log_),
                    HasSubstr(at("Sci", "test.inter", 9)));
    }
}

// ---------------------------------------------------------------------------------------------
// data.domains

TEST_F(BadInputs, EmptyDomainList) {
    EXPECT_THAT(prepare_error(config("[]"), log_),
                HasSubstr("data.domains (test.yaml:7) is empty"));
    EXPECT_THAT(prepare_error(Config(), log_), HasSubstr("data.domains (default) is empty"));
}

TEST_F(BadInputs, DuplicateDomain) {
    EXPECT_THAT(prepare_error(config("[Sci, Office, Sci]"), log_),
                HasSubstr("data.domains (test.yaml:7) lists domain 'Sci' twice"));
}

TEST_F(BadInputs, EmptyDomainNameIsNamedAsAConfigError) {
    // "" would resolve to data.path itself and fail on '<data.path>/.item2index'; the message
    // must point at the config value instead.
    const auto msg = prepare_error(config("[Sci, \"\"]"), log_);
    EXPECT_THAT(msg, HasSubstr("data.domains (test.yaml:7)"));
}

// ---------------------------------------------------------------------------------------------
// Configuration

TEST(BadConfig, UnknownKeySuggestsTheClosest) {
    const auto msg =
        error_of([] { Config::from_yaml_text("code_dim: 4\nn_layer: 3\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:2: unknown key 'n_layer'"));
    EXPECT_THAT(msg, HasSubstr("did you mean 'n_layers'"));
}

TEST(BadConfig, UnknownNestedKey) {
    const auto msg =
        error_of([] { Config::from_yaml_text("seed: 1\ndata: {pathh: x}\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:2: unknown key 'data.pathh'"));
    EXPECT_THAT(msg, HasSubstr("did you mean 'data.path'"));
}

TEST(BadConfig, UnknownNestedKeyInBlockStyle) {
    const auto msg =
        error_of([] { Config::from_yaml_text("data:\n  path: x\n  domainz: [A]\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:3: unknown key 'data.domainz'"));
    EXPECT_THAT(msg, HasSubstr("did you mean 'data.domains'"));
}

TEST(BadConfig, UnknownKeyFarFromAnyPointsToTheKeyList) {
    const auto msg = error_of([] { Config::from_yaml_text("zzzzzzzzzzzz: 1\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:1: unknown key 'zzzzzzzzzzzz'"));
    EXPECT_THAT(msg, HasSubstr("pfcr config-keys"));
}

TEST(BadConfig, GroupGivenAScalar) {
    // 'data' is a known group of keys, so "unknown key 'data'" would send the user looking for a
    // typo that is not there.
    const auto msg = error_of([] { Config::from_yaml_text("seed: 1\ndata: 5\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:2: 'data' is a group of keys"));
    EXPECT_THAT(msg, Not(HasSubstr("unknown key")));
}

TEST(BadConfig, DropoutOutOfRange) {
    const auto msg = error_of(
        [] { Config::from_yaml_text("n_layers: 2\nhidden_dropout_prob: 1.5\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:2: hidden_dropout_prob = 1.5 is out of range [0.0, 1.0)"));
}

TEST(BadConfig, CodeCapNotAPowerOfTwo) {
    const auto msg = error_of([] { Config::from_yaml_text("code_cap: 3\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("code_cap = 3 must be a power of two"));
    EXPECT_THAT(msg, HasSubstr("code_cap (c.yaml:1)"));
}

TEST(BadConfig, CodeCapAboveTheByteRange) {
    const auto msg = error_of([] { Config::from_yaml_text("code_cap: 512\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:1: code_cap = 512"));
    EXPECT_THAT(msg, HasSubstr("out of range"));
}

TEST(BadConfig, PlmSizeNotDivisibleByCodeDim) {
    const auto msg =
        error_of([] { Config::from_yaml_text("code_dim: 4\nplm_size: 30\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("plm_size = 30 must be divisible by code_dim = 4"));
    EXPECT_THAT(msg, HasSubstr("plm_size (c.yaml:2)"));
    EXPECT_THAT(msg, HasSubstr("code_dim (c.yaml:1)"));
}

TEST(BadConfig, WrongType) {
    const auto msg = error_of([] { Config::from_yaml_text("n_layers: abc\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:1: n_layers expects an integer, got 'abc'"));
}

TEST(BadConfig, ListWhereAScalarIsExpected) {
    const auto msg =
        error_of([] { Config::from_yaml_text("seed: 1\nn_layers: [1, 2]\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:2: n_layers expects an integer"));
}

TEST(BadConfig, FeaturesNotOneOfTheChoices) {
    const auto msg =
        error_of([] { Config::from_yaml_text("data:\n  features: bert\n", "c.yaml"); });
    EXPECT_THAT(msg, HasSubstr("c.yaml:2: data.features = 'bert' is not one of: auto, file, text"));
}

TEST(BadConfig, SetOverrideOutOfRange) {
    const auto msg = error_of([] { Config::load({}, {"n_layers=0"}); });
    EXPECT_THAT(msg, HasSubstr("--set n_layers=0: n_layers = "));
    EXPECT_THAT(msg, HasSubstr("out of range"));
}

TEST(BadConfig, SetOverrideWithoutEquals) {
    EXPECT_THAT(error_of([] { Config::load({}, {"n_layers"}); }),
                HasSubstr("--set n_layers: expected key=value"));
    EXPECT_THAT(error_of([] { Config::load({}, {"=3"}); }),
                HasSubstr("--set =3: expected key=value"));
}

TEST(BadConfig, SetOverrideUnknownKey) {
    const auto msg = error_of([] { Config::load({}, {"n_layer=3"}); });
    EXPECT_THAT(msg, HasSubstr("--set n_layer=3: unknown key 'n_layer'"));
    EXPECT_THAT(msg, HasSubstr("did you mean 'n_layers'"));
}

TEST(BadConfig, SetOverrideWrongType) {
    EXPECT_THAT(error_of([] { Config::load({}, {"code_dim=four"}); }),
                HasSubstr("--set code_dim=four: code_dim expects an integer, got 'four'"));
}

TEST(BadConfig, SetMethodNamesItsOrigin) {
    Config cfg;
    EXPECT_THAT(error_of([&] { cfg.set("hidden_dropout_prob", "-0.1", "--set x"); }),
                HasSubstr("--set x: hidden_dropout_prob = -0.1 is out of range"));
}

// Config files on disk: file-level errors name the file (and line).
class BadConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        static std::atomic<int> counter{0};
        dir_ = fs::temp_directory_path() / ("pfcr_test_bad_config_" + std::to_string(::getpid()) +
                                            "_" + std::to_string(counter++));
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string write(const std::string& name, const std::string& yaml) {
        const auto p = (dir_ / name).string();
        write_bytes(p, yaml);
        return p;
    }
    fs::path dir_;
};

TEST_F(BadConfigFile, YamlSyntaxErrorNamesFileAndLine) {
    const auto path = write("bad.yaml", "n_layers: 2\nn_heads: 2\nhidden_size: [300\nseed: 1\n");
    const auto msg = error_of([&] { Config::load({path}); });
    EXPECT_THAT(msg, HasSubstr(path + ":"));
    EXPECT_THAT(msg, HasSubstr("YAML syntax error"));
}

TEST_F(BadConfigFile, YamlSyntaxErrorOnAKnownLine) {
    const auto path = write("bad.yaml", "n_layers: 2\nn_heads: 2\nhidden_size: 300: 2\nseed: 1\n");
    EXPECT_THAT(error_of([&] { Config::load({path}); }), HasSubstr(path + ":3: YAML syntax error"));
}

TEST_F(BadConfigFile, ValueErrorInASecondFileNamesThatFile) {
    const auto good = write("good.yaml", "n_layers: 2\n");
    const auto bad = write("bad.yaml", "# comment\n\ndata:\n  quantizer_iterations: 0\n");
    const auto msg = error_of([&] { Config::load({good, bad}); });
    EXPECT_THAT(msg, HasSubstr(bad + ":4: data.quantizer_iterations = "));
}

TEST_F(BadConfigFile, MissingConfigFile) {
    const auto path = (dir_ / "nope.yaml").string();
    EXPECT_THAT(error_of([&] { Config::load({path}); }),
                HasSubstr(path + ": config file not found"));
}

TEST_F(BadConfigFile, TopLevelNotAMapping) {
    const auto path = write("list.yaml", "- a\n- b\n");
    EXPECT_THAT(error_of([&] { Config::load({path}); }),
                HasSubstr(path + ": the top level must be a mapping"));
}

TEST_F(BadConfigFile, DuplicateKeyInOneFile) {
    // YAML forbids repeated keys in one mapping; silently keeping the last would hide a typo.
    const auto path = write("dup.yaml", "n_layers: 2\nseed: 1\nn_layers: 3\n");
    const auto msg = error_of([&] { Config::load({path}); });
    EXPECT_THAT(msg, HasSubstr(path + ":3"));
    EXPECT_THAT(msg, HasSubstr("n_layers"));
}

TEST_F(BadConfigFile, SameKeyNestedAndDottedInOneFile) {
    const auto path = write("dup.yaml", "data.path: a\ndata:\n  path: b\n");
    const auto msg = error_of([&] { Config::load({path}); });
    EXPECT_THAT(msg, HasSubstr(path + ":3"));
    EXPECT_THAT(msg, HasSubstr("data.path"));
}

// ---------------------------------------------------------------------------------------------
// No partial output: a failed `prepare` leaves no prepared.h5 and no temp file, and an existing
// prepared.h5 stays byte-identical.

TEST_F(BadInputs, FailedPrepareLeavesNoPreparedFile) {
    replace_line(file("Office", "test.inter"), 4, "3\t1 2\t99999");
    const Config cfg = config();
    const fs::path path = resolve_options(cfg).prepared;
    EXPECT_EQ(path, out_dir() / "prepared.h5");
    std::ostringstream out;
    EXPECT_THAT(error_of([&] { run_prepare(resolve_options(cfg), log_, out); }),
                HasSubstr(at("Office", "test.inter", 4) + "item 99999 not in item2index"));
    EXPECT_FALSE(fs::exists(path));
    EXPECT_THAT(temp_siblings(path.parent_path()), ::testing::IsEmpty());
    EXPECT_THAT(out.str(), Not(HasSubstr("prepared:"))) << "no success line after a failure";
}

TEST_F(BadInputs, FailureWhileWritingLeavesNoTempFile) {
    // data.prepared names an existing folder: the whole file is written to <path>.tmp.<pid> and
    // only the final rename fails, so this exercises the temp-file cleanup itself.
    const fs::path path = tmp_ / "prep" / "prepared.h5";
    fs::create_directories(path / "keep");
    Config cfg = config();
    cfg.set("data.prepared", yaml_quoted(path), "test");
    std::ostringstream out;
    const auto msg = error_of([&] { run_prepare(resolve_options(cfg), log_, out); });
    EXPECT_THAT(msg, HasSubstr(path.string()));
    // The reason must be the rename's own errno, not a stale one.
    EXPECT_THAT(msg, HasSubstr(std::string(": ") + std::strerror(EISDIR)));
    EXPECT_TRUE(fs::is_directory(path / "keep"));
    EXPECT_THAT(temp_siblings(path.parent_path()), ::testing::IsEmpty());
}

TEST_F(BadInputs, FailedPrepareLeavesExistingPreparedFileUntouched) {
    Config cfg = config();
    // An explicit data.prepared path outside output_dir, so both path rules are exercised.
    cfg.set("data.prepared", yaml_quoted(tmp_ / "prep" / "prepared.h5"), "test");
    const fs::path path = resolve_options(cfg).prepared;
    std::ostringstream out;
    run_prepare(resolve_options(cfg), log_, out);
    ASSERT_TRUE(fs::exists(path));
    const std::string before = read_bytes(path);
    ASSERT_FALSE(before.empty());

    // Break the input in two ways that fail at different stages: atomic files, then features.
    replace_line(file("Sci", "train.inter"), 2, "0\t0 1\tnot-an-item");
    EXPECT_THAT(error_of([&] { run_prepare(resolve_options(cfg), log_, out); }),
                HasSubstr(at("Sci", "train.inter", 2) + "item id 'not-an-item' is not an integer"));
    EXPECT_EQ(read_bytes(path), before);
    EXPECT_THAT(temp_siblings(path.parent_path()), ::testing::IsEmpty());

    // Restore the domain (the generator is deterministic), then break the features instead.
    write_tiny_domain(data_dir(), "Sci", sci_items, sci_users, 11);
    write_both_feature_files();
    poke_float(file("Office", "feat1CLS"), 3, std::numeric_limits<float>::quiet_NaN());
    cfg.set("data.features", "file", "test");
    EXPECT_THAT(error_of([&] { run_prepare(resolve_options(cfg), log_, out); }),
                HasSubstr(file("Office", "feat1CLS") + ": non-finite value"));
    EXPECT_EQ(read_bytes(path), before);
    EXPECT_THAT(temp_siblings(path.parent_path()), ::testing::IsEmpty());
}

} // namespace
} // namespace pfcr
