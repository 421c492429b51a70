// The federated round of pre-training (docs/METHOD.md §6, docs/ARCHITECTURE.md §3–4) for every
// algorithm: persistent client state, local training of a rank's clients as oneTBB tasks, the
// client update (gradient sum, parameter delta, control variates), its exact fixed-point (or
// integer bucket) encoding, one allreduce through Comm, and the server step every rank computes
// identically. Files, metrics and checkpoints are the driver's (src/sim/pretrain.cpp).
//
// Memory (docs/ARCHITECTURE.md §3): a client persists only the parameters outside the shared range,
// the Adam moments without their all-zero rows (CompactMoments) and (SCAFFOLD) its control
// variate. The materialized full model, the
// trainer scratch and the upload buffer are per worker slot; at most one slot per thread is
// in use, because each client's training runs inside tbb::this_task_arena::isolate.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/prepared.hpp"
#include "federation/compact_moments.hpp"
#include "federation/privacy.hpp"
#include "federation/system.hpp"
#include "io/comm.hpp"
#include "model/trainer.hpp"

namespace pfcr {

enum class Algorithm { pfcr, fedavg, fedprox, scaffold, local, centralized };
Algorithm parse_algorithm(const std::string& name);
const char* algorithm_name(Algorithm a);

// federation.mode: synchronous rounds, or buffered asynchronous aggregation (FedBuff).
enum class FederationMode { sync, async };

struct FederationOptions {
    Algorithm algorithm = Algorithm::pfcr;
    bool share_whole_model = false; // federation.shared: "table" (code table) or "whole"
    int64_t local_epochs = 1;       // federation.local_epochs
    double client_fraction = 1.0;   // federation.client_fraction
    double server_lr = 0.001;       // pfcr: E <- E - server_lr * aggregate (federation.server_lr,
                                    // or learning_rate if that is 0)
    double mu = 0.01;               // federation.mu: FedProx mu/2 ||w - w_global||^2
    PrivacyOptions privacy;         // privacy.* (+ federation.fixed_point_bits)
    // System heterogeneity on the virtual clock (federation/system.hpp, docs/METHOD.md §12).
    FederationMode mode = FederationMode::sync; // federation.mode
    double deadline_s = 0;     // federation.deadline_s: sync round deadline (0 = none)
    double overcommit = 0;     // federation.overcommit: sample c(1 + f), aggregate first c
    int64_t concurrency = 0;   // federation.concurrency (async; 0 = the sync sample size)
    int64_t buffer_size = 0;   // federation.buffer_size (async; 0 = concurrency / 4, up)
    int64_t max_staleness = 0; // federation.max_staleness (async; 0 = no limit)
    StalenessWeight staleness_weight = StalenessWeight::sqrt; // federation.staleness_weight
    double staleness_exponent = 0.5;                          // federation.staleness_exponent
    SystemOptions system;                                     // system.*
};
// (src/options maps the config keys onto these fields and checks the cross-key rules.)

// What every rank knows about every client (ids 0..K-1: domain order, then shard order).
struct ClientSpec {
    int64_t id = 0;
    std::string domain; // "*" for the centralized client (every domain pooled)
    int64_t shard = 0;
    int64_t train_rows = 0;
    int64_t n_items = 0; // items of the client's domain (0 for the pooled client)
};

// One client's persistent state on its owning rank.
struct ClientState {
    ClientSpec spec;
    std::vector<const PreparedDomain*> data; // one domain (or shard); every domain if pooled
    AlignedBuffer<float> private_params;     // layout entries outside the shared range
    CompactMoments moments;                  // Adam m and v of the full layout, touched rows
    int64_t step = 0;                        // Adam steps taken
    int64_t rounds_trained = 0;              // rounds this client took part in (rng counter)
    AlignedBuffer<float> control;            // SCAFFOLD c_k over the shared range (else empty)
    int64_t bytes() const;                   // persistent bytes (the buffers above, as held)
};

struct RoundResult {
    int64_t round = 0;                 // sync: the round; async: the server step
    std::vector<int64_t> sampled;      // sync: the clients asked (ascending ids)
    std::vector<int64_t> participants; // whose updates were aggregated (ascending ids)
    std::vector<int64_t> staleness;    // async: per participant, in the same order
    std::vector<double> loss;          // mean train loss per client (0 if it did not train)
    // The virtual clock (simulated seconds): when the round (server step) started and ended,
    // the clients dropped by cause (ascending ids; they did not train, or their update was
    // discarded) and the client-seconds of work they wasted.
    double sim_start_s = 0, sim_end_s = 0, wasted_client_s = 0;
    std::vector<int64_t> dropped_deadline, dropped_unavailable, dropped_overcommit, dropped_stale;
    double aggregate_norm = 0; // L2 norm of the decoded aggregate
    double t_local = 0, t_aggregate = 0, t_communicate = 0, t_server = 0; // seconds, this rank
    int64_t bytes_up_per_client = 0;   // what one sampled client would upload
    int64_t bytes_down_per_client = 0; // and download
    PrivacySpent privacy;              // by a client sampled in every round so far (a bound)
};

// Bits one element of a client's upload takes on the wire under mechanism `p`.
int64_t upload_bits_per_element(const PrivacyOptions& p);

class Federation {
public:
    // `all` lists every client (same on every rank); `owner[k]` is the rank of client k.
    Federation(const FederationOptions& fed, const TrainOptions& base, double initializer_range,
               std::vector<ClientSpec> all, std::vector<int> owner, Comm& comm);
    ~Federation();
    // Registers an owned client with its data (must outlive the Federation); ascending ids.
    void add_client(int64_t id, std::vector<const PreparedDomain*> data);

