// Config: defaults are the PFCR paper values, files merge left to right, --set wins, unknown
// keys are rejected with a suggestion, values are range-checked, the resolved YAML reloads
// to the same values, and the shipped configs/ files all load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "io/config.hpp"

using namespace pfcr;
using ::testing::HasSubstr;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
    const auto dir = std::filesystem::temp_directory_path() / "pfcr_test_config";
    std::filesystem::create_directories(dir);
    const auto path = (dir / name).string();
    std::ofstream(path) << text;
    return path;
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "<no error>";
}

// Typed look-ups for these tests (pfcr itself reads keys by name only in src/options).
int64_t get_int(const Config& c, const std::string& k) {
    return std::get<int64_t>(c.value(k));
}
double get_double(const Config& c, const std::string& k) {
    return std::get<double>(c.value(k));
}
std::string get_string(const Config& c, const std::string& k) {
    return std::get<std::string>(c.value(k));
}
std::vector<std::string> get_string_list(const Config& c, const std::string& k) {
    return std::get<std::vector<std::string>>(c.value(k));
}
std::vector<int64_t> get_int_list(const Config& c, const std::string& k) {
    return std::get<std::vector<int64_t>>(c.value(k));
}

} // namespace

TEST(Config, DefaultsArePaperHyperParameters) {
    const Config c;
    EXPECT_EQ(get_int(c, "hidden_size"), 300);
    EXPECT_EQ(get_int(c, "n_layers"), 2);
    EXPECT_EQ(get_int(c, "n_heads"), 2);
    EXPECT_EQ(get_int(c, "inner_size"), 256);
    EXPECT_EQ(get_double(c, "hidden_dropout_prob"), 0.5);
    EXPECT_EQ(get_double(c, "layer_norm_eps"), 1e-12);
    EXPECT_EQ(get_double(c, "temperature"), 0.07);
    EXPECT_EQ(get_int(c, "code_dim"), 32);
    EXPECT_EQ(get_int(c, "code_cap"), 256);
    EXPECT_EQ(get_int(c, "MAX_ITEM_LIST_LENGTH"), 50);
    EXPECT_EQ(get_int(c, "seed"), 2020);
    EXPECT_EQ(get_int_list(c, "topk"), (std::vector<int64_t>{10, 50}));
    EXPECT_EQ(c.origin("hidden_size"), "default");
}

TEST(Config, FilesMergeLeftToRightAndSetWins) {
    const auto a = write_temp("a.yaml", "n_layers: 3\nhidden_size: 64\ndata:\n  path: /x\n");
    const auto b = write_temp("b.yaml", "n_layers: 4\ndata.domains: [A, B]\n");
    const Config c = Config::load({a, b}, {"hidden_size=128", "data.path=/y"});
    EXPECT_EQ(get_int(c, "n_layers"), 4);
    EXPECT_EQ(c.origin("n_layers"), b + ":1");
    EXPECT_EQ(get_int(c, "hidden_size"), 128);
    EXPECT_EQ(c.origin("hidden_size"), "--set hidden_size=128");
    EXPECT_EQ(get_string(c, "data.path"), "/y");
    EXPECT_EQ(get_string_list(c, "data.domains"), (std::vector<std::string>{"A", "B"}));
}

TEST(Config, UnknownKeysAreRejectedWithSuggestion) {
    const auto f = write_temp("typo.yaml", "hidden_size: 64\nn_layer: 3\n");
    EXPECT_THAT(error_of([&] { Config::load({f}); }),
                HasSubstr(f + ":2: unknown key 'n_layer' — did you mean 'n_layers'?"));
    const auto g = write_temp("nested.yaml", "data:\n  domain: [A]\n");
    EXPECT_THAT(error_of([&] { Config::load({g}); }), HasSubstr("did you mean 'data.domains'?"));
    EXPECT_THAT(error_of([&] { Config::load({}, {"totally_unrelated_thing=1"}); }),
                HasSubstr("unknown key 'totally_unrelated_thing'"));
}

