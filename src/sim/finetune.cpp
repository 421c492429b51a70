// `pfcr finetune`: per-domain training with early stopping on validation and a test
// evaluation with the best state. `--mode full` from a fresh initialisation is the
// "local only" baseline (no federation). Writes metrics.jsonl (one line per epoch) and
// results.json to output_dir and prints a table with the popularity baseline beside it.
// `--mode prompt-full | prompt-light` add PFCR's prompt-tuning head (model/prompt.hpp), with
// the encoder frozen except the code table unless finetune.train_encoder. Pre-trained starting
// points arrive with the federation stage.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "io/atomic_file.hpp"
#include "model/trainer.hpp"
#include "sim/commands.hpp"

namespace pfcr {
namespace {

std::string json_metrics(const EvalResult& r) {
    std::ostringstream os;
    os << std::setprecision(17) << "{";  // round-trip precision: runs compare bit for bit
    for (size_t i = 0; i < r.ks.size(); ++i)
        os << (i ? ", " : "") << "\"recall@" << r.ks[i] << "\": " << r.recall[i] << ", \"ndcg@"
           << r.ks[i] << "\": " << r.ndcg[i];
    return os.str() + "}";
}

// RecBole's metric_decimal_place = 4: early stopping compares rounded validation scores.
double round4(double v) { return std::round(v * 1e4) / 1e4; }

} // namespace

TrainOptions train_options(const Config& cfg) {
    TrainOptions o;
    o.hp.shape.hidden = cfg.get_int("hidden_size");
    o.hp.shape.inner = cfg.get_int("inner_size");
    o.hp.shape.layers = cfg.get_int("n_layers");
    o.hp.shape.heads = cfg.get_int("n_heads");
    o.hp.shape.max_positions = cfg.get_int("MAX_ITEM_LIST_LENGTH");
    o.hp.shape.code_dim = cfg.get_int("code_dim");
    o.hp.shape.code_cap = cfg.get_int("code_cap");
    o.hp.hidden_dropout = cfg.get_double("hidden_dropout_prob");
    o.hp.attn_dropout = cfg.get_double("attn_dropout_prob");
    o.hp.layer_norm_eps = cfg.get_double("layer_norm_eps");
    o.temperature = cfg.get_double("temperature");
    o.learning_rate = cfg.get_double("learning_rate");
    o.train_batch_size = cfg.get_int("train_batch_size");
    o.eval_batch_size = cfg.get_int("eval_batch_size");
    o.chunk_rows = cfg.get_int("run.chunk_rows");
    o.seed = uint64_t(cfg.get_int("seed"));
    // Fine-tuning head (PFCR.md §8); shape.id_items is the domain's, set by the caller.
    const std::string mode = cfg.get_string("finetune.mode");
    o.hp.shape.head = mode == "prompt-full"    ? HeadMode::prompt_full
                      : mode == "prompt-light" ? HeadMode::prompt_light
                                               : HeadMode::none;
    o.hp.shape.n_prompts = cfg.get_int("finetune.n_prompts");
    o.hp.shape.prompt_heads = cfg.get_int("finetune.prompt_heads");
    o.hp.shape.train_encoder = cfg.get_bool("finetune.train_encoder");
    check(o.hp.shape.head == HeadMode::none || o.hp.shape.hidden % o.hp.shape.prompt_heads == 0,
          "finetune.prompt_heads = ", o.hp.shape.prompt_heads, " (",
          cfg.origin("finetune.prompt_heads"), ") must divide hidden_size = ", o.hp.shape.hidden);
    return o;
}

void run_finetune(const Config& cfg, const Logger& log, std::ostream& out) {
    const std::string mode = cfg.get_string("finetune.mode");
    const std::string path = prepared_path(cfg);
    check(std::filesystem::exists(path), path, ": prepared data not found; run `pfcr prepare` with the same config first");
    const PreparedData data = read_prepared(path);
    const auto& m = data.manifest;
    check(m.code_dim == cfg.get_int("code_dim") && m.code_cap == cfg.get_int("code_cap"), path,
          ": items were coded with code_dim = ", m.code_dim, ", code_cap = ", m.code_cap,
          " but the config says code_dim = ", cfg.get_int("code_dim"), " (", cfg.origin("code_dim"),
          "), code_cap = ", cfg.get_int("code_cap"), "; re-run pfcr prepare");
    check(m.max_history <= cfg.get_int("MAX_ITEM_LIST_LENGTH"), path, ": histories of up to ",
          m.max_history, " items, but MAX_ITEM_LIST_LENGTH = ", cfg.get_int("MAX_ITEM_LIST_LENGTH"));

    std::vector<std::string> names = cfg.get_string_list("finetune.domains");
    if (names.empty())
        for (const auto& d : data.domains) names.push_back(d.name);
    const std::string dir = cfg.get_string("output_dir");
    std::filesystem::create_directories(dir);
    const std::string metrics_path = (std::filesystem::path(dir) / "metrics.jsonl").string();
    std::ofstream metrics(metrics_path, std::ios::trunc);
    check(bool(metrics), metrics_path, ": cannot open for writing");
    const std::vector<int64_t> ks = cfg.get_int_list("topk");
    const std::string valid_metric = cfg.get_string("valid_metric");
    const int64_t max_epochs = cfg.get_int("epochs"), patience = cfg.get_int("stopping_step");

    std::ostringstream results;
    results << "{\"mode\": \"" << mode << "\", \"prepared\": " << quote_string(path)
            << ", \"fingerprint\": \"" << m.fingerprint << "\", \"domains\": {";
    std::ostringstream table;
    table << std::left << std::setw(14) << "domain" << std::right;
    for (int64_t k : ks) table << std::setw(10) << ("R@" + std::to_string(k)) << std::setw(10) << ("N@" + std::to_string(k));
    table << std::setw(8) << "epochs" << "\n";
    std::vector<double> mean_recall(ks.size(), 0), mean_ndcg(ks.size(), 0);
    Stopwatch total;
    for (size_t di = 0; di < names.size(); ++di) {
        const PreparedDomain* dom = nullptr;
        uint32_t client = 0;
        for (size_t j = 0; j < data.domains.size(); ++j)
            if (data.domains[j].name == names[di]) dom = &data.domains[j], client = uint32_t(j);
        check(dom != nullptr, "finetune.domains (", cfg.origin("finetune.domains"), "): '",
              names[di], "' is not a domain of ", path);
        TrainOptions opt = train_options(cfg);
        opt.client = client;
        opt.hp.shape.id_items = dom->n_items + 1; // prompt-full's item_embedding rows
        ModelState state(opt.hp.shape);
        init_params(state.layout, state.params.data(), opt.seed, cfg.get_double("initializer_range"));
        Trainer trainer(opt, *dom);
        AlignedBuffer<float> best(state.layout.total());
        double best_score = -1;
        int64_t best_epoch = -1, bad = 0, epoch = 0;
        log.info(dom->name + ": " + std::to_string(dom->train.rows()) + " train rows, " +
                 std::to_string(dom->n_items) + " items, up to " + std::to_string(max_epochs) + " epochs");
        for (; epoch < max_epochs; ++epoch) {
            Stopwatch sw;
            const double loss = trainer.train_epoch(state, uint32_t(epoch));
            const double t_train = sw.seconds();
            sw.reset();
            const EvalResult valid = trainer.evaluate(state, dom->valid, ks);
            const double t_eval = sw.seconds();
            const double score = round4(valid.metric(valid_metric));
            const bool improved = score >= best_score;  // RecBole: ">=" counts as improvement
            if (improved) {
                best_score = score;
                best_epoch = epoch;
                bad = 0;
                std::copy(state.params.data(), state.params.data() + state.layout.total(), best.data());
            } else {
                ++bad;
            }
            metrics << "{\"event\": \"epoch\", \"domain\": " << quote_string(dom->name)
                    << ", \"epoch\": " << epoch << ", \"train_loss\": " << std::setprecision(8) << loss
                    << ", \"valid\": " << json_metrics(valid) << ", \"time_train_s\": " << t_train
                    << ", \"time_eval_s\": " << t_eval << ", \"best_epoch\": " << best_epoch << "}\n"
                    << std::flush;
            std::ostringstream line;
            line << dom->name << " epoch " << epoch << "  loss " << std::fixed << std::setprecision(4)
                 << loss << "  valid " << valid_metric << " " << valid.metric(valid_metric)
                 << (improved ? " *" : "  ") << "  (" << std::setprecision(1) << t_train << " s train, "
                 << t_eval << " s eval)";
            log.info(line.str());
            // RecBole early_stopping: stop once the non-improving streak exceeds stopping_step.
            if (bad > patience) {
                ++epoch;
                break;
            }
        }
        std::copy(best.data(), best.data() + state.layout.total(), state.params.data());
        const EvalResult test = trainer.evaluate(state, dom->test, ks);
        const EvalResult pop = evaluate_popularity(*dom, dom->test, ks);
        metrics << "{\"event\": \"test\", \"domain\": " << quote_string(dom->name)
                << ", \"best_epoch\": " << best_epoch << ", \"test\": " << json_metrics(test)
                << ", \"popularity\": " << json_metrics(pop) << "}\n" << std::flush;
        results << (di ? ", " : "") << quote_string(dom->name) << ": {\"test\": " << json_metrics(test)
                << ", \"popularity_test\": " << json_metrics(pop) << ", \"best_epoch\": " << best_epoch
                << ", \"epochs_run\": " << epoch << "}";
        table << std::left << std::setw(14) << dom->name << std::right << std::fixed << std::setprecision(4);
        for (size_t i = 0; i < ks.size(); ++i) {
            table << std::setw(10) << test.recall[i] << std::setw(10) << test.ndcg[i];
            mean_recall[i] += test.recall[i] / double(names.size());
            mean_ndcg[i] += test.ndcg[i] / double(names.size());
        }
        table << std::setw(8) << epoch << "\n" << std::left << std::setw(14) << "  popularity" << std::right;
        for (size_t i = 0; i < ks.size(); ++i) table << std::setw(10) << pop.recall[i] << std::setw(10) << pop.ndcg[i];
        table << "\n";
        table.unsetf(std::ios::fixed);
    }
    EvalResult mean;
    mean.ks = ks;
    mean.recall = mean_recall;
    mean.ndcg = mean_ndcg;
    results << "}, \"mean_test\": " << json_metrics(mean) << "}\n";
    write_text_file_atomic((std::filesystem::path(dir) / "results.json").string(), results.str());
    write_text_file_atomic((std::filesystem::path(dir) / "config.resolved.yaml").string(), cfg.to_yaml());
    out << table.str();
    out << "finetune: mode " << mode << ", " << names.size() << " domains, mean test recall@"
        << ks[0] << " " << std::fixed << std::setprecision(4) << mean_recall[0] << " in "
        << std::setprecision(1) << total.seconds() << " s -> " << dir << "/results.json\n";
    out.unsetf(std::ios::fixed);
}

} // namespace pfcr
