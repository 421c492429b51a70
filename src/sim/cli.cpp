// The `pfcr` command line (sim/main.cpp calls run_cli): parses the subcommands, resolves the
// options once, sets up MPI, threads, logger and stop-signal handlers, calls one driver, and is
// the single place that catches errors, prints `[rank r] error: ...` and chooses the exit
// status. A library function so that tests can run the real command line with faults injected
// (tests/cli/pfcr_faults.cpp); no stage logic lives here.
#include <CLI/CLI.hpp>
#include <tbb/global_control.h>

#include <iostream>
#include <memory>
#include <thread>

#include "core/error.hpp"
#include "core/heap.hpp"
#include "core/log.hpp"
#include "io/comm.hpp"
#include "io/config.hpp"
#include "io/h5.hpp"
#include "pfcr/version.hpp"
#include "sim/cli.hpp"
#include "sim/commands.hpp"
#include "sim/signals.hpp"

namespace {

struct ConfigArgs {
    std::vector<std::string> files;
    std::vector<std::string> sets;
    int threads = -1;
    bool quiet = false;
};

void add_config_options(CLI::App* cmd, ConfigArgs& a) {
    cmd->add_option("-c,--config", a.files, "YAML config file; repeat to merge left to right")
        ->check(CLI::ExistingFile);
    cmd->add_option("--set", a.sets,
                    "override one key: --set key=value (repeatable, applied last)");
    cmd->add_option("-t,--threads", a.threads,
                    "worker threads (same as --set run.threads=N; 0 = all)")
        ->check(CLI::Range(0, 4096));
    cmd->add_flag("-q,--quiet", a.quiet, "no progress lines on stderr");
}

// The config files + --set overrides, resolved into typed options once.
pfcr::Options load_options(const ConfigArgs& a) {
    auto sets = a.sets;
    if (a.threads >= 0) sets.push_back("run.threads=" + std::to_string(a.threads));
    return pfcr::resolve_options(pfcr::Config::load(a.files, sets));
}

std::unique_ptr<tbb::global_control> limit_threads(const pfcr::Options& opt) {
    const auto n = opt.threads;
    if (n <= 0) return nullptr;
    return std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                 size_t(n));
}

// An MPI subcommand (pretrain, finetune, evaluate, run): MPI up, config, threads, logger,
// stop-signal handlers, then `body`. A config error and a CollectiveError are every rank's (the
// stages agree on failures with agree_on_errors): printed once, by rank 0; every rank exits with
// the error's status (1, or 74 for an output that could not be written), no MPI_Abort. Any other
// error may be one rank's alone: abort the job so that no rank waits in a collective forever.
// `load` returns the options (every rank loads the same); `print_config`: echo the config first.
template <typename Load, typename Body>
int run_mpi(int& argc, char**& argv, bool quiet, bool print_config, Load load, Body body) {
    pfcr::MpiEnvironment mpi(&argc, &argv);
    pfcr::MpiComm comm;
    const int rank = comm.rank();
    try {
        const pfcr::Options opt = load();
        const auto threads = limit_threads(opt);
        const pfcr::Logger log(rank, quiet || rank != 0, !quiet);
        if (print_config && !quiet && rank == 0) std::cout << opt.config.to_yaml() << std::flush;
        pfcr::install_stop_handlers();
        try {
            return body(opt, comm, log);
        } catch (const pfcr::CollectiveError& e) {
            // Every rank has it, rank 0 with the complete message: printed once.
            if (rank == 0) std::cerr << "[rank 0] error: " << e.what() << std::endl;
            return e.status();
        } catch (const std::exception& e) {
            // One rank's alone, outside an agreed section: the others may wait in a
            // collective forever, so the job is aborted.
            std::cerr << "[rank " << rank << "] error: " << e.what() << std::endl;
            pfcr::MpiEnvironment::abort(dynamic_cast<const pfcr::IoError*>(&e) ? pfcr::exit_io_error
                                                                               : pfcr::exit_error);
        }
    } catch (const std::exception& e) { // config errors: every rank sees the same one
        if (rank == 0) std::cerr << "[rank 0] error: " << e.what() << std::endl;
        return 1;
    }
    return 1;
}