TEST(Config, ValuesAreRangeAndTypeChecked) {
    EXPECT_THAT(error_of([] { Config::load({}, {"hidden_dropout_prob=1.5"}); }),
                HasSubstr("hidden_dropout_prob = 1.5 is out of range [0.0, 1.0)"));
    EXPECT_THAT(error_of([] { Config::load({}, {"n_layers=0"}); }),
                HasSubstr("n_layers = 0 is out of range [1, 64]"));
    EXPECT_THAT(error_of([] { Config::load({}, {"n_layers=abc"}); }),
                HasSubstr("n_layers expects an integer, got 'abc'"));
    EXPECT_THAT(error_of([] { Config::load({}, {"n_layers=2.5"}); }),
                HasSubstr("expects an integer"));
    EXPECT_THAT(error_of([] { Config::load({}, {"code_cap=48"}); }), HasSubstr("power of two"));
    EXPECT_THAT(error_of([] { Config::load({}, {"hidden_size=301"}); }),
                HasSubstr("divisible by n_heads"));
    EXPECT_THAT(error_of([] { Config::load({}, {"data.features=bert"}); }),
                HasSubstr("is not one of: auto, file, text"));
    EXPECT_THAT(error_of([] { Config::load({}, {"valid_metric=recall@20"}); }),
                HasSubstr("K in topk"));
    EXPECT_THAT(error_of([] { Config::load({}, {"n_layers"}); }), HasSubstr("expected key=value"));
    const auto bad = write_temp("syntax.yaml", "a: [1, 2\nb: 3\n");
    EXPECT_THAT(error_of([&] { Config::load({bad}); }), HasSubstr(bad + ":"));
    EXPECT_THAT(error_of([] { Config::load({"/nonexistent/x.yaml"}); }), HasSubstr("not found"));
}

TEST(Config, FailedSetKeepsThePreviousValue) {
    Config c;
    EXPECT_THROW(c.set("code_dim", "5", "test"), Error); // 768 % 5 != 0
    EXPECT_EQ(get_int(c, "code_dim"), 32);
    EXPECT_EQ(c.origin("code_dim"), "default");
}

TEST(Config, ResolvedYamlReloadsToTheSameValues) {
    // Values only: each printed line is "key: value  # origin", and origins differ by design.
    const auto values = [](const Config& c) {
        std::string out;
        std::istringstream in(c.to_yaml());
        for (std::string line; std::getline(in, line);)
            out += line.substr(0, line.find("  # ")) + "\n";
        return out;
    };
    const Config c = Config::load({}, {"hidden_size=64", "n_heads=4", "data.domains=[A, 'B C']",
                                       "layer_norm_eps=1e-5", "data.path=\"q\\\"uote\""});
    const Config back = Config::from_yaml_text(c.to_yaml(), "resolved");
    EXPECT_EQ(values(back), values(c));
    EXPECT_EQ(get_string(back, "data.path"), "q\"uote");
    EXPECT_EQ(get_double(back, "layer_norm_eps"), 1e-5);
    EXPECT_EQ(get_string_list(back, "data.domains"), (std::vector<std::string>{"A", "B C"}));
    EXPECT_EQ(back.origin("hidden_size"), "resolved:6");
}

TEST(Config, SchemaGroupsAreContiguousAndKeysUnique) {
    std::vector<std::string> groups_closed;
    std::string current;
    std::set<std::string> keys;
    for (const auto& s : config_schema()) {
        EXPECT_TRUE(keys.insert(s.key).second) << "duplicate key " << s.key;
        const auto dot = s.key.find('.');
        const std::string g = dot == std::string::npos ? "" : s.key.substr(0, dot);
        if (g != current) {
            EXPECT_EQ(std::count(groups_closed.begin(), groups_closed.end(), g), 0)
                << "group '" << g << "' is split in the schema";
            groups_closed.push_back(current);
            current = g;
        }
        EXPECT_FALSE(s.help.empty()) << s.key;
    }
}

TEST(Config, ShippedConfigsLoad) {
    const std::string dir = std::string(PFCR_SOURCE_DIR) + "/configs";
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() != ".yaml") continue;
        EXPECT_NO_THROW(Config::load({e.path().string()})) << e.path();
        ++n;
    }
    EXPECT_GE(n, 3);
    const Config d = Config::load({dir + "/default.yaml"});
    EXPECT_EQ(get_int(d, "hidden_size"), 300);
    EXPECT_EQ(get_double(d, "learning_rate"), 0.001);
}

TEST(Config, CheckpointKeys) {
    const Config c;
    EXPECT_EQ(get_int(c, "checkpoint.every"), 1);
    EXPECT_EQ(get_int(c, "checkpoint.keep"), 2);
    EXPECT_EQ(get_string(c, "checkpoint.dir"), "");
    const Config d = Config::load({}, {"checkpoint.every=0", "checkpoint.dir=/scratch/ck"});
    EXPECT_EQ(get_int(d, "checkpoint.every"), 0);
    EXPECT_EQ(get_string(d, "checkpoint.dir"), "/scratch/ck");
    EXPECT_THAT(error_of([] { Config::load({}, {"checkpoint.keep=0"}); }),
                HasSubstr("checkpoint.keep = 0 is out of range [1, "));
    EXPECT_THAT(error_of([] { Config::load({}, {"checkpoint.every=-1"}); }),
                HasSubstr("checkpoint.every = -1 is out of range [0, "));
}
