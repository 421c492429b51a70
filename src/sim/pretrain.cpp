// `pfcr pretrain` (PFCR stage 1): builds the clients (every domain, each of its
// data.shards_per_domain user shards, or one pooled client for `centralized`), assigns them to
// MPI ranks by the balanced rule, keeps only this rank's clients' data, and drives the rounds
// of federation/engine.hpp. Rank 0 writes metrics.jsonl (one line per round: per-client train
// loss, sampled clients, aggregate norm, bytes, phase timings) and a grep-able summary line.
// Everything except the "time" fields has the same bytes for any rank or thread count.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>

#include <tbb/global_control.h>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "federation/checkpoint_state.hpp"
#include "federation/clients.hpp"
#include "federation/engine.hpp"
#include "federation/fixed_point.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/checkpoint_schema.hpp"
#include "io/comm.hpp"
#include "pfcr/version.hpp"
#include "report/report.hpp"
#include "sim/client_results.hpp"
#include "sim/commands.hpp"
#include "sim/run_clients.hpp"
#include "sim/signals.hpp"

namespace pfcr {
namespace {

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0; // Linux: KiB
}

// Max over ranks of non-negative doubles (microsecond resolution; for timings and memory).
std::vector<double> max_over_ranks(Comm& comm, const std::vector<double>& v) {
    std::vector<int64_t> q(v.size());
    for (size_t i = 0; i < v.size(); ++i) q[i] = int64_t(std::llround(v[i] * 1e6));
    comm.allreduce_max(q.data(), int64_t(q.size()));
    std::vector<double> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = double(q[i]) * 1e-6;
    return out;
}

// Returns the checkpoint's path.
std::string save(Federation& fed, const Options& opt, const std::string& prepared_fingerprint,
                 Comm& comm, int64_t rounds_done, const CheckpointFaults& faults) {
    const auto& trace = fed.options().system.trace;
    CheckpointHeader h;
    h.stage = ckpt::stage_pretrain;
    h.round = rounds_done;
    h.seed = opt.seed;
    h.software_version = software_version;
    h.config_yaml = opt.config.to_yaml();
    h.algorithm = algorithm_name(fed.options().algorithm);
    h.prepared_fingerprint = prepared_fingerprint;
    h.trace_sha256 = trace ? trace->sha256 : "";
    return write_checkpoint(comm, opt.checkpoint.dir, pretrain_checkpoint(fed, std::move(h)),
                            opt.checkpoint.keep, faults);
}

// Loads `path` into the federation (every rank reads its own clients); returns rounds done.
int64_t restore(Federation& fed, const Options& opt, const RunClients& rc,
                const std::string& path) {
    const CheckpointReader r(path);
    check_prepared(r, rc, opt.checkpoint.allow_other_prepared);
    const auto& h = r.header();
    check(h.stage == ckpt::stage_pretrain, path, ": stage '", h.stage, "', expected '",
          ckpt::stage_pretrain, "'");
    // Keys that shape the trajectory must match; locations, speed, budget, checkpoint policy
    // and later stages' keys may change (key roles, io/config.hpp).
    const Config saved = Config::from_yaml_text(h.config_yaml, path + ":/config_yaml");
    check_agrees(opt.config, saved, role_shapes_pretraining, path,
                 "resume with the checkpoint's config or use another output_dir");
    const auto& trace = fed.options().system.trace;
    check(h.trace_sha256 == (trace ? trace->sha256 : ""), path,
          ": trained on an availability trace with SHA-256 '", h.trace_sha256, "', but ",
          trace ? trace->path + " now has " + trace->sha256 : std::string("none is given now"),
          "; restore the trace the run started with or use another output_dir");
    restore_pretrain_state(fed, r);
    return h.round;
}

// metrics.jsonl lines of rounds before `round` (a resumed run continues the file).
std::string metrics_before(const std::string& file, int64_t round) {
    std::ifstream in(file);
    std::string line, kept;
    while (std::getline(in, line)) {
        const Json j = Json::parse(line, nullptr, false); // a torn last line is dropped
        if (j.is_discarded() || !j.is_object()) continue;
        const std::string event = j.value("event", "");
        if (event != "round" && event != "server_step" && event != "valid") continue;
        if (j.value("round", int64_t(-1)) < round) kept += line + "\n";
    }
    return kept;
}

// Validation metrics of every client's current model (federation.eval_every): per client and
// metric "<name>@<K>" (eval.topk x Recall/NDCG), computed by its owner and summed over ranks in
// fixed point (each value in [0, 1]); then the valid-rows-weighted mean over clients in id
// order. The same bits for any rank or thread count.
Json validate_clients(Federation& fed, const Options& opt, const TrainOptions& base, Comm& comm,
                      int64_t round) {
    const auto& all = fed.all_clients();
    const int64_t K = int64_t(all.size());
    const auto& ks = opt.eval.topk;
    const int64_t M = 2 * int64_t(ks.size()) + 1; // recall@k..., ndcg@k..., rows
    std::vector<int64_t> acc(size_t(K * M), 0);
    const int bits = 40;
    ModelState state(base.hp.shape);
    agree_on_errors(comm, [&] { // an evaluation failing on one rank must not hang the others
        for (const auto& c : fed.clients()) {
            fed.materialize(c, state.params.data());
            double rows = 0;
            std::vector<double> sums(size_t(M - 1), 0.0);
            for (const PreparedDomain* d : c.data) { // several only for the pooled client
                Trainer t(base, *d);
                const EvalResult e = t.evaluate(state, d->valid, ks, opt.eval.ties);
                for (size_t i = 0; i < ks.size(); ++i) {
                    sums[i] += e.recall[i] * double(e.rows);
                    sums[ks.size() + i] += e.ndcg[i] * double(e.rows);
                }
                rows += double(e.rows);
            }
            // The client's means in [0, 1], as integers with `bits` fractional bits.
            std::vector<double> mean(size_t(M - 1));
            for (int64_t i = 0; i + 1 < M; ++i)
                mean[size_t(i)] = rows > 0 ? sums[size_t(i)] / rows : 0;
            int64_t* out = acc.data() + c.spec.id * M;
            for (int64_t i = 0; i + 1 < M; ++i)
                out[i] = int64_t(std::llround(mean[size_t(i)] * std::ldexp(1.0, bits)));
            out[M - 1] = int64_t(rows);
        }
    });
    comm.allreduce_sum(acc.data(), K * M);
    Json line = Json::object();
    line["event"] = "valid";
    line["round"] = round;
    line["sim_time_s"] = fed.sim_time_s();
    double total_rows = 0;
    std::vector<double> mean(size_t(M - 1), 0.0);
    for (int64_t k = 0; k < K; ++k) {
        const double rows = double(acc[size_t(k * M + M - 1)]);
        total_rows += rows;
        for (int64_t i = 0; i + 1 < M; ++i)
            mean[size_t(i)] += rows * double(acc[size_t(k * M + i)]) * std::ldexp(1.0, -bits);
    }
    for (size_t i = 0; i < ks.size(); ++i) {
        const std::string k = std::to_string(ks[i]);
        line["recall@" + k] = total_rows > 0 ? mean[i] / total_rows : 0.0;
        line["ndcg@" + k] = total_rows > 0 ? mean[ks.size() + i] / total_rows : 0.0;
    }
    line["rows"] = int64_t(total_rows);
    return line;
}

// The availability trace (system.trace): rank 0 reads the file and sends its bytes to every
// rank, so all ranks plan with the same trace (even if their file systems differ); a read or
// parse error is the same on every rank.
std::shared_ptr<const AvailabilityTrace> load_trace(const FederationOptions& fed,
                                                    const RunClients& rc, Comm& comm) {
    const std::string& path = fed.system.trace_path;
    std::string text, error;
    if (comm.rank() == 0) {
        try {
            text = read_availability_trace_text(path);
        } catch (const Error& e) {
            error = e.what();
        }
    }
    error = broadcast_string(comm, error, 0);
    check(error.empty(), error);
    text = broadcast_string(comm, text, 0);
    return std::make_shared<const AvailabilityTrace>(
        parse_availability_trace(text, path, int64_t(rc.specs.size())));
}

// "median 1.2 s (min 0.4, max 9.1)" of the clients' participation seconds.
std::string spread_text(std::vector<double> v) {
    if (v.empty()) return "-";
    std::sort(v.begin(), v.end());
    std::ostringstream os;
    os << std::setprecision(3) << "median " << v[v.size() / 2] << " (min " << v.front() << ", max "
       << v.back() << ")";
    return os.str();
}

Json ids_json(const std::vector<int64_t>& ids) {
    Json a = Json::array();
    for (int64_t k : ids) a.push_back(k);
    return a;
}

} // namespace

