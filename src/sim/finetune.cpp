// `pfcr finetune` (PFCR stage 2, docs/METHOD.md §8): every client (a domain, or a user shard of
// one; the same ids as pretrain) is fine-tuned on its owning rank with early stopping on validation
// and tested with its best state. The start is a pre-training checkpoint (`--from` /
// finetune.from: the server's shared tensors + the client's own, by state_dict name; a
// centralized checkpoint's single pooled model serves every client) or, without one, a fresh
// initialisation: `--mode full` from scratch is the "local only" baseline. `--mode
// prompt-full | prompt-light` add PFCR's prompt-tuning head (model/prompt.hpp; encoder frozen
// except the code table unless finetune.train_encoder), initialised fresh. Adam starts fresh,
// as RecBole builds a new optimizer for fine-tuning.
//
// Pre-emption and memory (docs/ARCHITECTURE.md §3, docs/formats.md): clients are independent,
// so each rank trains its clients one after another without waiting for the others, and a
// client's state lives in memory only while it trains. Its progress file
// <checkpoint.dir>/progress/client_<id>/round_<epochs>.h5 (one rank, serial HDF5, temp +
// rename) is written every checkpoint.every epochs, after the epoch in which a stop signal
// arrived, and once the client is finished (final and best parameters and its results). A
// rerun, on any rank count, continues every client from its progress file. When every client
// is finished, all ranks write the stage's checkpoint <checkpoint.dir>/round_<epochs>.h5
// collectively, streaming each client from its progress file, and the progress files go.
// Rank 0 gathers every client's epoch lines and results, so metrics.jsonl and results.json
// have the same bytes for any rank count and for an interrupted and resumed run (timings in
// the epoch lines are those of the run that trained the epoch).
#include <algorithm>
#include <cmath>
#include <cstdlib>
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
#include "sim/signals.hpp"

