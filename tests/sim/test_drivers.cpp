// The stage drivers as library functions, without mpirun (SerialComm, serial HDF5): the
// early-stopping rule on hand-made score sequences, prepared.h5 staleness, pre-training resume
// decisions (same trajectory == uninterrupted; a trajectory key that differs is refused; a
// checkpointing key may differ), the exit status of a stop signal, and `pfcr run` composing
// results.json from the stages' reports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>

#include "../support/test_helpers.hpp"
#include "../support/tiny_fixtures.hpp"
#include "core/error.hpp"
#include "data/prepared.hpp"
#include "io/checkpoint.hpp"
#include "io/comm.hpp"
#include "options/options.hpp"
#include "report/report.hpp"
#include "sim/commands.hpp"
#include "sim/early_stopping.hpp"
#include "sim/signals.hpp"

using namespace pfcr;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// A tiny synthetic pair, prepared once per process; every test gets its own output_dir.
struct Tiny {
    fs::path root;
    Config base; // tiny.yaml + the data's fragment, data.prepared set
};

const Tiny& tiny() {
    static const Tiny t = [] {
        Tiny t;
        t.root = fs::temp_directory_path() / ("pfcr_test_drivers." + std::to_string(::getpid()));
        fs::remove_all(t.root);
        SynthOptions so;
        so.output = (t.root / "data").string();
        so.n_domains = 2;
        so.users_min = so.users_max = 80;
        so.items_min = 40;
        so.items_max = 60;
        so.feature_dim = 32;
        auto made = test::tiny_synthetic(so, (t.root / "prep").string());
        std::ostringstream quiet;
        run_prepare(resolve_options(made.config), Logger(0, true), quiet);
        t.base = made.config;
        t.base.set("data.prepared", "\"" + (t.root / "prep" / "prepared.h5").string() + "\"",
                   "test");
        return t;
    }();
    return t;
}

Options options(const std::string& out, const std::vector<std::string>& sets = {}) {
    Config c = tiny().base;
    c.set("output_dir", "\"" + (tiny().root / out).string() + "\"", "test");
    for (const auto& kv : sets) {
        const auto eq = kv.find('=');
        c.set(kv.substr(0, eq), kv.substr(eq + 1), "--set " + kv);
    }
    return resolve_options(c);
}

// Every dataset of two checkpoints, bit for bit, and the per-client counters.
void expect_same_checkpoint(const std::string& a_path, const std::string& b_path) {
    const CheckpointReader a(a_path), b(b_path);
    EXPECT_EQ(a.header().round, b.header().round);
    ASSERT_EQ(a.server_tensors(), b.server_tensors());
    for (const auto& t : a.server_tensors()) {
        std::vector<float> x(size_t(t.size())), y(size_t(t.size()));
        a.read_server(t, x.data());
        b.read_server(t, y.data());
        EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float))) << t.name;
    }
    ASSERT_EQ(a.clients().size(), b.clients().size());
    for (const auto& m : a.clients()) {
        EXPECT_EQ(a.adam_step(m.id), b.adam_step(m.id));
        EXPECT_EQ(a.rng_counter(m.id), b.rng_counter(m.id));
        for (const auto& t : a.client_tensors(m.id)) {
            std::vector<float> x(size_t(t.size())), y(size_t(t.size()));
            a.read_client(m.id, t, x.data());
            b.read_client(m.id, t, y.data());
            EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)))
                << m.id << " " << t.name;
        }
    }
}

const Logger quiet_log(0, true);

} // namespace

TEST(EarlyStopping, RecBoleRuleOnHandMadeScores) {
    EarlyStopping s(2); // stop once more than 2 epochs in a row do not improve
    const double scores[] = {0.1, 0.2, 0.2, 0.15, 0.15, 0.15};
    const bool improved[] = {true, true, true, false, false, false}; // ties improve (>=)
    const bool stop[] = {false, false, false, false, false, true};
    for (int e = 0; e < 6; ++e) {
        EXPECT_EQ(s.update(e, scores[e]), improved[e]) << "epoch " << e;
        EXPECT_EQ(s.should_stop(), stop[e]) << "epoch " << e;
    }
    EXPECT_EQ(s.best_epoch(), 2); // the tie at epoch 2 moved the best forward
}

