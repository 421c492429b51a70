// `pfcr evaluate` (docs/ARCHITECTURE.md §1): full-sort Recall@K / NDCG@K of every client stored in
// a checkpoint, on the valid or test split, clients spread over ranks as in pretrain and
// finetune. A pre-training checkpoint gives each client its encoder (server tensors + its
// own; a centralized checkpoint's pooled model serves every client) without a head: the
// "before fine-tuning" quality of federated pre-training. A fine-tuning checkpoint gives each
// client its best state (what `finetune` tested, so `--split test` reproduces its
// results.json bit for bit) or its final one, with its prompt head. The config is the one
// stored in the checkpoint with the caller's --set overrides; keys that shape the model or the
// data cannot change. Read-only: writes nothing but the optional --json file.
#include <filesystem>
#include <iomanip>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "federation/checkpoint_state.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/checkpoint_schema.hpp"
#include "model/trainer.hpp"
#include "report/report.hpp"
#include "sim/client_results.hpp"
#include "sim/commands.hpp"
#include "sim/run_clients.hpp"

namespace pfcr {
namespace {

std::string serialize(const EvalResult& r) {
    std::ostringstream os;
    os << std::setprecision(17) << r.rows << ' ' << r.ks.size();
    for (size_t i = 0; i < r.ks.size(); ++i)
        os << ' ' << r.ks[i] << ' ' << r.recall[i] << ' ' << r.ndcg[i];
    return os.str();
}

EvalResult deserialize(const std::string& s) {
    EvalResult r;
    std::istringstream is(s);
    size_t nk = 0;
    is >> r.rows >> nk;
    r.ks.resize(nk);
    r.recall.resize(nk);
    r.ndcg.resize(nk);
    for (size_t i = 0; i < nk; ++i) is >> r.ks[i] >> r.recall[i] >> r.ndcg[i]; // 17 digits: exact
    return r;
}

} // namespace

Config evaluate_config(const std::string& checkpoint, const std::vector<std::string>& overrides) {
    const CheckpointReader r(resolve_checkpoint(checkpoint));
    Config cfg = Config::from_yaml_text(r.header().config_yaml, r.path() + ":/config_yaml");
    for (const auto& ov : overrides) {
        const auto eq = ov.find('=');
        check(eq != std::string::npos && eq > 0, "--set ", ov, ": expected key=value");
        cfg.set(std::string(trim(ov.substr(0, eq))), ov.substr(eq + 1), "--set " + ov);
    }
    return cfg;
}

EvaluateReport run_evaluate(const Options& options, Comm& comm, const Logger& log,
                            std::ostream& out, const EvaluateOptions& opt) {
    const Config& cfg = options.config;
    // Set-up checks on every rank, agreed on (agree_on_errors): one failing rank stops all
    // cleanly with its message.
    std::string path;
    std::unique_ptr<CheckpointReader> reader;
    agree_on_errors(comm, [&] {
        path = resolve_checkpoint(opt.checkpoint);
        reader = std::make_unique<CheckpointReader>(path);
    });
    const CheckpointReader& r = *reader;
    const auto& h = r.header();
    const bool finetuned = h.stage == ckpt::stage_finetune;
    const std::string state_name = opt.state.empty() ? (finetuned ? "best" : "final") : opt.state;
    RunClients rc;
    bool pooled = false;
    agree_on_errors(comm, [&] {
        check(h.stage == ckpt::stage_pretrain || h.stage == ckpt::stage_finetune, path, ": stage '",
              h.stage, "', expected '", ckpt::stage_pretrain, "' or '", ckpt::stage_finetune, "'");
        check(opt.split == "valid" || opt.split == "test", "--split ", opt.split,
              ": expected valid or test");
        check(state_name == "best" || state_name == "final", "--state ", state_name,
              ": expected best or final");
        check(finetuned || state_name == "final", path,
              ": a pre-training checkpoint has one state per client; --state best needs a "
              "fine-tuning checkpoint");
        check_same_shapes(cfg, r);
        const Config saved = Config::from_yaml_text(h.config_yaml, path + ":/config_yaml");
        if (finetuned) // the head's layout and the fine-tuned domains are the checkpoint's
            check_agrees(
                cfg, saved, [](KeyRole role) { return role == KeyRole::head; }, path);
        rc = load_run_clients(options, comm, false,
                              finetuned ? options.finetune.domains : std::vector<std::string>{});
        check_prepared(r, rc, options.checkpoint.allow_other_prepared);
        pooled = check_clients(r, rc);
        check(finetuned || pooled || h.n_clients == int64_t(rc.specs.size()), path, ": ",
              h.n_clients, " clients, the config defines ", rc.specs.size());
    });
    const int64_t K = int64_t(rc.specs.size());

    TrainOptions base = options.train;
    if (!finetuned) base.hp.shape.head = HeadMode::none; // pre-training has no head
    const std::vector<int64_t>& ks = options.eval.topk;
    const std::string what = h.stage + " checkpoint " + path + " (round " +
                             std::to_string(h.round) + "), " + state_name + " state, " + opt.split +
                             " split, ties " + tie_rule_name(options.eval.ties);
    if (comm.rank() == 0) log.info("evaluate: " + what);
    Stopwatch total;

    // This rank's clients, one after another, sharing one evaluation scratch.
    const auto scratch = make_trainer_scratch();
    std::map<int64_t, EvalResult> mine;
    agree_on_errors(comm, [&] { // a client's failure stops every rank cleanly
        for (int64_t k = 0; k < K; ++k) {
            if (rc.owner[size_t(k)] != comm.rank()) continue;
            const ClientSpec& spec = rc.specs[size_t(k)];
            const PreparedDomain& dom = *rc.data[size_t(k)].at(0);
            TrainOptions o = base;
            o.client = uint32_t(k);
            o.hp.shape.id_items = spec.n_items + 1;
            ModelState state(o.hp.shape);
            if (finetuned) {
                read_finetuned(r, k, state.layout, state_name == "best", state.params.data());
            } else {
                load_pretrained(r, pooled ? 0 : k, state.layout, state.params.data());
            }
            Trainer trainer(o, dom, scratch);
            Stopwatch sw;
            const Split& split = opt.split == "valid" ? dom.valid : dom.test;
            mine[k] = trainer.evaluate(state, split, ks, options.eval.ties);
            std::ostringstream line;
            line << spec.domain << "/" << spec.shard << ": " << opt.split << " recall@" << ks[0]
                 << " " << std::fixed << std::setprecision(4) << mine[k].recall[0] << " over "
                 << mine[k].rows << " rows (" << std::setprecision(1) << sw.seconds() << " s)";
            log.info(line.str());
        }
    });

    // Rank 0 collects every client's result in id order.
    const std::map<int64_t, EvalResult> all =
        gather_to_rank0(comm, rc, mine, serialize, deserialize);
    EvaluateReport report;
    if (comm.rank() != 0) return report;

    // Per domain: the row-weighted merge of its clients (shards); then the mean over domains.
    report.checkpoint = path;
    report.stage = h.stage;
    report.round = h.round;
    report.state = state_name;
    report.split = opt.split;
    report.ties = tie_rule_name(options.eval.ties);
    report.prepared = rc.prepared;
    report.fingerprint = rc.manifest.fingerprint;
    for (const auto& name : rc.domain_names) {
        std::vector<const EvalResult*> parts;
        for (const auto& [id, e] : all)
            if (rc.specs[size_t(id)].domain == name) parts.push_back(&e);
        if (!parts.empty()) report.domains.emplace_back(name, merge_rows(parts));
    }
    std::vector<const EvalResult*> domain_results;
    for (const auto& [name, e] : report.domains) domain_results.push_back(&e);
    report.mean = mean_over(domain_results, ks);

    if (!opt.json.empty())
        write_text_file_atomic(opt.json, to_json_text(evaluate_json(report)) + "\n");
    out << "evaluate: " << what << "\n"
        << evaluate_table(report) << "evaluate: " << report.domains.size() << " domains in "
        << std::fixed << std::setprecision(1) << total.seconds() << " s"
        << (opt.json.empty() ? std::string() : " -> " + opt.json) << "\n";
    out.unsetf(std::ios::fixed);
    return report;
}

} // namespace pfcr