template <typename Body> int run_mpi(int& argc, char**& argv, const ConfigArgs& args, Body body) {
    return run_mpi(
        argc, argv, args.quiet, true, [&] { return load_options(args); }, body);
}

} // namespace

namespace pfcr {

int run_cli(int argc, char** argv, const FaultInjection& faults) {
    set_heap_policy();      // core/heap.hpp: large buffers in their own mappings
    pfcr::h5::initialize(); // before MPI_Init (io/h5.hpp)
    CLI::App app{"pfcr — federated cross-domain recommendation simulator (PFCR, WWW 2024)"};
    app.set_version_flag("--version", std::string("pfcr ") + pfcr::software_version);
    app.require_subcommand(1);

    ConfigArgs synth_args, prepare_args;
    auto* synth = app.add_subcommand(
        "synth",
        "write a synthetic multi-domain dataset (UniSRec atomic files + features); keys synth.*");
    add_config_options(synth, synth_args);

    auto* prepare = app.add_subcommand(
        "prepare",
        "read every domain, featurize items, fit one joint OPQ/PQ quantizer, write prepared.h5");
    add_config_options(prepare, prepare_args);

    ConfigArgs pretrain_args;
    std::string resume;
    auto* pretrain = app.add_subcommand(
        "pretrain",
        "federated pre-training (federation.algorithm, privacy.mechanism) under mpirun -n R; "
        "checkpoints to <output_dir>/ckpt and resumes from the newest one there. Exit status "
        "75 = stopped by SIGTERM/SIGUSR1 after writing a checkpoint (run again to resume)");
    add_config_options(pretrain, pretrain_args);
    pretrain->add_option("--resume", resume,
                         "resume from this checkpoint file, or the newest complete one in this "
                         "directory (default: the run's own checkpoint directory, if any)");

    ConfigArgs finetune_args;
    std::string finetune_mode, finetune_from;
    auto* finetune = app.add_subcommand(
        "finetune", "fine-tune every client from a pre-training checkpoint (or from scratch = the "
                    "local-only baseline) under mpirun -n R; early stopping on valid, test with "
                    "the best state");
    add_config_options(finetune, finetune_args);
    finetune->add_option("--mode", finetune_mode,
                         "full | prompt-full | prompt-light (finetune.mode)");
    finetune->add_option("--from", finetune_from,
                         "pre-training checkpoint file or directory (finetune.from)");

    ConfigArgs run_args;
    auto* run = app.add_subcommand(
        "run", "the whole experiment under mpirun -n R: prepare (if missing or stale) -> "
               "pretrain -> finetune -> results.json + table in output_dir; exit 75 = stopped by "
               "a signal during pre-training (run again to resume)");
    add_config_options(run, run_args);

    pfcr::EvaluateOptions eval_opts;
    ConfigArgs eval_args;
    auto* evaluate = app.add_subcommand(
        "evaluate", "full-sort Recall@K / NDCG@K (topk) of a pre-training or fine-tuning "
                    "checkpoint's clients under mpirun -n R; the model and data come from the "
                    "config stored in the checkpoint (--set may change e.g. data.prepared, topk, "
                    "eval_batch_size, never the model's shape). Writes nothing but --json");
    evaluate
        ->add_option("checkpoint", eval_opts.checkpoint,
                     "checkpoint file, or a directory (its newest complete checkpoint)")
        ->required();
    evaluate->add_option("--split", eval_opts.split, "valid | test (default test)")
        ->check(CLI::IsMember({"valid", "test"}));
    evaluate
        ->add_option("--state", eval_opts.state,
                     "best | final: a fine-tuning checkpoint's best state (the one "
                     "finetune tested; default) or its last one")
        ->check(CLI::IsMember({"best", "final"}));
    evaluate->add_option("--json", eval_opts.json,
                         "also write the results as JSON (results.json's shape) to this file");
    evaluate->add_option("--set", eval_args.sets, "override one key: --set key=value (repeatable)");
    evaluate
        ->add_option("-t,--threads", eval_args.threads,
                     "worker threads (same as --set run.threads=N; 0 = all)")
        ->check(CLI::Range(0, 4096));
    evaluate->add_flag("-q,--quiet", eval_args.quiet, "no progress lines on stderr");

    std::string inspect_path;
    auto* inspect = app.add_subcommand(
        "inspect", "summarize and validate a pfcr HDF5 file (prepared.h5 or a checkpoint)");
    inspect->add_option("file", inspect_path, "the file to inspect")->required();

    auto* keys =
        app.add_subcommand("config-keys", "list every config key with its default and meaning");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // No command, or a word that is not one: name the commands (CLI11 would only say that
        // a subcommand is required).
        if (app.get_subcommands().empty() && e.get_exit_code() != 0) {
            std::string names;
            for (const auto* c : app.get_subcommands({}))
                names += (names.empty() ? "" : ", ") + c->get_name();
            const bool word = argc >= 2 && argv[1][0] != '-';
            std::cerr << "pfcr: "
                      << (word ? "unknown command '" + std::string(argv[1]) + "'"
                               : std::string("a command is required"))
                      << "; the commands are: " << names << " (pfcr --help)" << std::endl;
            return e.get_exit_code();
        }
        return app.exit(e);
    }

