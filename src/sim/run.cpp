// `pfcr run`: the whole experiment in one command, under mpirun -n R. prepare (rank 0, only if
// prepared.h5 is missing or stale: a data-shaping config key or an input file's sha256 differs
// from its manifest) -> pretrain into <output_dir>/pretrain (skipped for algorithm `local`;
// resumes if its checkpoints are there) -> finetune every client from the newest pre-training
// checkpoint into <output_dir>/finetune -> <output_dir>/results.json and a printed table.
// The stages are the same drivers as the subcommands; nothing is computed here.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/comm.hpp"
#include "io/sha256.hpp"
#include "report/report.hpp"
#include "sim/commands.hpp"
#include "sim/signals.hpp"

namespace pfcr {

std::string stale_reason(const Config& cfg, const std::string& path) {
    if (!std::filesystem::exists(path)) return "missing";
    const PreparedData d = read_prepared(path);
    const auto& m = d.manifest;
    const Config then = Config::from_yaml_text(m.config_yaml, path + ":/manifest/config_yaml");
    if (const std::string key = first_difference(cfg, then, role_shapes_prepared); !key.empty())
        return "config key '" + key + "' changed (" + then.value_text(key) + " -> " +
               cfg.value_text(key) + ")";
    for (size_t i = 0; i < m.input_files.size(); ++i) {
        if (!std::filesystem::exists(m.input_files[i])) return m.input_files[i] + " is gone";
        if (sha256_file(m.input_files[i]) != m.input_sha256[i])
            return m.input_files[i] + " changed (sha256)";
    }
    return "";
}

std::string relative_to(const std::string& path, const std::string& base) {
    if (path.empty()) return path;
    const auto abs = [](const std::string& p) {
        return std::filesystem::absolute(p).lexically_normal();
    };
    return abs(path).lexically_proximate(abs(base)).string();
}

namespace {

// The options of a stage: the run's, with one path key changed.
Options with(const Options& o, const std::string& key, const std::string& value) {
    return with_key(o, key, quote_string(value), "pfcr run");
}

} // namespace

int run_experiment(const Options& opt, Comm& comm, const Logger& log, std::ostream& out,
                   const FaultInjection& faults) {
    Stopwatch total;
    const Config& cfg = opt.config;
    const std::filesystem::path dir = opt.output_dir;
    // 0. What can be checked before prepare writes anything: the directories, and enough
    //    clients for the ranks (the stages check again on the prepared data).
    agree_on_errors(comm, [&] {
        check_output_dir(dir.string(), "output_dir");
        // data.prepared's directory only if prepare will write there (it may be read-only).
        const std::filesystem::path prepared_dir =
            std::filesystem::path(opt.prepared).parent_path();
        if (comm.rank() == 0 && !stale_reason(cfg, opt.prepared).empty())
            check_output_dir(prepared_dir.empty() ? "." : prepared_dir.string(), "data.prepared");
        const int64_t shards = opt.shards_per_domain;
        const int64_t domains = int64_t(opt.prepare.domains.size());
        const int64_t tuned =
            opt.finetune.domains.empty() ? domains : int64_t(opt.finetune.domains.size());
        const int64_t clients = tuned * shards; // fine-tuning; pre-training has as many or 1
        check(domains == 0 || comm.size() <= clients, comm.size(), " ranks but only ", clients,
              " clients (", tuned, " domains x data.shards_per_domain ", shards,
              "): every rank needs at least one client; use fewer ranks or more clients");
    });
    agree_on_errors(comm, [&] {
        if (comm.rank() == 0) std::filesystem::create_directories(dir);
    });
    const std::string prepared = opt.prepared;
    const Options run_opt = with(opt, "data.prepared", prepared);

    // 1. prepare, on rank 0; the others wait asleep (a blocking collective would poll and take a
    //    core from faiss's threads), then all learn the outcome (rank 0's message).
    agree_on_errors_quietly(comm, [&] {
        if (comm.rank() != 0) return;
        const std::string why = stale_reason(cfg, prepared);
        if (why.empty()) {
            log.info("prepare: " + prepared + " is up to date");
        } else {
            log.info("prepare: " + prepared + " " + why + "; preparing");
            std::ostringstream summary; // the table stays quiet; the summary line is logged
            log.info(prepared_line(run_prepare(
                with(opt, "output_dir", std::filesystem::path(prepared).parent_path().string()),
                log, summary)));
        }
    });
    const double t_prepare = total.seconds();

    // 2. pretrain (not for local-only), 3. finetune from its newest checkpoint.
    const bool local = opt.federation.algorithm == Algorithm::local;
    std::ostringstream stage_out;
    Stopwatch sw;
    std::string from;
    if (!local) {
        const PretrainReport pre =
            run_pretrain(with(run_opt, "output_dir", (dir / "pretrain").string()), comm, log,
                         stage_out, "", faults);
        if (pre.status != 0) {
            if (comm.rank() == 0)
                out << stage_out.str() // "pretrain: preempted after R of N rounds; ..."
                    << "run: pre-training stopped by a signal; run the same command again to "
                       "resume\n";
            return pre.status;
        }
        from = pre.checkpoint; // also where checkpoint.dir put it
        // The stage's summary (s/round, client state, peak RSS) is progress output here.
        if (comm.rank() == 0 && !stage_out.str().empty())
            log.info(std::string(trim(stage_out.str())));
    }
    const double t_pretrain = sw.seconds();
    sw.reset();
    std::ostringstream finetune_out; // its summary line is replaced by the run's
    const FinetuneReport report =
        run_finetune(with(run_opt, "output_dir", (dir / "finetune").string()), comm, log,
                     finetune_out, from, faults);
    const double t_finetune = sw.seconds();
    if (report.status != 0) {
        if (comm.rank() == 0)
            out << "run: fine-tuning stopped by a signal; run the same command again to resume\n";
        return report.status;
    }
    // Rank 0 writes the run's outputs; a failed write (disk full) stops every rank, agreed.
    agree_on_errors(comm, [&] {
        if (comm.rank() != 0) return;
        // results.json of the run: the fine-tuning results plus what produced them.
        const std::string algorithm = algorithm_name(opt.federation.algorithm);
        const std::string privacy = mechanism_name(opt.federation.privacy.mechanism);
        Json results = results_json(report);
        results["algorithm"] = algorithm;
        results["shared"] = opt.federation.share_whole_model ? "whole" : "table";
        results["privacy"] = privacy;
        results["seed"] = opt.seed;
        // Paths relative to the run's directory: results.json has the same bytes wherever it is.
        results["from"] = results["pretrain_checkpoint"] = relative_to(from, dir.string());
        results["prepared"] = relative_to(prepared, dir.string());
        write_text_file_atomic((dir / "results.json").string(), to_json_text(results) + "\n");
        // Wall-clock seconds of this invocation's stages (to 1 ms), apart from results.json, whose
        // bytes do not depend on how the run was scheduled, interrupted or resumed.
        const auto ms = [](double s) { return std::round(s * 1000) / 1000; };
        Json timing = Json::object();
        timing["time_s"] = {
            {"prepare", ms(t_prepare)}, {"pretrain", ms(t_pretrain)}, {"finetune", ms(t_finetune)}};
        write_text_file_atomic((dir / "timing.json").string(), to_json_text(timing) + "\n");
        write_text_file_atomic((dir / "config.resolved.yaml").string(), cfg.to_yaml());
        out << results_table(report);
        out << "run: " << algorithm << " + finetune " << opt.finetune.mode << ", privacy "
            << privacy << ", seed " << opt.seed << ": prepare " << std::fixed
            << std::setprecision(1) << t_prepare << " s, pretrain " << t_pretrain << " s, finetune "
            << t_finetune << " s -> " << (dir / "results.json").string() << "\n";
    });
    out.unsetf(std::ios::fixed);
    return 0;
}

} // namespace pfcr
