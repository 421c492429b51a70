// Every configuration key pfcr understands: role (what it shapes, config.hpp), type, default
// (the PFCR authors' code defaults, see docs/METHOD.md), allowed range and meaning. Top-level keys
// use the RecBole/PFCR spelling; keys new to pfcr are grouped (data.*, synth.*, run.*). Keys of one
// group must be contiguous here: Config::to_yaml() prints them in this order. Later stages add
// their groups (federation.*, privacy.*, checkpoint.*) here.
#include "io/config.hpp"

namespace pfcr {
namespace {

using K = ValueKind;
using R = KeyRole;

KeySpec key(std::string name, R role, K kind, std::string def, std::string help) {
    KeySpec s;
    s.key = std::move(name);
    s.role = role;
    s.kind = kind;
    s.default_yaml = std::move(def);
    s.help = std::move(help);
    return s;
}
KeySpec ranged(KeySpec s, double lo, double hi, bool lo_excl = false, bool hi_excl = false) {
    s.min = lo;
    s.max = hi;
    s.min_exclusive = lo_excl;
    s.max_exclusive = hi_excl;
    return s;
}
KeySpec choice(KeySpec s, std::vector<std::string> choices) {
    s.choices = std::move(choices);
    return s;
}

std::vector<KeySpec> make_schema() {
    return {
        // --- run-wide
        ranged(key("seed", R::trajectory, K::integer, "2020",
                   "master seed of every keyed random stream"),
               0, 4294967295.0),
        key("output_dir", R::location, K::string, "runs/default",
            "run directory: resolved config, logs, outputs"),

        // --- sequence encoder (docs/METHOD.md §4)
        ranged(key("n_layers", R::model, K::integer, "2", "Transformer layers"), 1, 64),
        ranged(
            key("n_heads", R::model, K::integer, "2", "attention heads; must divide hidden_size"),
            1, 256),
        ranged(key("hidden_size", R::model, K::integer, "300", "model width C"), 1, 16384),
        ranged(key("inner_size", R::model, K::integer, "256", "feed-forward width F"), 1, 65536),
        ranged(
            key("hidden_dropout_prob", R::trajectory, K::real, "0.5", "dropout on hidden states"),
            0, 1, false, true),
        ranged(key("attn_dropout_prob", R::trajectory, K::real, "0.5",
                   "dropout on attention probabilities"),
               0, 1, false, true),
        choice(key("hidden_act", R::trajectory, K::string, "gelu",
                   "feed-forward activation (exact erf GELU)"),
               {"gelu"}),
        ranged(key("layer_norm_eps", R::trajectory, K::real, "1e-12", "LayerNorm epsilon"), 0, 1,
               true),
        ranged(key("initializer_range", R::trajectory, K::real, "0.02",
                   "std of the N(0, r^2) weight init"),
               0, 10, true),
        ranged(key("temperature", R::trajectory, K::real, "0.07",
                   "softmax temperature of the cosine logits"),
               0, 100, true),
        ranged(
            key("MAX_ITEM_LIST_LENGTH", R::model, K::integer, "50", "longest history (positions)"),
            1, 4096),

        // --- item codes (docs/METHOD.md §3)
        ranged(key("code_dim", R::item_codes, K::integer, "32", "PQ sub-codes per item (M)"), 1,
               256),
        ranged(key("code_cap", R::item_codes, K::integer, "256",
                   "values per sub-code (power of two, 2..256)"),
               2, 256),
        ranged(key("plm_size", R::item_codes, K::integer, "768",
                   "item feature dimension d (feature file or text featurizer)"),
               1, 65536),

        // --- training and evaluation (docs/METHOD.md §5, §9)
        ranged(key("learning_rate", R::trajectory, K::real, "0.001", "Adam learning rate"), 0, 10,
               true),
        ranged(key("train_batch_size", R::trajectory, K::integer, "1024", "training rows per step"),
               1, 1 << 24),
        ranged(
            key("eval_batch_size", R::evaluation, K::integer, "1024", "evaluation rows per batch"),
            1, 1 << 24),
        ranged(key("epochs", R::budget, K::integer, "300", "maximum fine-tuning epochs"), 1,
               1000000),
        ranged(
            key("stopping_step", R::budget, K::integer, "10", "early stopping patience in epochs"),
            1, 1000000),
        ranged(
            key("topk", R::evaluation, K::int_list, "[10, 50]", "cutoffs K of Recall@K and NDCG@K"),
            1, 1000000),
        choice(key("metrics", R::evaluation, K::string_list, "[Recall, NDCG]", "reported metrics"),
               {"Recall", "NDCG"}),
        key("valid_metric", R::evaluation, K::string, "recall@10",
            "early-stopping metric: recall@K or ndcg@K"),
        choice(key("eval.ties", R::evaluation, K::string, "expected",
                   "items scored exactly like the target: expected (exact mean over random "
                   "orders of the tied items), pessimistic, optimistic, lower-id (lower item "
                   "id first)"),
               {"expected", "pessimistic", "optimistic", "lower-id"}),

        // --- data preparation (pfcr prepare)
        key("data.path", R::input, K::string, "data",
            "folder holding one sub-folder <D>/ per domain"),
        key("data.domains", R::data, K::string_list, "[]", "domain names, in client order"),
        choice(key("data.features", R::data, K::string, "auto",
                   "item features: file (<D>.<data.feature_suffix>), text (built-in featurizer), "
                   "auto (file if present)"),
               {"auto", "file", "text"}),
        key("data.feature_suffix", R::data, K::string, "feat1CLS",
            "suffix of the float32 feature file"),
        key("data.prepared", R::location, K::string, "",
            "prepared.h5 path; empty = <output_dir>/prepared.h5"),
        ranged(key("data.shards_per_domain", R::clients, K::integer, "1",
                   "clients per domain: users split by a fixed hash (pretrain; client id = domain, "
                   "then shard)"),
               1, 1000000),
        ranged(key("data.text_hash_buckets", R::quantizer, K::integer, "1048576",
                   "hash buckets of the text featurizer"),
               1024, 1 << 30),
        ranged(key("data.text_ngrams", R::quantizer, K::integer, "2",
                   "longest word n-gram of the text featurizer"),
               1, 4),
        ranged(key("data.featurizer_seed", R::quantizer, K::integer, "2020",
                   "seed of the featurizer's random projection"),
               0, 4294967295.0),
        ranged(key("data.quantizer_seed", R::quantizer, K::integer, "1234",
                   "seed of faiss OPQ/k-means training"),
               0, 2147483647),
        ranged(key("data.quantizer_threads", R::quantizer, K::integer, "2",
                   "OpenMP threads of faiss training; fixed (not run.threads) because faiss's "
                   "result depends on it"),
               1, 256),
        ranged(key("data.quantizer_iterations", R::quantizer, K::integer, "25",
                   "k-means iterations per PQ training"),
               1, 1000),
        key("data.polysemous_training", R::quantizer, K::boolean, "false",
            "run faiss's polysemous centroid relabelling (PFCR's factory string does; codes are "
            "equivalent up to relabelling)"),
        ranged(key("data.opq_iterations", R::quantizer, K::integer, "50",
                   "OPQ alternating-optimisation iterations"),
               0, 1000),

        // --- synthetic data (pfcr synth)
        key("synth.output", R::location, K::string, "synthetic", "output folder of pfcr synth"),
        ranged(key("synth.n_domains", R::synth, K::integer, "8", "number of domains"), 1, 100000),
        ranged(key("synth.users_min", R::synth, K::integer, "200", "fewest users of a domain"), 1,
               100000000),
        ranged(key("synth.users_max", R::synth, K::integer, "2000",
                   "most users of a domain (log-uniform between)"),
               1, 100000000),
        ranged(key("synth.items_min", R::synth, K::integer, "100", "fewest items of a domain"), 2,
               100000000),
        ranged(key("synth.items_max", R::synth, K::integer, "1000",
                   "most items of a domain (log-uniform between)"),
               2, 100000000),
        ranged(key("synth.seq_len_min", R::synth, K::integer, "5",
                   "shortest user sequence (>= 4: train, valid, test need 3 targets)"),
               4, 100000),
        ranged(key("synth.seq_len_max", R::synth, K::integer, "60", "longest user sequence"), 4,
               100000),
        ranged(key("synth.seq_len_mean_min", R::synth, K::real, "6",
                   "sparsest domain's mean sequence length"),
               4, 100000),
        ranged(key("synth.seq_len_mean_max", R::synth, K::real, "14",
                   "densest domain's mean sequence length"),
               4, 100000),
        ranged(key("synth.feature_dim", R::synth, K::integer, "64",
                   "item feature dimension written to <D>.feat1CLS"),
               1, 65536),
        ranged(key("synth.n_topics", R::synth, K::integer, "32", "shared latent topics"), 1,
               100000),
        ranged(key("synth.latent_dim", R::synth, K::integer, "16",
                   "dimension of the shared semantic space"),
               1, 4096),
        ranged(key("synth.topics_per_domain", R::synth, K::integer, "8",
                   "topics a domain's catalogue covers"),
               1, 100000),
        ranged(key("synth.popularity_exponent", R::synth, K::real, "1.0",
                   "Zipf exponent of item popularity within a topic"),
               0, 10),
        ranged(key("synth.topic_stay", R::synth, K::real, "0.85",
                   "probability a user's next item stays on topic"),
               0, 1),
        ranged(key("synth.transition_prob", R::synth, K::real, "0.6",
                   "probability the next item follows the previous one's neighbourhood"),
               0, 1),
        ranged(key("synth.feature_noise", R::synth, K::real, "0.1",
                   "noise std added to item features"),
               0, 100),
        ranged(key("synth.trace_clients", R::synth, K::integer, "0",
                   "also write <synth.output>/availability.csv, an availability trace of this "
                   "many clients from the on/off process of system.on_mean_s / off_mean_s"),
               0, 100000000),
        ranged(key("synth.trace_hours", R::synth, K::real, "24",
                   "the trace's length in simulated hours"),
               0, 1e6, true),

        // --- federated pre-training (pfcr pretrain, docs/METHOD.md §6)
        ranged(key("federation.rounds", R::budget, K::integer, "10",
                   "pre-training rounds (PFCR's pretrain_epochs); one local epoch per round"),
               1, 1000000),
        ranged(key("federation.client_fraction", R::trajectory, K::real, "1.0",
                   "share of clients sampled each round (pure function of seed and round)"),
               0, 1, true),
        choice(
            key("federation.algorithm", R::trajectory, K::string, "pfcr",
                "pfcr: summed code-table gradient + server SGD step (docs/METHOD.md §6); fedavg: "
                "weighted parameter deltas; fedprox: fedavg + mu/2 ||w - w_global||^2; "
                "scaffold: fedavg + control variates; local: no federation; centralized: "
                "every domain pooled into one client (on rank 0; other ranks idle)"),
            {"pfcr", "fedavg", "fedprox", "scaffold", "local", "centralized"}),
        choice(key("federation.shared", R::trajectory, K::string, "table",
                   "what fedavg/fedprox/scaffold share: the code table or the whole model"),
               {"table", "whole"}),
        ranged(key("federation.local_epochs", R::trajectory, K::integer, "1",
                   "local epochs per client per round (PFCR: 1)"),
               1, 10000),
        ranged(
            key("federation.server_lr", R::trajectory, K::real, "0",
                "pfcr's server step E <- E - server_lr * aggregate; 0 = learning_rate, as "
                "docs/METHOD.md section 6 and the authors' code (other algorithms: must stay 0)"),
            0, 1e6),
        ranged(key("federation.mu", R::trajectory, K::real, "0.01",
                   "FedProx proximal weight mu (PFCR's code adds 0.005 ||w - w_global||^2 = "
                   "mu/2 with mu = 0.01)"),
               0, 1e6),
        ranged(key("federation.fixed_point_bits", R::trajectory, K::integer, "40",
                   "fractional bits of the exact int64 cross-rank sums"),
               8, 48),
        // System heterogeneity on the virtual clock (docs/METHOD.md section 12).
        choice(key("federation.mode", R::trajectory, K::string, "sync",
                   "sync: rounds (sample, train, aggregate); async: buffered asynchronous "
                   "aggregation (FedBuff) on the virtual clock, one metrics line per server step"),
               {"sync", "async"}),
        ranged(key("federation.deadline_s", R::trajectory, K::real, "0",
                   "sync: simulated seconds a round waits; slower clients are dropped (0 = none)"),
               0, 1e15),
        ranged(key("federation.overcommit", R::trajectory, K::real, "0",
                   "sync: sample ceil(c (1 + f)) clients, aggregate the first c to finish "
                   "(c = the client_fraction sample size; FedScale uses 0.3)"),
               0, 1000),
        ranged(key("federation.concurrency", R::trajectory, K::integer, "0",
                   "async: clients training at once (0 = the client_fraction sample size)"),
               0, 1000000000),
        ranged(key("federation.buffer_size", R::trajectory, K::integer, "0",
                   "async: updates per server step (0 = a quarter of the concurrency, rounded up)"),
               0, 1000000000),
        ranged(key("federation.max_staleness", R::trajectory, K::integer, "0",
                   "async: updates staler than this many server steps are dropped (0 = none)"),
               0, 1000000000),
        choice(key("federation.staleness_weight", R::trajectory, K::string, "sqrt",
                   "async: weight of an update of staleness s: constant 1, sqrt 1/sqrt(1+s), "
                   "poly (1+s)^-staleness_exponent"),
               {"constant", "sqrt", "poly"}),
        ranged(key("federation.staleness_exponent", R::trajectory, K::real, "0.5",
                   "async: the exponent of staleness_weight poly"),
               0, 100),
        ranged(key("federation.eval_every", R::evaluation, K::integer, "0",
                   "pre-training: validation Recall/NDCG of every client's model every N rounds "
                   "(server steps) into metrics.jsonl \"valid\" (0 = never)"),
               0, 1000000000),

        // --- client devices on the virtual clock (federation/system.hpp): each quantity is
        // drawn per client from a distribution keyed by (seed, client id): constant a;
        // lognormal median a, log-space sigma b; pareto minimum a, shape b; uniform [a, b).
        choice(key("system.compute", R::trajectory, K::string, "constant",
                   "distribution of a client's compute time per training sample"),
               {"constant", "lognormal", "pareto", "uniform"}),
        ranged(key("system.compute_a", R::trajectory, K::real, "0.001",
                   "system.compute parameter a (seconds per sample)"),
               0, 1e6),
        ranged(key("system.compute_b", R::trajectory, K::real, "0", "system.compute parameter b"),
               0, 1e6),
        choice(key("system.down_mbps", R::trajectory, K::string, "constant",
                   "distribution of a client's downlink bandwidth"),
               {"constant", "lognormal", "pareto", "uniform"}),
        ranged(key("system.down_mbps_a", R::trajectory, K::real, "0",
                   "system.down_mbps parameter a (Mbit/s; constant 0 = unlimited)"),
               0, 1e9),
        ranged(
            key("system.down_mbps_b", R::trajectory, K::real, "0", "system.down_mbps parameter b"),
            0, 1e9),
        choice(key("system.up_mbps", R::trajectory, K::string, "constant",
                   "distribution of a client's uplink bandwidth"),
               {"constant", "lognormal", "pareto", "uniform"}),
        ranged(key("system.up_mbps_a", R::trajectory, K::real, "0",
                   "system.up_mbps parameter a (Mbit/s; constant 0 = unlimited)"),
               0, 1e9),
        ranged(key("system.up_mbps_b", R::trajectory, K::real, "0", "system.up_mbps parameter b"),
               0, 1e9),
        choice(key("system.availability", R::trajectory, K::string, "always",
                   "always: clients are always on; onoff: alternating exponential on/off "
                   "periods keyed per client; trace: the online intervals of system.trace "
                   "(offline clients cannot start and drop out)"),
               {"always", "onoff", "trace"}),
        key("system.trace", R::trajectory, K::string, "",
            "availability: trace: CSV of online intervals client,start_s,end_s "
            "(docs/formats.md; pfcr synth writes one with synth.trace_clients)"),
        ranged(key("system.on_mean_s", R::trajectory, K::real, "3600",
                   "onoff: mean simulated seconds of an on period"),
               0, 1e15, true),
        ranged(key("system.off_mean_s", R::trajectory, K::real, "600",
                   "onoff: mean simulated seconds of an off period"),
               0, 1e15, true),
        ranged(key("system.server_step_s", R::trajectory, K::real, "0.01",
                   "simulated seconds the server takes to aggregate and step"),
               0, 1e9, true),

        // --- privacy of the uploads (docs/METHOD.md §7, docs/PRIVACY.md)
        choice(key("privacy.mechanism", R::trajectory, K::string, "none",
                   "upload privatization: none, pfcr-reference (PFCR's published arithmetic, "
                   "not valid LDP), randomized-response (eps-LDP per coordinate), gaussian "
                   "(L2 clip + Gaussian noise)"),
               {"none", "pfcr-reference", "randomized-response", "gaussian"}),
        ranged(key("privacy.epsilon", R::trajectory, K::real, "0.3",
                   "epsilon of pfcr-reference and randomized-response (per coordinate, round)"),
               0, 1e6, true),
        ranged(key("privacy.clip", R::trajectory, K::real, "0.12",
                   "c: elements clamped to [-c, c] before bucketing (bucket mechanisms)"),
               0, 1e30, true),
        ranged(key("privacy.buckets", R::trajectory, K::integer, "256",
                   "K: bucket step c/K; randomized-response uses 2K+1 levels"),
               1, 1 << 20),
        ranged(key("privacy.clip_norm", R::trajectory, K::real, "1.0",
                   "C: gaussian clips each client's whole upload to L2 norm C"),
               0, 1e30, true),
        ranged(key("privacy.noise_multiplier", R::trajectory, K::real, "1.0",
                   "sigma: gaussian noise std is sigma * C per element"),
               0, 1e6, true),
        ranged(key("privacy.delta", R::trajectory, K::real, "1e-5",
                   "delta of the (epsilon, delta) reported for gaussian"),
               0, 1, true, true),

        // --- checkpoints (docs/ARCHITECTURE.md §5)
        ranged(key("checkpoint.every", R::checkpointing, K::integer, "1",
                   "write a checkpoint every N rounds, and always after the last; 0 = only after "
                   "the last"),
               0, 1000000),
        ranged(key("checkpoint.keep", R::checkpointing, K::integer, "2",
                   "checkpoints kept in checkpoint.dir (the newest by round; older ones deleted)"),
               1, 1000000),
        key("checkpoint.dir", R::location, K::string, "",
            "checkpoint directory; empty = <output_dir>/ckpt"),
        key("checkpoint.allow_other_prepared", R::checkpointing, K::boolean, "false",
            "read a checkpoint (resume, fine-tune from, evaluate) although it was trained on "
            "prepared data with another fingerprint than data.prepared's"),

        // --- fine-tuning (pfcr finetune)
        choice(key("finetune.mode", R::head, K::string, "full",
                   "full: train every parameter (from scratch = the local-only baseline); "
                   "prompt-full / prompt-light: PFCR's full / light prompt tuning heads"),
               {"full", "prompt-full", "prompt-light"}),
        ranged(key("finetune.n_prompts", R::head, K::integer, "1024",
                   "prompt modes: rows of the domain prompt P (PFCR hard-codes 1024)"),
               1, 1 << 20),
        ranged(key("finetune.prompt_heads", R::head, K::integer, "4",
                   "prompt modes: heads of the prompt attention; must divide hidden_size"),
               1, 4096),
        key("finetune.train_encoder", R::finetune, K::boolean, "false",
            "prompt modes: also train the encoder (false = PFCR: frozen except the code table)"),
        key("finetune.domains", R::head, K::string_list, "[]",
            "domains to fine-tune (empty = every domain of prepared.h5)"),
        key("finetune.from", R::location, K::string, "",
            "pre-training checkpoint (file, or directory = its newest) to start from; empty = "
            "from scratch (the local-only baseline)"),

        // --- execution
        ranged(key("run.threads", R::performance, K::integer, "0",
                   "worker threads per process; 0 = all hardware threads"),
               0, 4096),
        ranged(key("run.chunk_rows", R::trajectory, K::integer, "256",
                   "rows per parallel chunk of a batch; fixed, so results never depend on threads"),
               1, 1 << 20),
    };
}

} // namespace

const std::vector<KeySpec>& config_schema() {
    static const std::vector<KeySpec> schema = make_schema();
    return schema;
}

} // namespace pfcr