    int rank = 0;
    try {
        if (*synth || *prepare) {
            ConfigArgs a = *synth ? synth_args : prepare_args;
            const pfcr::Options opt = load_options(a);
            const auto threads = limit_threads(opt);
            const pfcr::Logger log(0, a.quiet);
            if (!a.quiet) std::cout << opt.config.to_yaml() << std::flush;
            if (*synth)
                pfcr::run_synth(opt, log, std::cout);
            else
                pfcr::run_prepare(opt, log, std::cout);
        } else if (*finetune) {
            if (!finetune_mode.empty())
                finetune_args.sets.push_back("finetune.mode=" + finetune_mode);
            return run_mpi(argc, argv, finetune_args, [&](auto& opt, auto& comm, auto& log) {
                return pfcr::run_finetune(opt, comm, log, std::cout, finetune_from, faults).status;
            });
        } else if (*evaluate) {
            auto sets = eval_args.sets;
            if (eval_args.threads >= 0)
                sets.push_back("run.threads=" + std::to_string(eval_args.threads));
            return run_mpi(
                argc, argv, eval_args.quiet, false,
                [&] {
                    return pfcr::resolve_options(pfcr::evaluate_config(eval_opts.checkpoint, sets));
                },
                [&](auto& opt, auto& comm, auto& log) {
                    pfcr::run_evaluate(opt, comm, log, std::cout, eval_opts);
                    return 0;
                });
        } else if (*run) {
            return run_mpi(argc, argv, run_args, [&](auto& opt, auto& comm, auto& log) {
                return pfcr::run_experiment(opt, comm, log, std::cout, faults);
            });
        } else if (*pretrain) {
            return run_mpi(argc, argv, pretrain_args, [&](auto& opt, auto& comm, auto& log) {
                return pfcr::run_pretrain(opt, comm, log, std::cout, resume, faults).status;
            });
        } else if (*inspect) {
            return pfcr::run_inspect(inspect_path, std::cout);
        } else if (*keys) {
            for (const auto& s : pfcr::config_schema())
                std::cout << s.key << " = " << s.default_yaml << "\n    " << s.help << "\n";
        }
    } catch (const pfcr::IoError& e) {
        std::cerr << "[rank " << rank << "] error: " << e.what() << std::endl;
        return pfcr::exit_io_error;
    } catch (const std::exception& e) {
        std::cerr << "[rank " << rank << "] error: " << e.what() << std::endl;
        return pfcr::exit_error;
    }
    return 0;
}

} // namespace pfcr
