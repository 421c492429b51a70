// Client system heterogeneity on a deterministic virtual clock (issue 16, first part): per-client
// device profiles (compute speed, downlink/uplink bandwidth) drawn from distributions keyed by
// (seed, client id), an on/off availability process keyed the same way, the simulated duration
// of a client's participation, and the plan of a synchronous round with a deadline and
// over-commitment (FedScale semantics). Everything here is a pure function of the options, the
// seed and client ids, so every rank computes the same plan without communicating, and a
// resumed run recomputes the clock by replaying the plans of earlier rounds.
// Also here: the event-driven schedule of buffered asynchronous aggregation (FedBuff), likewise
// a pure function, so which client trains from which model version and lands in which server
// step is known before anything trains. Federation (engine.hpp) executes these plans; the
// config keys (federation.mode, federation.deadline_s, ..., system.*) map onto the options
// below in src/options. Not here: training, encoding, I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pfcr {

// A positive quantity's distribution over clients. Parameters a, b:
//   constant   a
//   lognormal  median a, log-space standard deviation b: a·exp(b·z), z ~ N(0, 1)
//   pareto     minimum a, shape b > 0: a·(1-u)^(-1/b)  (heavy tail: a few very slow devices)
//   uniform    in [a, b)
enum class DistKind { constant, lognormal, pareto, uniform };
struct Distribution {
    DistKind kind = DistKind::constant;
    double a = 0, b = 0;
};
DistKind parse_dist_kind(const std::string& name); // "constant" | "lognormal" | "pareto" | ...
const char* dist_kind_name(DistKind k);
// The value for two independent uniforms u1, u2 in [0, 1) (lognormal uses both: Box-Muller).
double draw(const Distribution& d, double u1, double u2);

// An availability trace: per client id, its online intervals [start_s, end_s), sorted and
// disjoint (touching intervals are merged); a client without intervals is never online. The
// file is CSV (docs/formats.md): an optional '#' comment block, the header
// `client,start_s,end_s`, then one interval per line, in any order; lines of ids >= n_clients
// are skipped (counted in ignored_lines). Throws Error naming file:line on bad input (fields,
// numbers, start >= end, overlapping intervals of a client).
struct OnInterval {
    double start_s = 0, end_s = 0;
};
struct AvailabilityTrace {
    std::string path;
    std::string sha256; // of the file's bytes (checkpoints record it; resume compares)
    std::vector<std::vector<OnInterval>> clients;
    int64_t ignored_lines = 0;
};
AvailabilityTrace read_availability_trace(const std::string& path, int64_t n_clients);
// The file's bytes (Error naming it if it cannot be opened).
std::string read_availability_trace_text(const std::string& path);
// The same from the file's text (`path` names it in errors).
AvailabilityTrace parse_availability_trace(const std::string& csv, const std::string& path,
                                           int64_t n_clients);

struct SystemOptions {
    Distribution compute{DistKind::constant, 1e-3, 0}; // seconds per training sample
    Distribution down_mbps{DistKind::constant, 0, 0};  // downlink Mbit/s; 0 = unlimited
    Distribution up_mbps{DistKind::constant, 0, 0};    // uplink Mbit/s; 0 = unlimited
    bool onoff = false;          // availability: always on, or alternating on/off periods
    double on_mean_s = 3600;     // mean on period (exponential)
    double off_mean_s = 600;     // mean off period (exponential)
    double server_step_s = 0.01; // simulated seconds the server needs to aggregate and step
    std::string trace_path;      // system.trace (availability: trace)
    std::shared_ptr<const AvailabilityTrace> trace; // loaded from trace_path; overrides onoff
};

// The on/off process of `o` (onoff must be set) for clients 0..n_clients-1 over
// [0, horizon_s), as trace CSV text (what `pfcr synth` writes with synth.trace_clients).
std::string availability_trace_csv(const SystemOptions& o, uint64_t seed, int64_t n_clients,
                                   double horizon_s);

struct ClientProfile {
    double s_per_sample = 0;     // compute: seconds per training sample
    double down_bytes_per_s = 0; // 0 = unlimited
    double up_bytes_per_s = 0;   // 0 = unlimited
};
ClientProfile client_profile(const SystemOptions& o, uint64_t seed, int64_t client);

// Simulated seconds of one participation: samples · s_per_sample + down/down_rate + up/up_rate.
double participation_seconds(const ClientProfile& p, int64_t samples, int64_t bytes_down,
                             int64_t bytes_up);

// On/off availability of every client: period i of client k lasts an exponential time keyed by
// (seed, k, i); periods alternate on, off, on, ... from time 0, and whether a client starts on
// is keyed too (probability on_mean / (on_mean + off_mean), the stationary share). Queries must
// not go back in time for a client by more than its current period (rounds only move forward);
// the cursor per client makes a query O(periods crossed).
class Availability {
public:
    Availability(const SystemOptions& o, uint64_t seed, int64_t n_clients);
    // Always true when neither o.onoff nor o.trace is set.
    bool online(int64_t client, double t);
    // The end of the on period that contains t (t itself if offline at t; +inf if always on).
    double online_until(int64_t client, double t);
    // t if online at t, else the start of the next on period.
    double next_online(int64_t client, double t);

private:
    struct Cursor {
        int64_t period = -1; // index of the current period (-1: not started)
        double begin = 0, end = 0;
        bool on = false;
    };
    void advance_to(int64_t client, double t);
    // Trace mode: the first interval of `client` that ends after t (nullptr: none).
    const OnInterval* trace_interval(int64_t client, double t) const;
    std::shared_ptr<const AvailabilityTrace> trace_;
    bool onoff_;
    double on_mean_, off_mean_;
    uint64_t seed_;
    std::vector<Cursor> cursors_;
};

