// Privatized, exactly aggregatable client uploads (docs/METHOD.md §7, docs/ARCHITECTURE.md §4). A
// client's float vector x (n entries, e.g. its summed code-table gradient) is privatized locally
// and added as integers into an int64 accumulator, so that the server's weighted aggregate sum_k
// w_k * decode(upload_k), w_k = rows_k / total_rows, is exact and order-free once the caller has
// summed the accumulators across ranks (MPI_Allreduce SUM, not done here). Not done here:
// communication, client sampling, secure aggregation, privacy amplification by sampling, and any
// parallelism (privatize_add is a serial loop; callers serialize acc).
//
// Randomness.  Every draw comes from KeyedRng(seed, RngPurpose::privacy) addressed by the
//   Philox counter (round, client, tag, element): one 128-bit block per element and use (per
//   element pair for gaussian's Box-Muller; tags listed in privacy.cpp), so a draw never
//   depends on thread or rank layout, nor on the other elements or on n.
//
// Mechanisms (c = clip, K = buckets, s = c / K, B = 2K + 1, eps = epsilon):
//   none  acc[i] += llround(w_k * x[i] * 2^bits) (encode_add of fixed_point.hpp, overflow
//     bound fixed_point_max_abs(n_contributions)); decode acc * 2^-bits. Exact up to the
//     2^-(bits+1) rounding per contribution.
//   pfcr-reference  the arithmetic of PFCR's published code, literally, flaws included:
//     q = round_half_even((clamp(x,-c,c) + c) / s) in float32 (0..2K); with probability
//     p = (e^eps + 1) / (e^eps + 2) add u ~ U{0..K-1}; r = q mod K; acc[i] += rows_k * r.
//     Decode: m = acc / total_rows = sum_k w_k r_k, out = (m - c) * s.
//     Flaws (kept on purpose, to reproduce the paper): the +c offset is c/s = K buckets and
//     "mod K" removes it, so r forgets the sign of x (x and x - c collide); m is in bucket
//     units but c is subtracted in gradient units; nothing removes the bias of the added
//     u (E[r] -> (K-1)/2 as p -> 1); and p grows with eps, so a *larger* eps adds *more*
//     noise. Since q + u mod K is uniform on Z_K, r is in fact K-ary randomized response on
//     q mod K: P(r = q mod K) = (1 - p) + p/K, any other value p/K, i.e. the randomization
//     is eps'-LDP per coordinate with eps' = ln(1 + K(1 - p)/p) — not the configured eps
//     (eps' = 4.70 at eps = 0.3, K = 256). See pfcr_reference_effective_epsilon.
//   randomized-response  correct eps-LDP k-ary randomized response on the B buckets of
//     [-c, c] (bucket j <-> value j*s - c). Per element: t = (clamp(x,-c,c) + c)/s, q =
//     floor(t) + Bernoulli(t - floor(t)) (unbiased stochastic rounding, E[q] = t); report
//     y = q with probability p = e^eps / (e^eps + B - 1), else one of the other B - 1
//     buckets uniformly. Likelihood ratio p / ((1-p)/(B-1)) = e^eps for any two inputs.
//     acc[i] += rows_k * y. Unbiased decoding: with S1 = sum_{j<B} j = B(B-1)/2,
//       E[y | q] = p q + (1-p)/(B-1) (S1 - q) = a q + b,
//       a = (B p - 1) / (B - 1) (> 0 for eps > 0),  b = (1 - p) B / 2,
//     and sum_k w_k = 1, so E[m] = a sum_k w_k E[q_k] + b with m = acc / total_rows; hence
//     out = ((m - b) / a) * s - c has E[out] = sum_k w_k clamp(x_k, -c, c).
//   gaussian  per-client L2 clipping and Gaussian noise (the Gaussian mechanism run locally):
//     v = x * min(1, C / ||x||_2) + N(0, (sigma C)^2) per element (norm in double, index
//     order; normals by Box-Muller from the keyed uniforms), then encoded like none. Unbiased
//     for the clipped vectors' weighted sum: the noise has mean 0.
//
// Privacy spent (privacy_spent): see each mechanism's comment in privacy.cpp and docs/PRIVACY.md.
#pragma once

#include <cstdint>
#include <string>