PretrainReport run_pretrain(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                            const std::string& resume, const FaultInjection& faults) {
    Stopwatch total_time;
    PretrainReport report;
    FederationOptions fed = opt.federation; // + the availability trace, loaded below
    const int64_t rounds = opt.rounds;
    const std::string& dir = opt.output_dir;
    const std::string& ckpt_dir = opt.checkpoint.dir;
    TrainOptions base = opt.train;
    base.hp.shape.head = HeadMode::none; // pre-training never has a fine-tuning head

    // Set-up: the data, the clients, the resumed checkpoint and its config, checked on every
    // rank and agreed on before any output is touched (one failing rank stops all cleanly).
    RunClients rc;
    std::unique_ptr<Federation> federation_ptr;
    int64_t start = 0;
    agree_on_errors(comm, [&] {
        check_output_dir(dir, "output_dir");
        check_output_dir(ckpt_dir, "checkpoint.dir");
        rc = load_run_clients(opt, comm, fed.algorithm == Algorithm::centralized);
        if (!fed.system.trace_path.empty()) fed.system.trace = load_trace(fed, rc, comm);
        federation_ptr = std::make_unique<Federation>(fed, base, opt.initializer_range, rc.specs,
                                                      rc.owner, comm);
        for (int64_t k = 0; k < int64_t(rc.specs.size()); ++k)
            if (rc.owner[size_t(k)] == comm.rank())
                federation_ptr->add_client(k, rc.data[size_t(k)]);
        // Resume: an explicit checkpoint (file, or a directory's newest), else the newest
        // complete checkpoint of this run's checkpoint directory, if any.
        std::string from = resume;
        if (!from.empty() && std::filesystem::is_directory(from)) {
            const std::string latest = latest_checkpoint(from);
            check(!latest.empty(), from, ": --resume: no complete checkpoint (round_*.h5) here");
            from = latest;
        }
        if (from.empty()) from = latest_checkpoint(ckpt_dir);
        if (!from.empty()) {
            start = restore(*federation_ptr, opt, rc, from);
            report.checkpoint = from;
            check(start <= rounds, from, ": already has ", start,
                  " rounds; federation.rounds = ", rounds, " (raise it to continue)");
            log.info("resumed from " + from + " after round " + std::to_string(start - 1) +
                     (start == rounds ? " (all federation.rounds done)" : ""));
        }
    });
    Federation& federation = *federation_ptr;
    federation.set_client_hook(faults.before_client_trains);
    const int64_t K = int64_t(rc.specs.size());
    int64_t client_bytes = 0;
    for (const auto& c : federation.clients()) client_bytes += c.bytes();
    const int64_t every = opt.checkpoint.every;

    std::ofstream metrics;
    agree_on_errors(comm, [&] { // rank 0's outputs; a failure there stops every rank
        if (comm.rank() != 0) return;
        std::filesystem::create_directories(dir);
        const std::string file = (std::filesystem::path(dir) / "metrics.jsonl").string();
        const std::string kept = start > 0 ? metrics_before(file, start) : "";
        metrics.open(file, std::ios::trunc);
        check_io(bool(metrics), file, ": cannot open for writing");
        metrics << kept << std::flush;
        check_io(bool(metrics), file, ": write failed", disk_full_note(file));
        write_text_file_atomic((std::filesystem::path(dir) / "config.resolved.yaml").string(),
                               opt.config.to_yaml());
    });
    if (comm.rank() == 0) {
        std::ostringstream os;
        os << "pretrain: " << algorithm_name(fed.algorithm) << ", " << K << " clients on "
           << comm.size() << " ranks, rounds " << start << ".." << rounds - 1 << ", shared "
           << (federation.shared_end() - federation.shared_begin())
           << " floats, client state at most " << std::fixed << std::setprecision(1)
           << double(federation.dense_client_bytes()) / 1048576.0
           << " MiB per client (Adam moments of touched rows only; now "
           << double(client_bytes) / double(std::max<size_t>(federation.clients().size(), 1)) /
                  1048576.0
           << " MiB per client); " << describe(fed.privacy);
        log.info(os.str());
        std::vector<double> secs, speeds;
        for (const auto& c : rc.specs) {
            const ClientProfile& p = federation.profiles()[size_t(c.id)];
            speeds.push_back(p.s_per_sample * 1e3);
            secs.push_back(participation_seconds(p, c.train_rows * fed.local_epochs, 0, 0));
        }
        std::ostringstream sys;
        sys << "virtual clock: " << (fed.mode == FederationMode::async ? "async (FedBuff)" : "sync")
            << "; compute " << dist_kind_name(fed.system.compute.kind) << " ("
            << fed.system.compute.a << ", " << fed.system.compute.b << "): ms/sample "
            << spread_text(speeds) << ", local training s/participation " << spread_text(secs)
            << "; down " << dist_kind_name(fed.system.down_mbps.kind) << " ("
            << fed.system.down_mbps.a << ", " << fed.system.down_mbps.b << ") Mbit/s, up "
            << dist_kind_name(fed.system.up_mbps.kind) << " (" << fed.system.up_mbps.a << ", "
            << fed.system.up_mbps.b << ") Mbit/s; availability "
            << (fed.system.trace ? "trace " + fed.system.trace_path + " (" +
                                       std::to_string(fed.system.trace->ignored_lines) +
                                       " lines of clients beyond this run ignored)"
                : fed.system.onoff ? std::string("on/off")
                                   : std::string("always"));
        if (fed.mode == FederationMode::sync)
            sys << "; deadline " << fed.deadline_s << " s, over-commit " << fed.overcommit;
        else
            sys << "; concurrency " << federation.async_options().concurrency << ", buffer "
                << federation.async_options().buffer_size << ", max staleness " << fed.max_staleness
                << " (0 = none), weight " << staleness_weight_name(fed.staleness_weight);
        log.info(sys.str());
        if (fed.privacy.mechanism == PrivacyMechanism::pfcr_reference)
            log.info("WARNING: privacy.mechanism pfcr-reference reproduces the published PFCR "
                     "arithmetic; it is NOT a valid local-DP mechanism (see docs/PRIVACY.md)");
    }

    double round_seconds = 0;
    bool stopped = false;
    Stopwatch loop_time; // for the progress line's throughput and ETA (this invocation's rounds)
    for (int64_t round = start; round < rounds; ++round) {
        const RoundResult r = federation.run_round(round);
        Json valid; // federation.eval_every: every client's model on its validation split
        if (opt.eval_every > 0 && (round + 1) % opt.eval_every == 0) // (not tied to rounds: resume)
            valid = validate_clients(federation, opt, base, comm, round);
        // Every rank learns of a signal that reached any rank (srun signals all; a user's kill
        // may reach one), and all of them stop after this round.
        stopped = comm.any(stop_requested());
        const bool last = round + 1 == rounds;
        double t_ckpt = 0;
        const bool saved = last || stopped || (every > 0 && (round + 1) % every == 0);
        if (saved) {
            Stopwatch sw;
            report.checkpoint =
                save(federation, opt, rc.manifest.fingerprint, comm, round + 1, faults.checkpoint);
            t_ckpt = sw.seconds();
        }
        const auto t =
            max_over_ranks(comm, {r.t_local, r.t_aggregate, r.t_communicate, r.t_server, t_ckpt});
        round_seconds += t[0] + t[1] + t[2] + t[3];
        // Rank 0's metrics line; a failed write (disk full) stops every rank, agreed.
        agree_on_errors(comm, [&] {
            if (comm.rank() != 0) return;
            std::vector<char> active(size_t(K), 0);
            for (int64_t k : r.participants) active[size_t(k)] = 1;
            const bool async = fed.mode == FederationMode::async;
            Json line = Json::object();
            line["event"] = async ? "server_step" : "round";
            line["round"] = round;
            Json losses = Json::array();
            for (int64_t k = 0; k < K; ++k) // null: not sampled this round
                losses.push_back(active[size_t(k)] ? Json(double(float(r.loss[size_t(k)])))
                                                   : Json(nullptr));
            line["train_loss"] = std::move(losses);
            line["clients"] = r.participants; // whose updates were aggregated
            if (async)
                line["staleness"] = r.staleness;
            else
                line["sampled"] = r.sampled;
            line["sim_start_s"] = r.sim_start_s;
            line["sim_time_s"] = r.sim_end_s;
            Json dropped = Json::object(), dropped_ids = Json::object();
            const std::pair<const char*, const std::vector<int64_t>*> causes[] = {
                {"deadline", &r.dropped_deadline},
                {"unavailable", &r.dropped_unavailable},
                {"overcommit", &r.dropped_overcommit},
                {"stale", &r.dropped_stale}};
            for (const auto& [cause, ids] : causes) {
                dropped[cause] = int64_t(ids->size());
                dropped_ids[cause] = ids_json(*ids);
            }
            line["dropped"] = std::move(dropped);
            line["dropped_clients"] = std::move(dropped_ids);
            line["wasted_client_s"] = r.wasted_client_s;
            line["aggregate_norm"] = r.aggregate_norm;
            line["bytes_up_per_client"] = r.bytes_up_per_client;
            line["bytes_down_per_client"] = r.bytes_down_per_client;
            line["privacy"] = {{"mechanism", mechanism_name(fed.privacy.mechanism)},
                               {"epsilon_round", r.privacy.epsilon_round}, // inf -> null
                               {"epsilon_total", r.privacy.epsilon_total},
                               {"delta", r.privacy.delta},
                               {"valid_ldp", r.privacy.valid_ldp}};
            line["time"] = {{"local_train", t[0]},
                            {"aggregate", t[1]},
                            {"communicate", t[2]},
                            {"server", t[3]},
                            {"checkpoint", t[4]}};
            metrics << to_json_text(line) << "\n";
            if (!valid.is_null()) metrics << to_json_text(valid) << "\n";
            metrics << std::flush;
            check_io(bool(metrics), dir, "/metrics.jsonl: write failed for round ", round,
                     disk_full_note(dir),
                     saved ? "; the round's checkpoint is written, so a run resumed from it "
                             "will lack this line"
                           : "");
            std::ostringstream progress;
            progress << (async ? "step " : "round ") << round << "  loss";
            for (int64_t k = 0; k < K && k < 8; ++k) {
                if (active[size_t(k)])
                    progress << " " << std::fixed << std::setprecision(4) << r.loss[size_t(k)];
                else
                    progress << " -";
            }
            if (K > 8) progress << " ...";
            int64_t rows = 0;
            for (int64_t k : r.participants) rows += rc.specs[size_t(k)].train_rows;
            const size_t n_dropped = r.dropped_deadline.size() + r.dropped_unavailable.size() +
                                     r.dropped_overcommit.size() + r.dropped_stale.size();
            progress << "  sim " << duration_text(r.sim_end_s) << ", " << r.participants.size()
                     << " aggregated";
            if (n_dropped > 0) progress << ", " << n_dropped << " dropped";
            if (!valid.is_null())
                progress << ", valid " << opt.eval.valid_metric << " " << std::setprecision(4)
                         << std::fixed << valid.value(opt.eval.valid_metric, 0.0);
            const double wall = loop_time.seconds();
            const int64_t done = round + 1 - start, left = rounds - round - 1;
            progress << std::fixed << std::setprecision(2) << "  (" << t[0] << " s local, " << t[2]
                     << " s allreduce, " << t[4] << " s checkpoint; "
                     << thousands(int64_t(double(rows * fed.local_epochs) /
                                          std::max(t[0] + t[1] + t[2] + t[3], 1e-9)))
                     << " rows/s)  " << round + 1 << "/" << rounds << " rounds"
                     << (left > 0 ? ", ETA " + duration_text(wall / double(done) * double(left))
                                  : std::string());
            log.info(progress.str());
        });
        if (stopped && !last) {
            if (comm.rank() == 0) {
                metrics << to_json_text({{"event", "preempted"}, {"rounds_done", round + 1}})
                        << "\n";
                log.info("stop signal: checkpoint after round " + std::to_string(round) +
                         " written to " + ckpt_dir + "; exiting with status " +
                         std::to_string(exit_code_preempted) + " (resume by running again)");
                out << "pretrain: preempted after " << round + 1 << " of " << rounds
                    << " rounds; checkpoint in " << ckpt_dir << "\n";
            }
            report.status = exit_code_preempted;
            report.rounds_done = round + 1;
            return report;
        }
    }
    // Checksum of the whole final state (server + every client's private parameters), the
    // same on every rank: per-client sums travel in fixed point, then add up in id order.
    std::vector<int64_t> client_sums(static_cast<size_t>(K), 0);
    for (const auto& c : federation.clients()) {
        double s = 0;
        for (int64_t i = 0; i < c.private_params.size(); ++i) s += double(c.private_params[i]);
        const float f = float(s);
        encode_add(client_sums.data() + c.spec.id, &f, 1, 1.0, 20, fixed_point_max_abs(1));
    }
    comm.allreduce_sum(client_sums.data(), K);
    double sum = 0;
    for (float v : federation.server_params()) sum += double(v);
    for (int64_t k = 0; k < K; ++k) sum += double(client_sums[size_t(k)]) * std::ldexp(1.0, -20);
    int64_t held = 0; // what the clients persist now, summed over ranks
    for (const auto& c : federation.clients()) held += c.bytes();
    comm.allreduce_sum(&held, 1);
    const auto mem = max_over_ranks(comm, {peak_rss_mib()});
    if (comm.rank() == 0) {
        std::ostringstream s;
        s << std::setprecision(17) << sum;
        metrics << to_json_text({{"event", "end"}, {"rounds", rounds}, {"state_sum", sum}}) << "\n";
        out << "pretrain: " << algorithm_name(fed.algorithm) << ", " << K << " clients, "
            << comm.size() << " ranks, " << rounds << " rounds, " << std::fixed
            << std::setprecision(2) << round_seconds / double(std::max<int64_t>(rounds, 1))
            << " s/round, " << std::setprecision(1) << total_time.seconds()
            << " s total, client state "
            << double(held) / double(std::max<int64_t>(K, 1)) / 1048576.0
            << " MiB per client, peak RSS " << mem[0] << " MiB/rank, state_sum " << s.str()
            << " -> " << dir << "/metrics.jsonl\n";
    }
    report.rounds_done = rounds;
    return report;
}

} // namespace pfcr
