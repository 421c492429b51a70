// Config -> typed options (see options.hpp). Every key is read through a Reader, which records
// the names it reads so that a test can prove the mapping covers the whole schema.
#include "options/options.hpp"

#include <filesystem>

#include "core/error.hpp"

namespace pfcr {
namespace {

// Typed look-ups of one Config; the only code in pfcr that reads a key by name.
struct Reader {
    const Config& cfg;
    std::set<std::string>* read;

    const ConfigValue& value(const std::string& key) const {
        if (read) read->insert(key);
        return cfg.value(key);
    }
    int64_t get_int(const std::string& key) const { return std::get<int64_t>(value(key)); }
    double get_double(const std::string& key) const {
        const auto& v = value(key);
        if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
        return std::get<double>(v);
    }
    bool get_bool(const std::string& key) const { return std::get<bool>(value(key)); }
    const std::string& get_string(const std::string& key) const {
        return std::get<std::string>(value(key));
    }
    const std::vector<int64_t>& get_int_list(const std::string& key) const {
        return std::get<std::vector<int64_t>>(value(key));
    }
    const std::vector<std::string>& get_string_list(const std::string& key) const {
        return std::get<std::vector<std::string>>(value(key));
    }
    const std::string& origin(const std::string& key) const { return cfg.origin(key); }
};

SynthOptions synth_options(const Reader& r) {
    SynthOptions o;
    o.output = r.get_string("synth.output");
    o.n_domains = r.get_int("synth.n_domains");
    o.users_min = r.get_int("synth.users_min");
    o.users_max = r.get_int("synth.users_max");
    o.items_min = r.get_int("synth.items_min");
    o.items_max = r.get_int("synth.items_max");
    o.seq_len_min = r.get_int("synth.seq_len_min");
    o.seq_len_max = r.get_int("synth.seq_len_max");
    o.seq_len_mean_min = r.get_double("synth.seq_len_mean_min");
    o.seq_len_mean_max = r.get_double("synth.seq_len_mean_max");
    o.feature_dim = r.get_int("synth.feature_dim");
    o.n_topics = r.get_int("synth.n_topics");
    o.latent_dim = r.get_int("synth.latent_dim");
    o.topics_per_domain = r.get_int("synth.topics_per_domain");
    o.popularity_exponent = r.get_double("synth.popularity_exponent");
    o.topic_stay = r.get_double("synth.topic_stay");
    o.transition_prob = r.get_double("synth.transition_prob");
    o.feature_noise = r.get_double("synth.feature_noise");
    o.trace_clients = r.get_int("synth.trace_clients");
    o.trace_hours = r.get_double("synth.trace_hours");
    o.max_history = r.get_int("MAX_ITEM_LIST_LENGTH");
    o.seed = uint64_t(r.get_int("seed"));
    o.feature_suffix = r.get_string("data.feature_suffix");
    return o;
}

PrepareOptions prepare_options(const Reader& r) {
    PrepareOptions o;
    o.path = r.get_string("data.path");
    o.domains = r.get_string_list("data.domains");
    o.domains_origin = r.origin("data.domains");
    o.features = r.get_string("data.features");
    o.feature_suffix = r.get_string("data.feature_suffix");
    o.max_history = r.get_int("MAX_ITEM_LIST_LENGTH");
    o.text.dim = r.get_int("plm_size");
    o.text.hash_buckets = r.get_int("data.text_hash_buckets");
    o.text.ngrams = int(r.get_int("data.text_ngrams"));
    o.text.seed = uint64_t(r.get_int("data.featurizer_seed"));
    o.quantizer.code_dim = r.get_int("code_dim");
    o.quantizer.code_cap = r.get_int("code_cap");
    o.quantizer.seed = int(r.get_int("data.quantizer_seed"));
    o.quantizer.kmeans_iterations = int(r.get_int("data.quantizer_iterations"));
    o.quantizer.opq_iterations = int(r.get_int("data.opq_iterations"));
    o.quantizer.polysemous_training = r.get_bool("data.polysemous_training");
    o.quantizer.threads = int(r.get_int("data.quantizer_threads"));
    o.config_yaml = r.cfg.to_yaml();
    return o;
}

// Model/optimizer options (RecBole key names); the head follows finetune.mode.
TrainOptions train_options(const Reader& r) {
    TrainOptions o;
    o.hp.shape.hidden = r.get_int("hidden_size");
    o.hp.shape.inner = r.get_int("inner_size");
    o.hp.shape.layers = r.get_int("n_layers");
    o.hp.shape.heads = r.get_int("n_heads");
    o.hp.shape.max_positions = r.get_int("MAX_ITEM_LIST_LENGTH");
    o.hp.shape.code_dim = r.get_int("code_dim");
    o.hp.shape.code_cap = r.get_int("code_cap");
    o.hp.hidden_dropout = r.get_double("hidden_dropout_prob");
    o.hp.attn_dropout = r.get_double("attn_dropout_prob");
    o.hp.layer_norm_eps = r.get_double("layer_norm_eps");
    // hidden_act has one allowed value (exact erf GELU), which the encoder implements.
    check(r.get_string("hidden_act") == "gelu", "hidden_act: only gelu is implemented");
    o.temperature = r.get_double("temperature");
    o.learning_rate = r.get_double("learning_rate");
    o.train_batch_size = r.get_int("train_batch_size");
    o.eval_batch_size = r.get_int("eval_batch_size");
    o.chunk_rows = r.get_int("run.chunk_rows");
    o.seed = uint64_t(r.get_int("seed"));
    // Fine-tuning head (docs/METHOD.md §8); shape.id_items is the domain's, set by the caller.
    const std::string& mode = r.get_string("finetune.mode");
    o.hp.shape.head = mode == "prompt-full"    ? HeadMode::prompt_full
                      : mode == "prompt-light" ? HeadMode::prompt_light
                                               : HeadMode::none;
    o.hp.shape.n_prompts = r.get_int("finetune.n_prompts");
    o.hp.shape.prompt_heads = r.get_int("finetune.prompt_heads");
    o.hp.shape.train_encoder = r.get_bool("finetune.train_encoder");
    check(o.hp.shape.head == HeadMode::none || o.hp.shape.hidden % o.hp.shape.prompt_heads == 0,
          "finetune.prompt_heads = ", o.hp.shape.prompt_heads, " (",
          r.origin("finetune.prompt_heads"), ") must divide hidden_size = ", o.hp.shape.hidden);
    return o;
}

PrivacyOptions privacy_options(const Reader& r) {
    PrivacyOptions o;
    o.mechanism = parse_privacy_mechanism(r.get_string("privacy.mechanism"));
    o.epsilon = r.get_double("privacy.epsilon");
    o.clip = r.get_double("privacy.clip");
    o.buckets = r.get_int("privacy.buckets");
    o.clip_norm = r.get_double("privacy.clip_norm");
    o.noise_multiplier = r.get_double("privacy.noise_multiplier");
    o.delta = r.get_double("privacy.delta");
    o.fixed_point_bits = int(r.get_int("federation.fixed_point_bits"));
    validate(o);
    return o;
}

FederationOptions federation_options(const Reader& r) {
    FederationOptions f;
    f.algorithm = parse_algorithm(r.get_string("federation.algorithm"));
    f.share_whole_model = r.get_string("federation.shared") == "whole";
    check(!(f.algorithm == Algorithm::pfcr && f.share_whole_model),
          "federation.shared: 'whole' is not defined for algorithm pfcr (it shares the code "
          "table's gradient only); use fedavg, fedprox or scaffold");
    f.local_epochs = r.get_int("federation.local_epochs");
    f.client_fraction = r.get_double("federation.client_fraction");
    const double server_lr = r.get_double("federation.server_lr");
    check(server_lr == 0 || f.algorithm == Algorithm::pfcr, "federation.server_lr = ", server_lr,
          " (", r.origin("federation.server_lr"),
          "): only algorithm pfcr takes a server step; leave it 0 for ",
          algorithm_name(f.algorithm));
    f.server_lr = server_lr > 0 ? server_lr : r.get_double("learning_rate");
    f.mu = r.get_double("federation.mu");
    f.privacy = privacy_options(r);
    check(f.privacy.mechanism == PrivacyMechanism::none ||
              (f.algorithm != Algorithm::local && f.algorithm != Algorithm::centralized),
          "privacy.mechanism: ", mechanism_name(f.privacy.mechanism),
          " needs an upload to privatize; algorithm ", algorithm_name(f.algorithm),
          " has none (use privacy.mechanism: none)");

    f.mode =
        r.get_string("federation.mode") == "async" ? FederationMode::async : FederationMode::sync;
    f.deadline_s = r.get_double("federation.deadline_s");
    f.overcommit = r.get_double("federation.overcommit");
    f.concurrency = r.get_int("federation.concurrency");
    f.buffer_size = r.get_int("federation.buffer_size");
    f.max_staleness = r.get_int("federation.max_staleness");
    f.staleness_weight = parse_staleness_weight(r.get_string("federation.staleness_weight"));
    f.staleness_exponent = r.get_double("federation.staleness_exponent");
    const auto dist = [&](const std::string& k) {
        Distribution d{parse_dist_kind(r.get_string(k)), r.get_double(k + "_a"),
                       r.get_double(k + "_b")};
        const char* need = nullptr; // the rule a distribution's parameters break, if any
        if (d.kind == DistKind::uniform && d.b < d.a) need = "uniform needs b >= a";
        if (d.kind == DistKind::lognormal && d.a <= 0) need = "lognormal needs a median a > 0";
        if (d.kind == DistKind::pareto && (d.a <= 0 || d.b <= 0))
            need = "pareto needs a minimum a > 0 and a shape b > 0";
        check(!need, k, ": a = ", d.a, " (", r.origin(k + "_a"), "), b = ", d.b, " (",
              r.origin(k + "_b"), "): ", need ? need : "");
        return d;
    };
    f.system.compute = dist("system.compute");
    f.system.down_mbps = dist("system.down_mbps");
    f.system.up_mbps = dist("system.up_mbps");
    const std::string& availability = r.get_string("system.availability");
    f.system.onoff = availability == "onoff";
    f.system.trace_path = r.get_string("system.trace");
    check((availability == "trace") == !f.system.trace_path.empty(),
          "system.availability = ", availability, " (", r.origin("system.availability"),
          ") and system.trace = '", f.system.trace_path, "' (", r.origin("system.trace"),
          "): a trace file is given exactly when system.availability is trace");
    f.system.on_mean_s = r.get_double("system.on_mean_s");
    f.system.off_mean_s = r.get_double("system.off_mean_s");
    f.system.server_step_s = r.get_double("system.server_step_s");
    const bool async = f.mode == FederationMode::async;
    const char* sync_only[] = {"federation.deadline_s", "federation.overcommit"};
    for (const char* k : sync_only)
        check(!async || r.get_double(k) == 0, k, " = ", r.get_double(k), " (", r.origin(k),
              "): applies to federation.mode sync only (async: federation.max_staleness, "
              "federation.concurrency)");
    check(async || (f.concurrency == 0 && f.buffer_size == 0 && f.max_staleness == 0),
          "federation.concurrency, buffer_size and max_staleness apply to federation.mode async "
          "only (",
          r.origin("federation.mode"), ")");
    check(!async || f.algorithm == Algorithm::pfcr || f.algorithm == Algorithm::fedavg ||
              f.algorithm == Algorithm::fedprox,
          "federation.mode async (", r.origin("federation.mode"),
          "): defined for pfcr "
          "(code-table gradients) and fedavg/fedprox (parameter deltas), not ",
          algorithm_name(f.algorithm));
    check(!async || f.privacy.mechanism == PrivacyMechanism::none,
          "federation.mode async: privacy.mechanism ", mechanism_name(f.privacy.mechanism),
          " is not supported with asynchronous aggregation (use none)");
    check(!async || f.system.compute.kind != DistKind::constant || f.system.compute.a > 0,
          "system.compute_a = 0 (", r.origin("system.compute_a"),
          "): async mode needs clients whose training takes time");
    return f;
}

} // namespace

Options resolve_options(const Config& cfg, std::set<std::string>* keys_read) {
    const Reader r{cfg, keys_read};
    Options o;
    o.config = cfg;
    o.seed = uint64_t(r.get_int("seed"));
    o.output_dir = r.get_string("output_dir");
    const std::string& prepared = r.get_string("data.prepared");
    o.prepared = !prepared.empty() ? prepared
                                   : (std::filesystem::path(o.output_dir) / "prepared.h5").string();
    o.data_path = r.get_string("data.path");
    o.shards_per_domain = r.get_int("data.shards_per_domain");
    o.max_history = r.get_int("MAX_ITEM_LIST_LENGTH");
    o.prepare = prepare_options(r);
    o.synth = synth_options(r);

    o.train = train_options(r);
    o.initializer_range = r.get_double("initializer_range");
    o.federation = federation_options(r);
    o.rounds = r.get_int("federation.rounds");
    o.eval_every = r.get_int("federation.eval_every");

    o.finetune.mode = r.get_string("finetune.mode");
    o.finetune.epochs = r.get_int("epochs");
    o.finetune.stopping_step = r.get_int("stopping_step");
    o.finetune.domains = r.get_string_list("finetune.domains");
    o.finetune.domains_origin = r.origin("finetune.domains");
    o.finetune.from = r.get_string("finetune.from");

    o.eval.topk = r.get_int_list("topk");
    o.eval.metrics = r.get_string_list("metrics");
    o.eval.valid_metric = r.get_string("valid_metric");
    o.eval.ties = parse_tie_rule(r.get_string("eval.ties"));

    const std::string& dir = r.get_string("checkpoint.dir");
    o.checkpoint.dir = dir.empty() ? (std::filesystem::path(o.output_dir) / "ckpt").string() : dir;
    o.checkpoint.every = r.get_int("checkpoint.every");
    o.checkpoint.keep = int(r.get_int("checkpoint.keep"));
    o.checkpoint.allow_other_prepared = r.get_bool("checkpoint.allow_other_prepared");

    o.threads = r.get_int("run.threads");
    return o;
}

Options with_key(const Options& o, const std::string& key, const std::string& yaml_value,
                 const std::string& origin) {
    Config c = o.config;
    c.set(key, yaml_value, origin);
    return resolve_options(c);
}

std::string first_difference(const Config& now, const Config& then, bool (*shaped)(KeyRole)) {
    for (const auto& spec : config_schema())
        if (shaped(spec.role) && now.value_text(spec.key) != then.value_text(spec.key))
            return spec.key;
    return "";
}

void check_agrees(const Config& now, const Config& then, bool (*shaped)(KeyRole),
                  const std::string& where, const std::string& advice) {
    const std::string key = first_difference(now, then, shaped);
    check(key.empty(), where, ": config key '", key, "' is ",
          key.empty() ? "" : then.value_text(key), " in the checkpoint but ",
          key.empty() ? "" : now.value_text(key), " now (", key.empty() ? "" : now.origin(key), ")",
          advice.empty() ? "" : "; " + advice);
}

} // namespace pfcr