    // One round: sampled clients train (oneTBB tasks), updates are aggregated exactly, the
    // server steps. Throws CollectiveError naming round, client and step on a non-finite
    // loss; every rank throws (the failure is agreed on with one allreduce), so no rank hangs.
    // Async mode: `round` is the server step (the metrics line's index) and the clients are
    // those of the schedule's next step, each trained from the model version it started from.
    RoundResult run_round(int64_t round);
    // After a restore of `rounds_done` rounds: replays the virtual clock (sync plans or the
    // async schedule, pure functions) up to there. Async: returns the model versions the
    // restore must fill with set_version (see referenced_versions()).
    void fast_forward(int64_t rounds_done);
    // Async: the old model versions (shared range) some started client still trains from, by
    // version (empty in sync mode, or when only the current model is needed).
    const std::map<int64_t, std::vector<float>>& old_versions() const { return versions_; }
    std::map<int64_t, std::vector<float>>& old_versions() { return versions_; }
    // Async: the versions old_versions() must hold after fast_forward (the current excluded).
    std::vector<int64_t> needed_versions() const;
    const std::vector<ClientProfile>& profiles() const { return profiles_; }
    // Async: the resolved concurrency, buffer size, ... (defaults filled in).
    const AsyncOptions& async_options() const { return async_opts_; }
    double sim_time_s() const { return clock_; }

    // Fault injection for tests of the failure paths (production sets none): called with the
    // round, the client and its materialized model just before the client trains, e.g. to set
    // one weight to NaN. Runs on the client's worker thread; must touch only `state`.
    using ClientHook = std::function<void(int64_t round, const ClientSpec&, ModelState& state)>;
    void set_client_hook(ClientHook hook) { client_hook_ = std::move(hook); }

    const FederationOptions& options() const { return fed_; }
    const ParamLayout& layout() const { return layout_; }
    // The shared range [begin, end) of the flat layout (whole entries only; empty for local
    // and centralized): what the server holds and clients exchange.
    int64_t shared_begin() const { return shared_begin_; }
    int64_t shared_end() const { return shared_end_; }
    bool is_shared(const ParamEntry& e) const;
    std::vector<float>& server_params() { return global_; }   // shared range values
    std::vector<float>& server_control() { return control_; } // SCAFFOLD c (else empty)
    std::vector<ClientState>& clients() { return mine_; }
    // Bytes a client would persist with dense Adam moments (the bound bytes() stays under).
    int64_t dense_client_bytes() const;
    const std::vector<ClientSpec>& all_clients() const { return all_; }
    const std::vector<int>& owner() const { return owner_; }
    // The full parameters of an owned client as its next round would start (shared range from
    // the server): for evaluation and checkpoints.
    void materialize(const ClientState& c, float* params) const;

private:
    struct Slot;
    void train_client(ClientState& c, Slot& slot, int64_t round, const float* x, double& loss);
    void materialize(const ClientState& c, const float* x, float* params) const;
    // Plans sync round `round` on the clock (advancing it); `sampled` gets the clients asked.
    RoundPlan plan_sync(int64_t round, std::vector<int64_t>& sampled);
    std::pair<int64_t, int64_t> bytes_per_client() const; // (up, down) per participation
    int64_t target_clients() const;                       // ceil(client_fraction K)
    FederationOptions fed_;
    TrainOptions base_;
    ParamLayout layout_;
    Comm& comm_;
    std::vector<ClientSpec> all_;
    std::vector<int> owner_;
    int64_t shared_begin_ = 0, shared_end_ = 0;
    std::vector<float> global_, control_;
    std::vector<ClientState> mine_;
    AlignedBuffer<float> init_; // the keyed initial parameters every client starts from
    struct Pool;
    std::unique_ptr<Pool> pool_;
    ClientHook client_hook_;
    // The virtual clock: profiles, participation seconds per client, availability, time.
    std::vector<ClientProfile> profiles_;
    std::vector<double> seconds_;
    std::unique_ptr<Availability> avail_;
    double clock_ = 0;
    int64_t rounds_planned_ = 0;
    std::unique_ptr<AsyncSchedule> async_;
    AsyncOptions async_opts_;
    std::map<int64_t, std::vector<float>> versions_;
};

} // namespace pfcr