namespace pfcr {
namespace {

namespace fs = std::filesystem;

// Current and peak resident set size of this process, MiB (Linux /proc/self/status).
std::pair<double, double> rss_mib() {
    std::ifstream in("/proc/self/status");
    double now = 0, peak = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmRSS:", 0) == 0) now = std::atof(line.c_str() + 6) / 1024.0;
        if (line.rfind("VmHWM:", 0) == 0) peak = std::atof(line.c_str() + 6) / 1024.0;
    }
    return {now, peak};
}

// One client's outcome, as text lines and numbers rank 0 needs.
struct ClientOutcome {
    std::string epoch_lines; // metrics.jsonl lines of its epochs (and test, once finished)
    EvalResult test, popularity;
    int64_t best_epoch = -1, epochs_run = 0;
    double best_score = -1; // early stopping's (rounded) best validation score
    int64_t bad_epochs = 0; // its streak of epochs without improvement
    int64_t adam_steps = 0; // Adam steps taken
};

std::string serialize(const ClientOutcome& o) {
    std::ostringstream os;
    os << std::setprecision(17) << o.best_epoch << ' ' << o.epochs_run << ' ' << o.best_score << ' '
       << o.bad_epochs << ' ' << o.adam_steps << ' ' << o.test.rows << ' ' << o.popularity.rows
       << ' ' << o.test.ks.size();
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
    is >> o.best_epoch >> o.epochs_run >> o.best_score >> o.bad_epochs >> o.adam_steps >>
        o.test.rows >> o.popularity.rows >> nk;
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

// What a client's checkpoint keeps besides tensors (ClientMeta::stage_state, JSON): whether it
// is finished, the epochs done, the early-stopping state, the checkpoint it started from, and
// its outcome so far.
struct ClientProgress {
    bool finished = false;
    int64_t epochs_done = 0;
    double best_score = -1;
    int64_t best_epoch = -1, bad_epochs = 0;
    std::string from; // the pre-training checkpoint, relative to checkpoint.dir ("" = scratch)
    ClientOutcome outcome;
};

std::string progress_text(const ClientProgress& p) {
    Json j = Json::object();
    j["finished"] = p.finished;
    j["epochs_done"] = p.epochs_done;
    j["best_score"] = p.best_score; // 17 significant digits: read back exactly
    j["best_epoch"] = p.best_epoch;
    j["bad_epochs"] = p.bad_epochs;
    j["from"] = p.from;
    j["outcome"] = serialize(p.outcome);
    return to_json_text(j);
}

ClientProgress parse_progress(const std::string& text, const std::string& where) {
    check(!text.empty(), where, ": no attribute '", ckpt::attr::stage_state,
          "' (a fine-tuning checkpoint of an older pfcr, which cannot be continued); remove it "
          "or choose another output_dir");
    try {
        const Json j = Json::parse(text);
        ClientProgress p;
        p.finished = j.at("finished").get<bool>();
        p.epochs_done = j.at("epochs_done").get<int64_t>();
        p.best_score = j.at("best_score").get<double>();
        p.best_epoch = j.at("best_epoch").get<int64_t>();
        p.bad_epochs = j.at("bad_epochs").get<int64_t>();
        p.from = j.at("from").get<std::string>();
        p.outcome = deserialize(j.at("outcome").get<std::string>());
        return p;
    } catch (const std::exception& e) {
        throw Error(where + ": attribute '" + ckpt::attr::stage_state +
                    "' is not a fine-tuning client state: " + e.what());
    }
}

// <checkpoint.dir>/progress/client_000017
std::string progress_dir(const std::string& ckpt_dir, int64_t id) {
    char name[40];
    std::snprintf(name, sizeof name, "client_%06lld", static_cast<long long>(id));
    return (fs::path(ckpt_dir) / "progress" / name).string();
}

// Throws unless the checkpoint `r` was written by a fine-tuning run this one may continue:
// stage finetune, every key that shapes fine-tuning equal, the same prepared data.
void check_resumable(const Options& opt, const CheckpointReader& r, const RunClients& rc,
                     const std::string& ckpt_dir) {
    const auto& h = r.header();
    check(h.stage == ckpt::stage_finetune, r.path(), ": stage '", h.stage, "', expected '",
          ckpt::stage_finetune, "' (", ckpt_dir, " is this fine-tuning's checkpoint directory)");
    const Config then = Config::from_yaml_text(h.config_yaml, r.path() + ":/config_yaml");
    check_agrees(opt.config, then, role_shapes_finetuning, r.path(),
                 "; this is the checkpoint of another fine-tuning: remove " + ckpt_dir +
                     " or choose another output_dir (or checkpoint.dir)");
    check_prepared(r, rc, opt.checkpoint.allow_other_prepared);
}

// Per-rank progress on stderr: every epoch of every client for a stage of few clients,
// otherwise a line at most every 30 s with clients done, throughput and an ETA.
class FinetuneProgress {
public:
    FinetuneProgress(const Logger& log, bool every_epoch, int64_t my_clients, int64_t my_rows)
        : log_(log), every_epoch_(every_epoch), clients_(my_clients), rows_(my_rows) {}
    bool every_epoch() const { return every_epoch_; }
    void trained(int64_t rows) { rows_trained_ += rows; }
    void finished(int64_t client_rows) {
        ++done_;
        rows_done_ += client_rows;
    }
    void tick(const std::string& doing, bool force = false) {
        if (every_epoch_ || (!force && last_.seconds() < 30)) return;
        last_.reset();
        const double t = total_.seconds();
        std::ostringstream os;
        os << "finetune: " << done_ << "/" << clients_ << " clients of this rank done";
        if (!doing.empty()) os << ", " << doing;
        os << ", " << thousands(int64_t(double(rows_trained_) / std::max(t, 1e-9)))
           << " train rows/s, " << duration_text(t) << " elapsed";
        if (rows_done_ > 0 && rows_done_ < rows_)
            os << ", ETA ~" << duration_text(t * double(rows_ - rows_done_) / double(rows_done_));
        const auto [rss, peak] = rss_mib();
        os << ", RSS " << int64_t(rss) << " MiB (peak " << int64_t(peak) << ")";
        log_.progress(os.str());
    }

private:
    const Logger& log_;
    bool every_epoch_;
    int64_t clients_, rows_, done_ = 0, rows_done_ = 0, rows_trained_ = 0;
    Stopwatch total_, last_;
};

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
    const std::string& ckpt_dir = opt.checkpoint.dir;
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

    // Set-up: the data, the clients, the starting point and what earlier runs left, checked on
    // every rank and agreed on before any training or output (one failing rank stops all).
    std::string from;
    RunClients rc;
    std::unique_ptr<CheckpointReader> start, finished_stage;
    bool pooled_start = false;
    std::map<int64_t, std::string> progress_file; // owned client -> its newest progress file
    // Whether the stage is finished is rank 0's view of checkpoint.dir, shared: ranks that saw
    // a directory differently (a stale network-file-system cache) would otherwise take
    // different collective paths below.
    const std::string done_stage =
        broadcast_string(comm, comm.rank() == 0 ? latest_checkpoint(ckpt_dir) : std::string(), 0);
    agree_on_errors(comm, [&] {
        check_output_dir(opt.output_dir, "output_dir");
        check_output_dir(ckpt_dir, "checkpoint.dir");
        from = resolve_checkpoint(from_arg.empty() ? opt.finetune.from : from_arg);
        rc = load_run_clients(opt, comm, false, opt.finetune.domains);
        if (!from.empty()) {
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
        }
        // A finished stage (its checkpoint is complete) or clients' progress to continue.
        const auto check_from = [&](const CheckpointReader& r, int64_t id) {
            const ClientProgress p =
                parse_progress(r.clients()[0].stage_state,
                               r.path() + ":/clients/" + std::to_string(r.clients()[0].id));
            check(p.from == relative_to(from, ckpt_dir), r.path(), ": client ", id,
                  " was fine-tuned from '", p.from, "' (relative to ", ckpt_dir,
                  "), this run starts from '", from, "'; remove ", ckpt_dir,
                  " or choose another output_dir (or checkpoint.dir)");
        };
        if (const std::string& done = done_stage; !done.empty()) {
            finished_stage = std::make_unique<CheckpointReader>(done);
            check_resumable(opt, *finished_stage, rc, ckpt_dir);
            check_clients(*finished_stage, rc);
            for (const auto& s : rc.specs)
                check((rc.owner[size_t(s.id)] >= 0) == finished_stage->has_client(s.id), done,
                      ": holds another set of clients than this run fine-tunes (client ", s.id,
                      "); remove ", ckpt_dir, " or choose another output_dir");
            if (!finished_stage->clients().empty()) check_from(*finished_stage, 0);
            return;
        }
        for (const auto& s : rc.specs) {
            if (rc.owner[size_t(s.id)] != comm.rank()) continue;
            const std::string file = latest_checkpoint(progress_dir(ckpt_dir, s.id));
            if (file.empty()) continue;
            const CheckpointReader r(file);
            check_resumable(opt, r, rc, ckpt_dir);
            const auto& m = r.clients();
            check(m.size() == 1 && m[0].id == s.id && m[0].domain == s.domain &&
                      m[0].shard == s.shard && m[0].n_train_rows == s.train_rows,
                  file, ": expected client ", s.id, " alone (domain ", s.domain, " shard ", s.shard,
                  ", ", s.train_rows, " train rows); remove ", ckpt_dir,
                  " or choose another output_dir");
            check_from(r, s.id);
            progress_file[s.id] = file;
        }
    });
    const int64_t K = int64_t(rc.specs.size());
    const std::vector<int64_t>& ks = opt.eval.topk;
    const TieRule ties = opt.eval.ties;
    const std::string& valid_metric = opt.eval.valid_metric;
    const int64_t max_epochs = opt.finetune.epochs, patience = opt.finetune.stopping_step;
    const int64_t every = opt.checkpoint.every;
    const std::string& dir = opt.output_dir;

    int64_t n_stage = 0, my_clients = 0, my_rows = 0, resumed = 0, largest = 0;
    for (const auto& s : rc.specs) {
        if (rc.owner[size_t(s.id)] < 0) continue;
        ++n_stage;
        largest = std::max(largest, ParamLayout(client_layout(s)).total());
        if (rc.owner[size_t(s.id)] != comm.rank()) continue;
        ++my_clients;
        my_rows += s.train_rows;
    }
    resumed = int64_t(progress_file.size());
    comm.allreduce_sum(&resumed, 1);
    if (comm.rank() == 0) {
        std::filesystem::create_directories(dir);
        log.info("finetune: mode " + mode + ", " + std::to_string(n_stage) + " clients on " +
                 std::to_string(comm.size()) + " ranks, from " +
                 (from.empty() ? std::string("scratch (local only)") : from) +
                 (finished_stage ? "; already finished (" + finished_stage->path() + ")"
                  : resumed > 0  ? "; continuing " + std::to_string(resumed) + " clients from " +
                                      ckpt_dir + "/progress"
                                : std::string()));
        // A client is in memory only while it trains (parameters, Adam m and v, best state);
        // after that, only its outcome: one metrics line per epoch (bounded with a line of
        // 17-digit values) plus its test line and numbers.
        EvalResult sample;
        sample.ks = ks;
        sample.recall.assign(ks.size(), 0.12345678901234567);
        sample.ndcg.assign(ks.size(), 0.12345678901234567);
        Json e = Json::object();
        e["event"] = "epoch";
        e["client"] = K;
        e["domain"] = std::string(64, 'x');
        e["shard"] = K;
        e["epoch"] = max_epochs;
        e["train_loss"] = 0.12345678901234567;
        e["valid"] = metrics_json(sample);
        e["best_epoch"] = max_epochs;
        e["time"] = {{"train", 1234.567891}, {"evaluate", 1234.567891}};
        const double line = double(to_json_text(e).size() + 1);
        const double mib = 1.0 / 1048576.0;
        std::ostringstream os;
        os << std::fixed << std::setprecision(3) << "finetune: memory: persistent "
           << (double(max_epochs + 2) * line + 256) * mib
           << " MiB per client (its metrics lines; its state goes to " << ckpt_dir
           << "/progress once it is done), working state " << std::setprecision(1)
           << double(4 * largest) * 4 * mib
           << " MiB for the one client a rank trains at a time (parameters, Adam m and v, best)";
        log.info(os.str());
    }
    Stopwatch total;

    // This rank's clients, one after another, sharing one trainer scratch (chunk-parallel
    // batches inside each). A stop signal ends the loop after the current epoch, once that
    // client's progress is saved. A client's failure (e.g. a non-finite loss) stops this
    // rank's loop; the ranks agree on it once all are done, so every rank ends cleanly with the
    // failing rank's message. A rank done first waits asleep: domains differ in size (in the
    // quick start one rank trains ~170 s longer than the other).
    std::map<int64_t, ClientOutcome> outcomes;
    bool stopped = false;
    const auto scratch = make_trainer_scratch();
    FinetuneProgress progress(log, n_stage <= 16, my_clients, my_rows);
    agree_on_errors_quietly(comm, [&] {
        if (finished_stage) { // every outcome is in the stage's checkpoint
            for (const auto& m : finished_stage->clients())
                if (rc.owner[size_t(m.id)] == comm.rank())
                    outcomes[m.id] = parse_progress(m.stage_state, finished_stage->path()).outcome;
            return;
        }
        for (int64_t k = 0; k < K && !stopped; ++k) {
            if (rc.owner[size_t(k)] != comm.rank()) continue;
            const ClientSpec& spec = rc.specs[size_t(k)];
            const PreparedDomain& dom = *rc.data[size_t(k)].at(0);
            TrainOptions to = base;
            to.client = uint32_t(k);
            to.hp.shape = client_layout(spec);
            ModelState state(to.hp.shape);
            const ParamLayout& cl = state.layout;
            AlignedBuffer<float> best(size_t(cl.total()));
            ClientProgress p;
            p.from = relative_to(from, ckpt_dir);
            if (const auto it = progress_file.find(k); it != progress_file.end()) {
                const CheckpointReader r(it->second);
                p = parse_progress(r.clients()[0].stage_state, it->second);
                if (p.finished) {
                    outcomes[k] = p.outcome;
                    progress.finished(spec.train_rows);
                    continue;
                }
                read_finetune_state(r, k, state, best.data());
            } else {
                init_params(cl, state.params.data(), to.seed, opt.initializer_range);
                if (start) load_pretrained(*start, pooled_start ? 0 : k, cl, state.params.data());
                // The best state until an epoch improves (none may: e.g. an empty valid split).
                std::copy(state.params.data(), state.params.data() + cl.total(), best.data());
            }
            Trainer trainer(to, dom, scratch);
            EarlyStopping stopping(patience);
            stopping.restore(p.best_score, p.best_epoch, p.bad_epochs);
            ClientOutcome& o = p.outcome;
            const std::string who = spec.domain + (rc.specs.size() > rc.domain_names.size()
                                                       ? "/" + std::to_string(spec.shard)
                                                       : std::string());
            const auto save = [&] {
                p.epochs_done = o.epochs_run;
                p.best_score = o.best_score = stopping.best_score();
                p.best_epoch = stopping.best_epoch();
                p.bad_epochs = o.bad_epochs = stopping.bad_epochs();
                o.adam_steps = state.step;
                CheckpointHeader h;
                h.stage = ckpt::stage_finetune;
                h.round = o.epochs_run;
                h.seed = base.seed;
                h.software_version = software_version;
                h.config_yaml = opt.config.to_yaml();
                h.algorithm = "finetune-" + mode;
                h.prepared_fingerprint = rc.manifest.fingerprint;
                // A finished client needs no optimizer state.
                CheckpointContent c =
                    finetune_checkpoint(layout, std::move(h), {spec}, !p.finished);
                c.clients[0].stage_state = progress_text(p);
                c.owned.push_back(
                    finetune_owned({spec, &state, best.data(), o.epochs_run}, !p.finished));
                SerialComm self;
                write_checkpoint(self, progress_dir(ckpt_dir, k), c, 1, faults.checkpoint);
            };
            while (!p.finished) {
                const int64_t epoch = o.epochs_run;
                Stopwatch sw;
                const double loss = trainer.train_epoch(state, uint32_t(epoch));
                const double t_train = sw.seconds();
                progress.trained(spec.train_rows);
                sw.reset();
                const EvalResult valid = trainer.evaluate(state, dom.valid, ks, ties);
                const double t_eval = sw.seconds();
                const bool improved = stopping.update(epoch, valid.metric(valid_metric));
                if (improved) {
                    o.best_epoch = epoch;
                    std::copy(state.params.data(), state.params.data() + cl.total(), best.data());
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
                o.epoch_lines += to_json_text(e) + "\n";
                o.epochs_run = epoch + 1;
                p.finished = stopping.should_stop() || o.epochs_run == max_epochs;
                if (progress.every_epoch()) {
                    std::ostringstream line;
                    line << "finetune: " << who << " epoch " << epoch << "/" << max_epochs
                         << "  loss " << std::fixed << std::setprecision(4) << loss << "  valid "
                         << valid_metric << " " << valid.metric(valid_metric)
                         << (improved ? " *" : "  ") << "  (" << std::setprecision(1) << t_train
                         << " s train, " << t_eval << " s eval, "
                         << thousands(int64_t(double(spec.train_rows) / std::max(t_train, 1e-9)))
                         << " rows/s)";
                    log.progress(line.str());
                } else {
                    progress.tick(who + " epoch " + std::to_string(epoch));
                }
                if (faults.after_finetune_epoch) faults.after_finetune_epoch(k, epoch);
                if (p.finished) break;
                const bool stop = stop_requested(); // read once: save and break agree
                if (stop || (every > 0 && o.epochs_run % every == 0)) save();
                if (stop) break;
            }
            if (!p.finished) { // stopped by a signal, its progress saved
                stopped = true;
                break;
            }
            // Test with the best state; the final state stays in `state`.
            std::swap(state.params, best);
            o.test = trainer.evaluate(state, dom.test, ks, ties);
            std::swap(state.params, best);
            o.popularity = evaluate_popularity(dom, dom.test, ks, ties);
            Json t = Json::object();
            t["event"] = "test";
            t["client"] = k;
            t["domain"] = spec.domain;
            t["shard"] = spec.shard;
            t["best_epoch"] = o.best_epoch;
            t["epochs_run"] = o.epochs_run;
            t["test"] = metrics_json(o.test);
            t["popularity"] = metrics_json(o.popularity);
            o.epoch_lines += to_json_text(t) + "\n";
            save();
            outcomes[k] = o;
            progress.finished(spec.train_rows);
            progress.tick("", true);
            // After a finished client: stop before the next one, if there is one.
            bool more = false;
            for (int64_t j = k + 1; j < K; ++j) more = more || rc.owner[size_t(j)] == comm.rank();
            stopped = more && stop_requested();
        }
    });

    FinetuneReport report;
    report.mode = mode;
    report.ties = tie_rule_name(ties);
    // Relative to results.json's directory: the file's bytes do not depend on where the run is.
    report.from = relative_to(from, dir);
    report.prepared = relative_to(rc.prepared, dir);
    report.fingerprint = rc.manifest.fingerprint;
    if (comm.any(stopped)) {
        int64_t done = int64_t(outcomes.size());
        comm.allreduce_sum(&done, 1);
        if (comm.rank() == 0)
            log.info("finetune: stopped by a signal with " + std::to_string(done) + " of " +
                     std::to_string(n_stage) + " clients finished; progress saved in " + ckpt_dir +
                     "/progress; run the same command again to continue");
        report.status = exit_code_preempted;
        return report;
    }

    // Every client's outcome on every rank (the stage's checkpoint records them).
    const std::map<int64_t, ClientOutcome> all =
        gather_to_all(comm, rc, outcomes, serialize, deserialize);

    // The stage's checkpoint: every client's final and best model, streamed from its progress
    // file (names: federation/checkpoint_state.hpp); then the progress files go.
    if (!finished_stage) {
        Stopwatch sw;
        CheckpointHeader h;
        h.stage = ckpt::stage_finetune;
        int64_t epochs = 0;
        for (const auto& [id, o] : all) epochs = std::max(epochs, o.epochs_run);
        h.round = epochs;
        h.seed = base.seed;
        h.software_version = software_version;
        h.config_yaml = opt.config.to_yaml();
        h.algorithm = "finetune-" + mode;
        h.prepared_fingerprint = rc.manifest.fingerprint;
        std::vector<ClientSpec> tuned; // every client of this stage
        for (const auto& s : rc.specs)
            if (rc.owner[size_t(s.id)] >= 0) tuned.push_back(s);
        CheckpointContent c = finetune_checkpoint(layout, std::move(h), tuned, false);
        for (auto& m : c.clients) {
            ClientProgress p;
            p.finished = true;
            p.from = relative_to(from, ckpt_dir);
            p.outcome = all.at(m.id);
            p.epochs_done = p.outcome.epochs_run;
            p.best_epoch = p.outcome.best_epoch;
            p.best_score = p.outcome.best_score;
            p.bad_epochs = p.outcome.bad_epochs;
            m.stage_state = progress_text(p);
        }
        // The stage checkpoint needs about as much disk as the progress files it is made of.
        // If the file system cannot hold it besides them (write_checkpoint's estimate), a
        // client's progress file goes once its tensors are written into the temp file (when the
        // next client is fetched, which the writer does only while no write has failed): a
        // failure later in the write then costs recomputing those clients on the rerun (same
        // results), never a wrong result.
        int64_t progress_bytes = 0;
        for (const auto& s : tuned) {
            if (rc.owner[size_t(s.id)] != comm.rank()) continue;
            std::error_code ec;
            const auto size = fs::file_size(latest_checkpoint(progress_dir(ckpt_dir, s.id)), ec);
            if (!ec) progress_bytes += int64_t(size);
        }
        comm.allreduce_sum(&progress_bytes, 1);
        std::error_code space_ec;
        const auto space = fs::space(ckpt_dir, space_ec);
        const bool delete_as_streamed =
            !space_ec && int64_t(space.available) < checkpoint_size_estimate(c);
        if (delete_as_streamed) c.reclaimable_bytes = progress_bytes;
        if (delete_as_streamed && comm.rank() == 0)
            log.info("finetune: " + thousands(int64_t(space.available >> 20)) + " MiB free for a " +
                     thousands(progress_bytes >> 20) +
                     " MiB stage checkpoint: each progress file is deleted once it is written");
        // One client's buffers at a time, refilled by each fetch.
        std::unique_ptr<ModelState> state;
        AlignedBuffer<float> best;
        std::string written_dir; // the previous fetch's progress directory
        for (const auto& s : tuned) {
            if (rc.owner[size_t(s.id)] != comm.rank()) continue;
            CheckpointContent::Owned o;
            o.id = s.id;
            o.rng_counter = all.at(s.id).epochs_run;
            o.adam_step = all.at(s.id).adam_steps;
            const int64_t epochs = o.rng_counter;
            o.fetch = [&, s, epochs] {
                if (delete_as_streamed && !written_dir.empty()) fs::remove_all(written_dir);
                const std::string dir_k = progress_dir(ckpt_dir, s.id);
                const std::string file = latest_checkpoint(dir_k);
                check(!file.empty(), dir_k, ": progress file missing");
                state = std::make_unique<ModelState>(client_layout(s));
                best.resize(size_t(state->layout.total()));
                {
                    const CheckpointReader r(file);
                    check(r.header().round == epochs &&
                              parse_progress(r.clients()[0].stage_state, file).finished,
                          file, ": expected the finished state after ", epochs, " epochs");
                    read_finetune_state(r, s.id, *state, best.data());
                }
                written_dir = dir_k;
                return finetune_owned({s, state.get(), best.data(), epochs}, false).data;
            };
            c.owned.push_back(std::move(o));
        }
        const std::string written =
            write_checkpoint(comm, ckpt_dir, c, opt.checkpoint.keep, faults.checkpoint);
        const auto [rss, peak] = rss_mib();
        log.progress("finetune: checkpoint " + written + " (" + std::to_string(tuned.size()) +
                     " clients) in " + duration_text(sw.seconds()) + "; RSS " +
                     std::to_string(int64_t(rss)) + " MiB (peak " + std::to_string(int64_t(peak)) +
                     ")");
    }
    // The stage's checkpoint is complete: progress files are redundant (also a crashed
    // run's, found by a rerun).
    agree_on_errors(comm, [&] {
        for (const auto& s : rc.specs) {
            if (rc.owner[size_t(s.id)] != comm.rank()) continue;
            std::error_code ec;
            fs::remove_all(progress_dir(ckpt_dir, s.id), ec);
            check(!ec, progress_dir(ckpt_dir, s.id), ": cannot remove: ", ec.message());
        }
    });
    if (comm.rank() == 0) {
        std::error_code ec;
        fs::remove((fs::path(ckpt_dir) / "progress"), ec); // only if empty
    }

    // Rank 0 writes the stage's outputs; a failed write (disk full) stops every rank, agreed.
    agree_on_errors(comm, [&] {
        if (comm.rank() != 0) return;
        std::string metrics_text;
        for (const auto& [id, o] : all) metrics_text += o.epoch_lines;
        write_text_file_atomic((std::filesystem::path(dir) / "metrics.jsonl").string(),
                               metrics_text);
        // Per domain: the row-weighted merge of its clients (shards), then the mean over domains.
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
            << report.mean.recall[0] << " (ties: " << report.ties << ") in " << std::setprecision(1)
            << report.seconds << " s -> " << dir << "/results.json\n";
    });
    out.unsetf(std::ios::fixed);
    return report;
}

} // namespace pfcr
