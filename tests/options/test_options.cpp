// The options module: every schema key has a role and is read by resolve_options (a key added
// to the schema but not mapped fails here), the "may this differ?" rules derived from roles
// give the answers the stages rely on, and typed fields follow their keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "../support/test_helpers.hpp"
#include "core/error.hpp"
#include "io/config.hpp"
#include "options/options.hpp"

using namespace pfcr;
using ::testing::HasSubstr;

namespace {

const KeySpec& spec(const std::string& key) {
    for (const auto& s : config_schema())
        if (s.key == key) return s;
    throw Error("no key " + key);
}

} // namespace

TEST(Options, EveryKeyHasARole) {
    for (const auto& s : config_schema())
        EXPECT_STRNE(role_name(s.role), "?") << s.key << " has no valid role";
}

TEST(Options, ResolveReadsEveryKeyOfTheSchema) {
    std::set<std::string> read;
    resolve_options(Config(), &read);
    for (const auto& s : config_schema())
        EXPECT_TRUE(read.count(s.key)) << s.key << " is in the schema but no option reads it";
    EXPECT_EQ(read.size(), config_schema().size()) << "resolve_options read a key twice-named?";
}

TEST(Options, RolesGiveTheRulesTheStagesUse) {
    const auto prepared = [](const char* k) { return role_shapes_prepared(spec(k).role); };
    const auto checkpoint = [](const char* k) { return role_shapes_checkpoint(spec(k).role); };
    const auto resume = [](const char* k) { return role_shapes_pretraining(spec(k).role); };
    // prepared.h5: its data and quantizer keys and the code shape; not how clients are cut.
    for (const char* k : {"data.path", "data.domains", "data.features", "data.quantizer_seed",
                          "code_dim", "code_cap", "plm_size", "data.text_hash_buckets"})
        EXPECT_TRUE(prepared(k)) << k;
    for (const char* k : {"data.prepared", "data.shards_per_domain", "output_dir", "seed",
                          "n_layers", "learning_rate"})
        EXPECT_FALSE(prepared(k)) << k;
    // A checkpoint fits a config with the same model shape, codes, clients and data.
    for (const char* k : {"n_layers", "n_heads", "hidden_size", "inner_size", "code_dim",
                          "MAX_ITEM_LIST_LENGTH", "data.shards_per_domain", "data.domains"})
        EXPECT_TRUE(checkpoint(k)) << k;
    for (const char* k : {"learning_rate", "topk", "eval_batch_size", "data.prepared",
                          "finetune.mode", "run.threads"})
        EXPECT_FALSE(checkpoint(k)) << k;
    // Resume: trajectory keys must match; locations, speed, budget, checkpoint policy and
    // fine-tuning/evaluation keys may change.
    for (const char* k : {"seed", "learning_rate", "train_batch_size", "federation.algorithm",
                          "federation.server_lr", "privacy.epsilon", "run.chunk_rows",
                          "hidden_dropout_prob", "data.shards_per_domain", "code_dim"})
        EXPECT_TRUE(resume(k)) << k;
    for (const char* k :
         {"output_dir", "data.path", "data.prepared", "federation.rounds", "checkpoint.every",
          "checkpoint.keep", "checkpoint.dir", "run.threads", "epochs", "stopping_step", "topk",
          "valid_metric", "eval_batch_size", "finetune.mode", "finetune.from", "synth.output"})
        EXPECT_FALSE(resume(k)) << k;
}

TEST(Options, FirstDifferenceFollowsRolesInSchemaOrder) {
    const Config a;
    const Config b = Config::load({}, {"output_dir=elsewhere", "n_layers=3", "seed=7"});
    EXPECT_EQ(first_difference(a, b, role_shapes_checkpoint), "n_layers");
    EXPECT_EQ(first_difference(a, b, role_shapes_pretraining), "seed");
    EXPECT_EQ(first_difference(a, b, role_shapes_prepared), "");
    EXPECT_THAT(
        test::error_of([&] { check_agrees(b, a, role_shapes_checkpoint, "ck.h5", "advice"); }),
        HasSubstr("ck.h5: config key 'n_layers' is 2 in the checkpoint but 3 now (--set "
                  "n_layers=3); advice"));
}

TEST(Options, TypedFieldsFollowTheirKeys) {
    const Options d = resolve_options(Config());
    EXPECT_EQ(d.federation.server_lr, 0.001); // 0 = learning_rate, as the paper
    EXPECT_EQ(d.train.hp.shape.hidden, 300);
    EXPECT_EQ(d.prepared, "runs/default/prepared.h5");
    EXPECT_EQ(d.checkpoint.dir, "runs/default/ckpt");
    const Options o = resolve_options(Config::load(
        {}, {"federation.server_lr=0.5", "output_dir=out", "checkpoint.dir=/ck",
             "data.prepared=p.h5", "finetune.mode=prompt-light", "federation.rounds=4"}));
    EXPECT_EQ(o.federation.server_lr, 0.5);
    EXPECT_EQ(o.checkpoint.dir, "/ck");
    EXPECT_EQ(o.prepared, "p.h5");
    EXPECT_EQ(o.train.hp.shape.head, HeadMode::prompt_light);
    EXPECT_EQ(o.rounds, 4);
    const Options w = with_key(o, "output_dir", "\"x/y\"", "test");
    EXPECT_EQ(w.output_dir, "x/y");
    EXPECT_EQ(w.config.origin("output_dir"), "test");
}

TEST(Options, CrossKeyRulesNameTheKeys) {
    EXPECT_THAT(test::error_of([] {
                    resolve_options(Config::load(
                        {}, {"federation.server_lr=0.5", "federation.algorithm=fedavg"}));
                }),
                HasSubstr("only algorithm pfcr takes a server step"));
    EXPECT_THAT(test::error_of([] {
                    resolve_options(
                        Config::load({}, {"finetune.mode=prompt-full", "finetune.prompt_heads=7"}));
                }),
                HasSubstr("finetune.prompt_heads = 7 (--set finetune.prompt_heads=7) must divide"));
}
