// Client system heterogeneity on a deterministic virtual clock (issue 16, first part): per-client
// device profiles (compute speed, downlink/uplink bandwidth) drawn from distributions keyed by
// (seed, client id), an on/off availability process keyed the same way, the simulated duration
// of a client's participation, and the plan of a synchronous round with a deadline and
// over-commitment (FedScale semantics). Everything here is a pure function of the options, the
// seed and client ids, so every rank computes the same plan without communicating, and a
// resumed run recomputes the clock by replaying the plans of earlier rounds.
// Not here (yet): wiring into Federation::run_round and the config keys (system.*,
// federation.deadline_s, federation.overcommit), buffered asynchronous aggregation.
#pragma once

#include <cstdint>
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

struct SystemOptions {
    Distribution compute{DistKind::constant, 1e-3, 0}; // seconds per training sample
    Distribution down_mbps{DistKind::constant, 0, 0};  // downlink Mbit/s; 0 = unlimited
    Distribution up_mbps{DistKind::constant, 0, 0};    // uplink Mbit/s; 0 = unlimited
    bool onoff = false;      // availability: always on, or alternating on/off periods
    double on_mean_s = 3600; // mean on period (exponential)
    double off_mean_s = 600; // mean off period (exponential)
};

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
    // Always true when o.onoff is false.
    bool online(int64_t client, double t);
    // The end of the on period that contains t (t itself if offline at t; +inf if always on).
    double online_until(int64_t client, double t);

private:
    struct Cursor {
        int64_t period = -1; // index of the current period (-1: not started)
        double begin = 0, end = 0;
        bool on = false;
    };
    void advance_to(int64_t client, double t);
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

} // namespace pfcr
