// `pfcr finetune` (PFCR stage 2, docs/METHOD.md §8): every client (a domain, or a user shard of
// one; the same ids as pretrain) is fine-tuned on its owning rank with early stopping on validation
// and tested with its best state. The start is a pre-training checkpoint (`--from` /
// finetune.from: the server's shared tensors + the client's own, by state_dict name; a
// centralized checkpoint's single pooled model serves every client) or, without one, a fresh
// initialisation: `--mode full` from scratch is the "local only" baseline. `--mode
// prompt-full | prompt-light` add PFCR's prompt-tuning head (model/prompt.hpp; encoder frozen
// except the code table unless finetune.train_encoder), initialised fresh. Adam starts fresh,
// as RecBole builds a new optimizer for fine-tuning. Rank 0 gathers every client's epoch
// lines and results, so metrics.jsonl and results.json have the same bytes for any rank count
// (timings aside); every rank writes its clients into the stage's checkpoint.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
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
#include "pfcr/version.hpp"
#include "report/report.hpp"
#include "sim/client_results.hpp"
#include "sim/commands.hpp"
#include "sim/early_stopping.hpp"
#include "sim/run_clients.hpp"

namespace pfcr {
namespace {

// One client's outcome, as text lines and numbers rank 0 needs.
struct ClientOutcome {
    std::string epoch_lines; // metrics.jsonl lines of its epochs and test
    EvalResult test, popularity;
    int64_t best_epoch = -1, epochs_run = 0;
};

std::string serialize(const ClientOutcome& o) {
    std::ostringstream os;
    os << std::setprecision(17) << o.best_epoch << ' ' << o.epochs_run << ' ' << o.test.rows << ' '
       << o.popularity.rows << ' ' << o.test.ks.size();
    for (size_t i = 0; i < o.test.ks.size(); ++i)
        os << ' ' << o.test.ks[i] << ' ' << o.test.recall[i] << ' ' << o.test.ndcg[i] << ' '
           << o.popularity.recall[i] << ' ' << o.popularity.ndcg[i];
    os << '\n' << o.epoch_lines;
    return os.str();
}

ClientOutcome deserialize(const std::string& s) {
    ClientOutcome o;
    std::istringstream is(s);
    size_t nk = 0;
    is >> o.best_epoch >> o.epochs_run >> o.test.rows >> o.popularity.rows >> nk;
    for (size_t i = 0; i < nk; ++i) {
        int64_t k;
        double r, n, pr, pn;
        is >> k >> r >> n >> pr >> pn; // operator>> reads the 17-digit values back exactly
        o.test.ks.push_back(k);
        o.popularity.ks.push_back(k);
        o.test.recall.push_back(r);
        o.test.ndcg.push_back(n);
        o.popularity.recall.push_back(pr);
        o.popularity.ndcg.push_back(pn);
    }
    std::string rest;
    std::getline(is, rest);
    o.epoch_lines = s.substr(size_t(is.tellg()));
    return o;
}

} // namespace

std::string resolve_checkpoint(const std::string& path) {
    if (path.empty() || !std::filesystem::is_directory(path)) return path;
    const std::string latest = latest_checkpoint(path);
    check(!latest.empty(), path, ": no complete checkpoint (round_*.h5) in this directory");
    return latest;
}

FinetuneReport run_finetune(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                            const std::string& from_arg, const FaultInjection& faults) {
    const std::string& mode = opt.finetune.mode;
    // Set-up: the data, the clients and the starting point, checked on every rank and agreed on
    // before any training or output (one failing rank stops all cleanly).
    std::string from;
    RunClients rc;
    std::unique_ptr<CheckpointReader> start;
    bool pooled_start = false;
    agree_on_errors(comm, [&] {
        from = resolve_checkpoint(from_arg.empty() ? opt.finetune.from : from_arg);
        rc = load_run_clients(opt, comm, false, opt.finetune.domains);
        if (from.empty()) return;
        start = std::make_unique<CheckpointReader>(from);
        const auto& h = start->header();
        check(h.stage == ckpt::stage_pretrain, from, ": stage '", h.stage,
              "', expected 'pretrain' (fine-tuning starts from a pre-training checkpoint)");
        check_same_shapes(opt.config, *start);
        check_prepared(*start, rc, opt.checkpoint.allow_other_prepared);
        const bool pooled = h.n_clients == 1 && start->clients()[0].domain == "*";
        check(pooled || h.n_clients == int64_t(rc.specs.size()), from, ": ", h.n_clients,
              " clients, the config defines ", rc.specs.size());
        pooled_start = check_clients(*start, rc);
    });
    const int64_t K = int64_t(rc.specs.size());

    const std::vector<int64_t>& ks = opt.eval.topk;
    const std::string& valid_metric = opt.eval.valid_metric;
    const int64_t max_epochs = opt.finetune.epochs, patience = opt.finetune.stopping_step;
    // Every client's layout is this one except prompt-full's item_embedding rows (its
    // domain's items + 1), which the checkpoint records per client.
    TrainOptions base = opt.train;
    base.hp.shape.id_items = 1;
    const ParamLayout layout(base.hp.shape);
    const auto client_layout = [&](const ClientSpec& s) {
        ModelShape shape = base.hp.shape;
        shape.id_items = s.n_items + 1;
        return shape;
    };
    const std::string& dir = opt.output_dir;
    if (comm.rank() == 0) {
        std::filesystem::create_directories(dir);
        int64_t n = 0;
        for (int o : rc.owner) n += o >= 0;
        log.info("finetune: mode " + mode + ", " + std::to_string(n) + " clients on " +
                 std::to_string(comm.size()) + " ranks, from " +
                 (from.empty() ? std::string("scratch (local only)") : from));
    }
    Stopwatch total;

    // This rank's clients, one after another (each one's batches are chunk-parallel).
    struct Done {
        int64_t id;
        ModelState state;
        AlignedBuffer<float> best;
    };
    std::vector<std::unique_ptr<Done>> done;
    std::map<int64_t, ClientOutcome> outcomes;
    // A client's failure (e.g. a non-finite loss) stops this rank's loop; the ranks agree on it
    // before the next collective, so every rank ends cleanly with the failing rank's message.
    agree_on_errors(comm, [&] {
        for (int64_t k = 0; k < K; ++k) {
            if (rc.owner[size_t(k)] != comm.rank()) continue;
            const ClientSpec& spec = rc.specs[size_t(k)];
            const PreparedDomain& dom = *rc.data[size_t(k)].at(0);
            TrainOptions to = base;
            to.client = uint32_t(k);
            to.hp.shape = client_layout(spec);
            auto d = std::make_unique<Done>(Done{k, ModelState(to.hp.shape), {}});
            ModelState& state = d->state;
            const ParamLayout& cl = state.layout;
            init_params(cl, state.params.data(), to.seed, opt.initializer_range);
            if (start) load_pretrained(*start, pooled_start ? 0 : k, cl, state.params.data());
            Trainer trainer(to, dom);
            d->best.resize(cl.total());
            ClientOutcome o;
            std::ostringstream lines;
            EarlyStopping stopping(patience);
            int64_t epoch = 0;
            const std::string who = spec.domain + (rc.specs.size() > rc.domain_names.size()
                                                       ? "/" + std::to_string(spec.shard)
                                                       : std::string());
            for (; epoch < max_epochs; ++epoch) {
                Stopwatch sw;
                const double loss = trainer.train_epoch(state, uint32_t(epoch));
                const double t_train = sw.seconds();
                sw.reset();
                const EvalResult valid = trainer.evaluate(state, dom.valid, ks);
                const double t_eval = sw.seconds();
                const bool improved = stopping.update(epoch, valid.metric(valid_metric));
                if (improved) {
                    o.best_epoch = epoch;
                    std::copy(state.params.data(), state.params.data() + cl.total(),
                              d->best.data());
                }
                Json e = Json::object();
                e["event"] = "epoch";
                e["client"] = k;
                e["domain"] = spec.domain;
                e["shard"] = spec.shard;
                e["epoch"] = epoch;
                e["train_loss"] = loss;
                e["valid"] = metrics_json(valid);
                e["best_epoch"] = o.best_epoch;
                e["time"] = {{"train", t_train}, {"evaluate", t_eval}};
                lines << to_json_text(e) << "\n";
                std::ostringstream line;
                line << who << " epoch " << epoch << "  loss " << std::fixed << std::setprecision(4)
                     << loss << "  valid " << valid_metric << " " << valid.metric(valid_metric)
                     << (improved ? " *" : "  ") << "  (" << std::setprecision(1) << t_train
                     << " s train, " << t_eval << " s eval)";
                log.info(line.str());
                if (stopping.should_stop()) {
                    ++epoch;
                    break;
                }
            }
            o.epochs_run = epoch;
            // Test with the best state; the final state stays in `state` for the checkpoint.
            std::swap(state.params, d->best);
            o.test = trainer.evaluate(state, dom.test, ks);
            std::swap(state.params, d->best);
            o.popularity = evaluate_popularity(dom, dom.test, ks);
            Json t = Json::object();
            t["event"] = "test";
            t["client"] = k;
            t["domain"] = spec.domain;
            t["shard"] = spec.shard;
            t["best_epoch"] = o.best_epoch;
            t["epochs_run"] = o.epochs_run;
            t["test"] = metrics_json(o.test);
            t["popularity"] = metrics_json(o.popularity);
            lines << to_json_text(t) << "\n";
            o.epoch_lines = lines.str();
            outcomes[k] = std::move(o);
            done.push_back(std::move(d));
        }
    });

    // The stage's checkpoint: every client's final model, its best model and Adam moments
    // (names: federation/checkpoint_state.hpp).
    {
        CheckpointHeader h;
        h.stage = ckpt::stage_finetune;
        int64_t epochs = 0;
        for (const auto& [id, o] : outcomes) epochs = std::max(epochs, o.epochs_run);
        comm.allreduce_max(&epochs, 1);
        h.round = epochs;
        h.seed = base.seed;
        h.software_version = software_version;
        h.config_yaml = opt.config.to_yaml();
        h.algorithm = "finetune-" + mode;
        h.prepared_fingerprint = rc.manifest.fingerprint;
        std::vector<ClientSpec> tuned; // every client of this stage
        for (const auto& s : rc.specs)
            if (rc.owner[size_t(s.id)] >= 0) tuned.push_back(s);
        std::vector<FinetunedClient> mine;
        for (const auto& d : done)
            mine.push_back(
                {rc.specs[size_t(d->id)], &d->state, d->best.data(), outcomes[d->id].epochs_run});
        write_checkpoint(comm, opt.checkpoint.dir,
                         finetune_checkpoint(layout, std::move(h), tuned, mine),
                         opt.checkpoint.keep, faults.checkpoint);
    }

    // Rank 0 collects every client's outcome in id order.
    const std::map<int64_t, ClientOutcome> all =
        gather_to_rank0(comm, rc, outcomes, serialize, deserialize);
    FinetuneReport report;
    if (comm.rank() != 0) return report;

    std::string metrics_text;
    for (const auto& [id, o] : all) metrics_text += o.epoch_lines;
    write_text_file_atomic((std::filesystem::path(dir) / "metrics.jsonl").string(), metrics_text);
    // Per domain: the row-weighted merge of its clients (shards), then the mean over domains.
    report.mode = mode;
    report.from = from;
    report.prepared = rc.prepared;
    report.fingerprint = rc.manifest.fingerprint;
    for (const auto& name : rc.domain_names) {
        std::vector<const EvalResult*> tests, pops;
        FinetuneDomain d;
        d.name = name;
        for (const auto& [id, o] : all) {
            if (rc.specs[size_t(id)].domain != name) continue;
            tests.push_back(&o.test);
            pops.push_back(&o.popularity);
            d.best_epoch.push_back(o.best_epoch);
            d.epochs_run.push_back(o.epochs_run);
        }
        if (tests.empty()) continue;
        d.test = merge_rows(tests);
        d.popularity = merge_rows(pops);
        report.domains.push_back(std::move(d));
    }
    std::vector<const EvalResult*> domain_tests;
    for (const auto& d : report.domains) domain_tests.push_back(&d.test);
    report.mean = mean_over(domain_tests, ks);
    write_text_file_atomic((std::filesystem::path(dir) / "results.json").string(),
                           to_json_text(results_json(report)) + "\n");
    write_text_file_atomic((std::filesystem::path(dir) / "config.resolved.yaml").string(),
                           opt.config.to_yaml());
    report.seconds = total.seconds();
    out << results_table(report);
    out << "finetune: mode " << mode << ", " << report.domains.size()
        << " domains, mean test recall@" << ks[0] << " " << std::fixed << std::setprecision(4)
        << report.mean.recall[0] << " in " << std::setprecision(1) << report.seconds << " s -> "
        << dir << "/results.json\n";
    out.unsetf(std::ios::fixed);
    return report;
}

} // namespace pfcr