// The plan of one synchronous round on the virtual clock. `sampled` (ascending ids) were asked
// to train at `start_s`; `seconds[i]` is sampled[i]'s participation time. A client is dropped
//   deadline     if deadline_s > 0 and it would need longer than deadline_s,
//   unavailable  if it goes offline before it finishes,
//   overcommit   if `target` others finished before it (ties: lower id first);
// the first `target` to finish are the participants. The round ends when the last participant
// finishes, or at the deadline if fewer than `target` made it (the server waits for them);
// wasted client-seconds = the work of dropped clients (until the deadline, until they went
// offline, or all of it for over-committed ones).
struct RoundPlan {
    std::vector<int64_t> participants; // ascending ids: their updates are aggregated
    std::vector<int64_t> dropped_deadline, dropped_unavailable, dropped_overcommit;
    double start_s = 0, end_s = 0;
    double wasted_client_s = 0;
};
RoundPlan plan_sync_round(const std::vector<int64_t>& sampled, const std::vector<double>& seconds,
                          int64_t target, double deadline_s, double start_s,
                          Availability& availability);

// --- Buffered asynchronous aggregation (FedBuff, Nguyen et al. 2022) on the virtual clock.
// `concurrency` clients train at once; each starts from the newest model version and, when it
// finishes, its update goes into the server's buffer; when `buffer_size` updates are buffered
// the server aggregates them (weight w(s) for an update of staleness s = server steps since its
// start) and steps, taking server_step_s; a replacement client starts at once. Rules:
//   - a replacement is drawn uniformly among idle clients that are online (keyed by the seed
//     and a running pick counter); if none is online, the slot waits for the first to come on;
//   - a client that goes offline while training is dropped (cause "unavailable") when it does;
//   - an update older than max_staleness (> 0) steps when it arrives is dropped ("stale");
//   - a buffered client is busy until its step is applied (never in two updates at once); a
//     slot that finds every client busy waits for the next step;
//   - events at the same simulated time: server steps first (slots waiting for a busy client
//     start right after the step), then clients by ascending id, then slots waiting for an
//     offline client to come on; a client starting at the time of a step gets the new version.
// Staleness is fixed when the buffer fills: s = (index of the step that applies it) - (the
// number of steps done when the client started).
enum class StalenessWeight { constant, sqrt, poly };
StalenessWeight parse_staleness_weight(const std::string& name); // constant | sqrt | poly
const char* staleness_weight_name(StalenessWeight w);
// constant 1; sqrt 1/sqrt(1+s); poly (1+s)^(-exponent).
double staleness_weight(StalenessWeight w, double exponent, int64_t staleness);

struct AsyncOptions {
    int64_t concurrency = 1;
    int64_t buffer_size = 1;
    int64_t max_staleness = 0; // 0: no limit
    double server_step_s = 0.01;
};

struct AsyncMember {
    int64_t client = 0;
    int64_t start_version = 0; // server steps done when it started (= the model it trains from)
    double start_s = 0, end_s = 0;
};

// Server step `step` turns model version `step` into `step + 1`.
struct AsyncStep {
    int64_t step = 0;
    double start_s = 0, end_s = 0;    // previous step's end (0 for the first), this step's end
    std::vector<AsyncMember> members; // the buffer, ascending client id
    std::vector<int64_t> dropped_unavailable, dropped_stale; // since the previous step, ascending
    double wasted_client_s = 0;                              // the work of those dropped clients
    int64_t started = 0; // clients started since the previous step
};

class AsyncSchedule {
public:
    // seconds[k]: client k's participation time (participation_seconds of its profile).
    AsyncSchedule(const AsyncOptions& o, std::vector<double> seconds, uint64_t seed,
                  Availability availability);
    // Simulates up to the end of the next server step and returns it.
    AsyncStep next();
    int64_t steps_done() const { return version_; }
    // Model versions some started client (in flight or buffered) will train from, ascending.
    std::vector<int64_t> referenced_versions() const;

private:
    struct Event {
        double t;
        int kind; // 0 server step done, 1 a client finishes or goes offline, 2 slot retry
        int64_t who;
        bool operator>(const Event& o) const;
    };
    void start_one(double t);
    void push(Event e);
    Event pop();
    AsyncOptions o_;
    std::vector<double> seconds_;
    uint64_t seed_;
    Availability avail_;
    std::vector<Event> heap_;
    std::vector<char> busy_;
    std::vector<AsyncMember> running_; // by client id (valid where busy_)
    std::vector<AsyncMember> buffer_;
    std::vector<std::vector<AsyncMember>> closed_; // full buffers waiting for the server
    double server_free_s_ = 0, last_step_s_ = 0;
    int64_t version_ = 0, picks_ = 0, retries_ = 0;
    int64_t waiting_ = 0; // slots waiting for a client to be released by a server step
    AsyncStep pending_;   // drops and starts since the previous step
};

} // namespace pfcr