namespace pfcr {

class Config;

enum class PrivacyMechanism { none, pfcr_reference, randomized_response, gaussian };

// "none", "pfcr-reference", "randomized-response", "gaussian"; throws pfcr::Error otherwise.
PrivacyMechanism parse_privacy_mechanism(const std::string& name);
// The config spelling of m (inverse of parse_privacy_mechanism).
std::string mechanism_name(PrivacyMechanism m);

struct PrivacyOptions {
    PrivacyMechanism mechanism = PrivacyMechanism::none;
    double epsilon = 0.3;          // privacy.epsilon (pfcr-reference, randomized-response)
    double clip = 0.12;            // privacy.clip: c, element clamp range [-c, c] (buckets)
    int64_t buckets = 256;         // privacy.buckets: K of PFCR (bucket step s = c / K)
    double clip_norm = 1.0;        // privacy.clip_norm: gaussian L2 clip C
    double noise_multiplier = 1.0; // privacy.noise_multiplier: sigma, noise std = sigma * C
    double delta = 1e-5;           // privacy.delta: the delta of gaussian's (eps, delta)
    int fixed_point_bits = 40;     // federation.fixed_point_bits (none, gaussian)
};

// Throws pfcr::Error naming the offending field if the options are out of range. Tests may
// use noise_multiplier = 0 (zero noise == identity); the config requires > 0.
void validate(const PrivacyOptions& opt);

// Adds client `client`'s privatized contribution for `round` to acc[0..n). A pure function
// of its arguments and acc (callers serialize access to acc). rows >= 1 are the client's
// training rows, total_rows the sum of rows over every client contributing to acc this round
// (all ranks), n_contributions the number of those clients (for the overflow bounds).
// round, client must be in [0, 2^32); n <= 2^32. Throws pfcr::Error naming the element on
// NaN/Inf input or on an overflow of the int64 encoding (acc[0..i) then already updated).
void privatize_add(const PrivacyOptions& opt, uint64_t seed, int64_t round, int64_t client,
                   int64_t rows, int64_t total_rows, int64_t n_contributions, const float* x,
                   int64_t n, int64_t* acc);

// out[0..n) = the weighted aggregate sum_k w_k * xhat_k decoded from the summed accumulator.
// total_rows as passed to privatize_add.
void privatize_decode(const PrivacyOptions& opt, const int64_t* acc, int64_t n, int64_t total_rows,
                      float* out);

// Privacy accounting for the log and metrics of one client that took part in
// rounds_participated rounds. epsilon_* are +inf when there is no guarantee (none).
struct PrivacySpent {
    double epsilon_round = 0; // per round (randomized-response: per coordinate, see note)
    double epsilon_total = 0; // over rounds_participated rounds
    double delta = 0;         // 0 for pure eps-LDP
    bool valid_ldp = false;   // whether epsilon_* are a real local-DP guarantee
    std::string note;         // how to read the numbers
};
PrivacySpent privacy_spent(const PrivacyOptions& opt, int64_t rounds_participated);

// One log line: mechanism and its parameters, e.g.
// "privacy: randomized-response epsilon=0.3 clip=0.12 buckets=256 (513 levels, step 0.000469)".
std::string describe(const PrivacyOptions& opt);

// --- helpers exposed for tests and callers ---------------------------------------------

// min(1, C / ||x||_2) with the norm summed in double in index order (1 for x = 0). Throws
// pfcr::Error naming the element if x has a NaN/Inf.
double l2_clip_factor(const float* x, int64_t n, double clip_norm);
// pfcr-reference's quantizer: round_half_even((clamp(x,-c,c) + c) / s) in float32, 0..2K.
int64_t pfcr_reference_bucket(float x, double clip, int64_t buckets);
// pfcr-reference's add probability p = (e^eps + 1) / (e^eps + 2).
double pfcr_reference_add_probability(double epsilon);
// The LDP level its randomization actually has per coordinate: ln(1 + K (1 - p) / p).
double pfcr_reference_effective_epsilon(double epsilon, int64_t buckets);
// randomized-response's keep probability p = e^eps / (e^eps + B - 1), B = 2K + 1.
double rr_keep_probability(double epsilon, int64_t buckets);

} // namespace pfcr