TEST(EarlyStopping, ScoresCompareRoundedToFourDecimals) {
    EarlyStopping s(0);
    EXPECT_TRUE(s.update(0, 0.12344));
    EXPECT_TRUE(s.update(1, 0.12341));  // both 0.1234: a tie counts as an improvement
    EXPECT_FALSE(s.update(2, 0.12334)); // 0.1233 < 0.1234
    EXPECT_TRUE(s.should_stop());
    EXPECT_EQ(s.best_epoch(), 1);
    EXPECT_DOUBLE_EQ(s.best_score(), 0.1234);
}

TEST(Drivers, PreparedStalenessFollowsRolesAndInputs) {
    const std::string path = tiny().base.value_text("data.prepared");
    const Options o = options("stale");
    EXPECT_EQ(stale_reason(o.config, o.prepared), "");
    EXPECT_EQ(stale_reason(o.config, o.prepared + ".nope"), "missing");
    // A performance or location key does not make it stale; a quantizer key does.
    EXPECT_EQ(
        stale_reason(options("stale", {"run.threads=1", "checkpoint.keep=5"}).config, o.prepared),
        "");
    EXPECT_EQ(stale_reason(options("stale", {"data.quantizer_seed=7"}).config, o.prepared),
              "config key 'data.quantizer_seed' changed (1234 -> 7)");
    // An input file that changed after prepare.
    const fs::path copy = tiny().root / "stale_copy.h5";
    fs::copy_file(o.prepared, copy, fs::copy_options::overwrite_existing);
    const fs::path input = read_prepared(o.prepared).manifest.input_files.at(0);
    const std::string before = [&] {
        std::ifstream in(input);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    std::ofstream(input, std::ios::app) << "x";
    EXPECT_THAT(stale_reason(o.config, copy.string()), HasSubstr("changed (sha256)"));
    std::ofstream(input, std::ios::trunc) << before;
    EXPECT_EQ(stale_reason(o.config, copy.string()), "");
}

TEST(Drivers, PretrainResumeEqualsUninterruptedAndRefusesAnotherTrajectory) {
    SerialComm comm;
    std::ostringstream out;
    const auto full = run_pretrain(options("full", {"federation.rounds=4"}), comm, quiet_log, out);
    EXPECT_EQ(full.status, 0);
    EXPECT_EQ(full.rounds_done, 4);
    const auto part = run_pretrain(options("part", {"federation.rounds=2"}), comm, quiet_log, out);
    EXPECT_EQ(part.rounds_done, 2);
    // Resume with more rounds and another checkpoint policy (may differ): the same end state.
    const auto resumed = run_pretrain(options("part", {"federation.rounds=4", "checkpoint.keep=3"}),
                                      comm, quiet_log, out);
    EXPECT_EQ(resumed.status, 0);
    expect_same_checkpoint(full.checkpoint, resumed.checkpoint);
    // A trajectory key that differs from the checkpoint's is refused, naming the key.
    EXPECT_THAT(test::error_of([&] {
                    run_pretrain(options("part", {"federation.rounds=5", "learning_rate=0.002"}),
                                 comm, quiet_log, out);
                }),
                HasSubstr("config key 'learning_rate' is 0.001 in the checkpoint but 0.002 now"));
}

TEST(Drivers, StopSignalCheckpointsAndReturnsTheRequeueStatus) {
    SerialComm comm;
    std::ostringstream out;
    install_stop_handlers();
    std::raise(SIGUSR1); // as SLURM's pre-emption warning would
    const auto r = run_pretrain(options("stop", {"federation.rounds=5"}), comm, quiet_log, out);
    clear_stop_request();
    EXPECT_EQ(r.status, exit_code_preempted);
    EXPECT_EQ(r.rounds_done, 1); // the round in progress finishes, then checkpoint + stop
    EXPECT_EQ(CheckpointReader(r.checkpoint).header().round, 1);
    EXPECT_THAT(out.str(), HasSubstr("preempted after 1 of 5 rounds"));
}

TEST(Drivers, RunComposesResultsJsonFromTheStageReports) {
    SerialComm comm;
    std::ostringstream out;
    const Options o = options("run", {"federation.rounds=2", "epochs=2"});
    EXPECT_EQ(run_experiment(o, comm, quiet_log, out), 0);
    std::ifstream in(fs::path(o.output_dir) / "results.json");
    const Json j = Json::parse(in);
    std::ifstream fin(fs::path(o.output_dir) / "finetune" / "results.json");
    const Json ft = Json::parse(fin);
    // The run's results.json = the fine-tuning results + what produced them; checkpoint paths
    // relative to the file's directory (the run's, or its finetune/).
    for (const char* k : {"mode", "fingerprint", "domains", "mean_test"})
        EXPECT_EQ(j[k], ft[k]) << k;
    EXPECT_EQ((fs::path(o.output_dir) / j["prepared"].get<std::string>()).lexically_normal(),
              (fs::path(o.output_dir) / "finetune" / ft["prepared"].get<std::string>())
                  .lexically_normal());
    EXPECT_EQ(j["from"], "pretrain/ckpt/round_000002.h5");
    EXPECT_EQ(ft["from"], "../pretrain/ckpt/round_000002.h5");
    EXPECT_EQ(j["algorithm"], "pfcr");
    EXPECT_EQ(j["pretrain_checkpoint"], j["from"]);
    EXPECT_EQ(j["seed"], 2020);
    EXPECT_FALSE(j.contains("time_s")); // wall-clock times are in timing.json
    std::ifstream tin(fs::path(o.output_dir) / "timing.json");
    EXPECT_TRUE(Json::parse(tin)["time_s"].contains("finetune"));
    EXPECT_THAT(out.str(), HasSubstr("run: pfcr + finetune full"));
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

// metrics.jsonl without its wall-clock "time" objects.
std::string untimed(const fs::path& p) {
    std::string s = read_file(p);
    for (size_t at; (at = s.find(", \"time\": {")) != std::string::npos;)
        s.erase(at, s.find('}', at) + 1 - at);
    return s;
}

// A stop signal during fine-tuning: the client's epoch ends, its progress is saved, the stage
// returns 75 without results; run again, it continues (the finished client is not retrained)
// and ends with the bytes of an uninterrupted run: results.json, metrics.jsonl apart from
// timings, and the stage checkpoint's tensors. No state stays in memory between the calls.
TEST(Drivers, FinetuneStoppedBySignalResumesToTheUninterruptedResult) {
    SerialComm comm;
    std::ostringstream out;
    const std::vector<std::string> sets = {"federation.rounds=1", "epochs=4", "stopping_step=9",
                                           "checkpoint.every=0"};
    const Options whole = options("ft-whole", sets);
    ASSERT_EQ(run_experiment(whole, comm, quiet_log, out), 0);

    const Options cut = options("ft-cut", sets);
    FaultInjection faults;
    int64_t epochs_trained = 0;
    faults.after_finetune_epoch = [&](int64_t client, int64_t epoch) {
        ++epochs_trained;
        if (client == 1 && epoch == 1) std::raise(SIGUSR1);
    };
    install_stop_handlers();
    EXPECT_EQ(run_experiment(cut, comm, quiet_log, out, faults), exit_code_preempted);
    clear_stop_request();
    EXPECT_EQ(epochs_trained, 4 + 2); // client 0 finished, client 1 stopped after epoch 1
    EXPECT_FALSE(fs::exists(fs::path(cut.output_dir) / "results.json"));
    const fs::path progress = fs::path(cut.output_dir) / "finetune" / "ckpt" / "progress";
    EXPECT_TRUE(fs::exists(progress / "client_000000" / "round_000004.h5"));
    EXPECT_TRUE(fs::exists(progress / "client_000001" / "round_000002.h5"));

    epochs_trained = 0;
    EXPECT_EQ(run_experiment(cut, comm, quiet_log, out, faults), 0);
    EXPECT_EQ(epochs_trained, 2);       // only client 1's remaining epochs
    EXPECT_FALSE(fs::exists(progress)); // the stage checkpoint replaced the progress files
    EXPECT_EQ(read_file(fs::path(cut.output_dir) / "results.json"),
              read_file(fs::path(whole.output_dir) / "results.json"));
    const fs::path m = fs::path("finetune") / "metrics.jsonl";
    EXPECT_EQ(untimed(fs::path(cut.output_dir) / m), untimed(fs::path(whole.output_dir) / m));
    const fs::path ck = fs::path("finetune") / "ckpt" / "round_000004.h5";
    expect_same_checkpoint((fs::path(whole.output_dir) / ck).string(),
                           (fs::path(cut.output_dir) / ck).string());
    // The stage checkpoint records each client's real Adam steps and early-stopping state.
    const CheckpointReader staged((fs::path(cut.output_dir) / ck).string());
    EXPECT_GT(staged.adam_step(1), 0);
    EXPECT_THAT(staged.clients()[1].stage_state, HasSubstr("\"bad_epochs\""));
    EXPECT_THAT(staged.clients()[1].stage_state, testing::Not(HasSubstr("\"best_score\": -1")));

    // A finished stage: running again trains nothing and rewrites the same results.
    epochs_trained = 0;
    EXPECT_EQ(run_experiment(cut, comm, quiet_log, out, faults), 0);
    EXPECT_EQ(epochs_trained, 0);
    EXPECT_EQ(read_file(fs::path(cut.output_dir) / "results.json"),
              read_file(fs::path(whole.output_dir) / "results.json"));
}

// A checkpoint records the fingerprint of the prepared data it was trained on: fine-tuning from
// it or evaluating it with another prepared.h5 (same domains, other codes) is refused unless
// checkpoint.allow_other_prepared.
TEST(Drivers, CheckpointsRefuseOtherPreparedData) {
    SerialComm comm;
    std::ostringstream out;
    const auto pre = run_pretrain(options("fp", {"federation.rounds=1"}), comm, quiet_log, out);
    EXPECT_FALSE(CheckpointReader(pre.checkpoint).header().prepared_fingerprint.empty());
    // The same data quantized with another seed: another fingerprint.
    const std::string other = (tiny().root / "other" / "prepared.h5").string();
    run_prepare(options("other", {"data.quantizer_seed=7", "data.prepared=\"" + other + "\""}),
                quiet_log, out);
    const auto elsewhere = [&](bool allow) {
        return options("fp-ft", {"data.prepared=\"" + other + "\"", "epochs=1",
                                 allow ? "checkpoint.allow_other_prepared=true" : "run.threads=0"});
    };
    EXPECT_THAT(test::error_of(
                    [&] { run_finetune(elsewhere(false), comm, quiet_log, out, pre.checkpoint); }),
                HasSubstr("trained on prepared data with fingerprint"));
    EvaluateOptions eo;
    eo.checkpoint = pre.checkpoint;
    EXPECT_THAT(test::error_of([&] { run_evaluate(elsewhere(false), comm, quiet_log, out, eo); }),
                HasSubstr("set checkpoint.allow_other_prepared: true"));
    EXPECT_NO_THROW(run_finetune(elsewhere(true), comm, quiet_log, out, pre.checkpoint));
    // With its own prepared.h5 the checkpoint is accepted.
    EXPECT_NO_THROW(run_evaluate(options("fp-ev"), comm, quiet_log, out, eo));
}
