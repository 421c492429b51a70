// Privatized client uploads and their accounting (see privacy.hpp for the math of each
// mechanism and docs/PRIVACY.md for the user-facing summary).
#include "federation/privacy.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "federation/fixed_point.hpp"

namespace pfcr {

namespace {

// Philox counter (round, client, tag, element): one block of 4 x 32 bits per element and use.
// Retries of a rejection draw use tag | attempt << 8 (attempt >= 1).
constexpr uint32_t tag_pfcr = 1;     // words 0,1: add coin; words 2,3: the added u in 0..K-1
constexpr uint32_t tag_rr_keep = 2;  // words 0,1: stochastic rounding; words 2,3: keep coin
constexpr uint32_t tag_rr_other = 3; // words 0,1: which of the other B-1 buckets
constexpr uint32_t tag_gaussian = 4; // element pair i/2: words 0..3 -> one Box-Muller pair
constexpr int64_t max_buckets = int64_t(1) << 20;

// Uniform in [0, 1) from 53 of the 64 bits (hi, lo).
double uniform53(uint32_t hi, uint32_t lo) {
    return double(((uint64_t(hi) << 32) | lo) >> 11) * 0x1.0p-53;
}

// Uniform integer in [0, n), n >= 1, exactly: 64 random bits x are accepted when below the
// largest multiple of n (as KeyedRng::Stream::below) and give x % n. A rejection (probability
// < n / 2^64, i.e. < 2^-43 here) draws again from the block with tag | attempt << 8 at the
// same (round, client, element).
uint64_t uniform_below(uint64_t n, uint64_t bits, const KeyedRng& rng, uint32_t round,
                       uint32_t client, uint32_t tag, uint32_t element) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (uint32_t attempt = 1; bits >= limit; ++attempt) {
        const PhiloxCounter b = rng.block(round, client, tag | (attempt << 8), element);
        bits = (uint64_t(b[0]) << 32) | b[1];
    }
    return bits % n;
}

// acc[i] += llround(v * weight * 2^scale_bits), with encode_add's checks (fixed_point.cpp)
// and message, for one double value.
void encode_one(int64_t* acc, int64_t i, double v, double weight, double scale, int scale_bits,
                int64_t max_abs) {
    const double e = std::round(v * weight * scale);
    if (!(std::fabs(e) < 0x1p63) || std::llabs(int64_t(e)) > max_abs)
        fail("privacy: element ", i, ": weight * (privatized value) = ", v * weight,
             " exceeds the overflow bound ", std::ldexp(double(max_abs), -scale_bits),
             " (fixed_point_bits ", scale_bits, "); lower the noise or the fixed-point bits");
    int64_t sum;
    if (__builtin_add_overflow(acc[i], int64_t(e), &sum))
        fail("privacy: element ", i, ": int64 accumulator overflow");
    acc[i] = sum;
}

void add_bucket(int64_t* acc, int64_t i, int64_t rows, int64_t y) {
    int64_t sum;
    if (__builtin_add_overflow(acc[i], rows * y, &sum))
        fail("privacy: element ", i,
             ": int64 accumulator overflow (total_rows smaller than the "
             "rows actually added?)");
    acc[i] = sum;
}

void check_finite(float v, int64_t i) {
    if (!std::isfinite(v)) fail("privacy: element ", i, " of the upload is ", v);
}

// Bucket mechanisms add rows * y with 0 <= y <= y_max: every partial sum stays below
// total_rows * y_max, and each contribution below fixed_point_max_abs(n_contributions).
void check_bucket_bounds(int64_t rows, int64_t total_rows, int64_t n_contributions, int64_t y_max) {
    const int64_t ym = std::max<int64_t>(y_max, 1);
    check(rows <= fixed_point_max_abs(n_contributions) / ym && total_rows <= INT64_MAX / ym,
          "privacy: rows ", rows, " / total_rows ", total_rows, " times the largest bucket ", y_max,
          " overflow int64 with ", n_contributions, " contributions");
}

// sigma-zCDP conversion to (eps, delta)-DP (Bun & Steinke 2016, Prop. 1.3).
double zcdp_epsilon(double rho, double delta) {
    return rho + 2.0 * std::sqrt(rho * std::log(1.0 / delta));
}

} // namespace

PrivacyMechanism parse_privacy_mechanism(const std::string& name) {
    if (name == "none") return PrivacyMechanism::none;
    if (name == "pfcr-reference") return PrivacyMechanism::pfcr_reference;
    if (name == "randomized-response") return PrivacyMechanism::randomized_response;
    if (name == "gaussian") return PrivacyMechanism::gaussian;
    fail("unknown privacy.mechanism '", name,
         "' (expected none, pfcr-reference, randomized-response or gaussian)");
}

std::string mechanism_name(PrivacyMechanism m) {
    switch (m) {
    case PrivacyMechanism::none:
        return "none";
    case PrivacyMechanism::pfcr_reference:
        return "pfcr-reference";
    case PrivacyMechanism::randomized_response:
        return "randomized-response";
    case PrivacyMechanism::gaussian:
        return "gaussian";
    }
    fail("privacy: invalid mechanism value ", int(m));
}

void validate(const PrivacyOptions& o) {
    check(std::isfinite(o.epsilon) && o.epsilon > 0, "privacy.epsilon must be > 0, got ",
          o.epsilon);
    check(std::isfinite(o.clip) && o.clip > 0, "privacy.clip must be > 0, got ", o.clip);
    check(o.buckets >= 1 && o.buckets <= max_buckets, "privacy.buckets must be in [1, 2^20], got ",
          o.buckets);
    check(std::isfinite(o.clip_norm) && o.clip_norm > 0, "privacy.clip_norm must be > 0, got ",
          o.clip_norm);
    check(std::isfinite(o.noise_multiplier) && o.noise_multiplier >= 0,
          "privacy.noise_multiplier must be >= 0, got ", o.noise_multiplier);
    check(o.delta > 0 && o.delta < 1, "privacy.delta must be in (0, 1), got ", o.delta);
    check(o.fixed_point_bits >= 0 && o.fixed_point_bits <= 62,
          "privacy: fixed_point_bits must be in [0, 62], got ", o.fixed_point_bits);
}

double l2_clip_factor(const float* x, int64_t n, double clip_norm) {
    double sum_sq = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        check_finite(x[i], i);
        sum_sq += double(x[i]) * double(x[i]);
    }
    const double norm = std::sqrt(sum_sq);
    return norm > clip_norm ? clip_norm / norm : 1.0;
}

int64_t pfcr_reference_bucket(float x, double clip, int64_t buckets) {
    // float32 throughout, as torch computes on the float32 gradient with Python-float
    // scalars; std::nearbyint under the default rounding mode is torch.round (half to even).
    // (PyTorch on CUDA multiplies by 1/s instead of dividing, which can move an exact tie by
    // one ulp; we divide, as the Python expression reads.)
    const float c = float(clip);
    const float s = float(clip / double(buckets));
    const float t = (std::clamp(x, -c, c) + c) / s;
    return int64_t(std::nearbyint(t));
}

double pfcr_reference_add_probability(double epsilon) {
    // (e^eps + 1) / (e^eps + 2) = 1 - 1 / (e^eps + 2), without inf / inf for large eps.
    return 1.0 - 1.0 / (std::exp(epsilon) + 2.0);
}

double pfcr_reference_effective_epsilon(double epsilon, int64_t buckets) {
    const double p = pfcr_reference_add_probability(epsilon);
    return std::log1p(double(buckets) * (1.0 - p) / p);
}

double rr_keep_probability(double epsilon, int64_t buckets) {
    // e^eps / (e^eps + B - 1) = 1 / (1 + (B - 1) e^-eps): finite for any eps.
    const double B = double(2 * buckets + 1);
    return 1.0 / (1.0 + (B - 1.0) * std::exp(-epsilon));
}

void privatize_add(const PrivacyOptions& opt, uint64_t seed, int64_t round, int64_t client,
                   int64_t rows, int64_t total_rows, int64_t n_contributions, const float* x,
                   int64_t n, int64_t* acc) {
    validate(opt);
    constexpr int64_t u32_end = int64_t(1) << 32;
    check(round >= 0 && round < u32_end, "privacy: round must be in [0, 2^32), got ", round);
    check(client >= 0 && client < u32_end, "privacy: client must be in [0, 2^32), got ", client);
    check(n >= 0 && n <= u32_end, "privacy: upload length must be in [0, 2^32], got ", n);
    check(rows >= 1 && total_rows >= rows, "privacy: need 1 <= rows <= total_rows, got rows ", rows,
          ", total_rows ", total_rows);
    check(n_contributions >= 1, "privacy: n_contributions must be >= 1, got ", n_contributions);
    const double weight = double(rows) / double(total_rows);
    const KeyedRng rng(seed, RngPurpose::privacy);
    const auto r32 = uint32_t(round), c32 = uint32_t(client);

    switch (opt.mechanism) {
    case PrivacyMechanism::none:
        encode_add(acc, x, n, weight, opt.fixed_point_bits, fixed_point_max_abs(n_contributions));
        return;

    case PrivacyMechanism::pfcr_reference: {
        const int64_t K = opt.buckets;
        check_bucket_bounds(rows, total_rows, n_contributions, K - 1);
        const double p = pfcr_reference_add_probability(opt.epsilon);
        for (int64_t i = 0; i < n; ++i) {
            check_finite(x[i], i);
            const int64_t q = pfcr_reference_bucket(x[i], opt.clip, K); // 0..2K
            const PhiloxCounter b = rng.block(r32, c32, tag_pfcr, uint32_t(i));
            int64_t v = q;
            if (uniform53(b[0], b[1]) < p)
                v += int64_t(uniform_below(uint64_t(K), (uint64_t(b[2]) << 32) | b[3], rng, r32,
                                           c32, tag_pfcr, uint32_t(i)));
            add_bucket(acc, i, rows, v % K);
        }
        return;
    }

    case PrivacyMechanism::randomized_response: {
        const int64_t K = opt.buckets, B = 2 * K + 1;
        check_bucket_bounds(rows, total_rows, n_contributions, B - 1);
        const double c = opt.clip, s = c / double(K);
        const double p = rr_keep_probability(opt.epsilon, K);
        for (int64_t i = 0; i < n; ++i) {
            check_finite(x[i], i);
            const PhiloxCounter b = rng.block(r32, c32, tag_rr_keep, uint32_t(i));
            // Unbiased stochastic rounding of t in [0, 2K] to floor(t) or floor(t) + 1.
            const double t = (std::clamp(double(x[i]), -c, c) + c) / s;
            const double lo = std::floor(t);
            int64_t q = 2 * K;
            if (lo < double(2 * K)) q = int64_t(lo) + (uniform53(b[0], b[1]) < t - lo ? 1 : 0);
            int64_t y = q;
            if (!(uniform53(b[2], b[3]) < p)) {
                // One of the other B - 1 buckets, uniformly: j in [0, B-1), skipping q.
                const PhiloxCounter o = rng.block(r32, c32, tag_rr_other, uint32_t(i));
                const auto j = int64_t(uniform_below(uint64_t(B - 1), (uint64_t(o[0]) << 32) | o[1],
                                                     rng, r32, c32, tag_rr_other, uint32_t(i)));
                y = j < q ? j : j + 1;
            }
            add_bucket(acc, i, rows, y);
        }
        return;
    }

    case PrivacyMechanism::gaussian: {
        const double f = l2_clip_factor(x, n, opt.clip_norm); // also checks finiteness
        const double sd = opt.noise_multiplier * opt.clip_norm;
        const double scale = std::ldexp(1.0, opt.fixed_point_bits);
        const int64_t max_abs = fixed_point_max_abs(n_contributions);
        constexpr double two_pi = 6.283185307179586476925286766559;
        for (int64_t i = 0; i < n; i += 2) {
            // Box-Muller on the pair (i, i+1): u1 in (0, 1], u2 in [0, 1).
            const PhiloxCounter b = rng.block(r32, c32, tag_gaussian, uint32_t(i / 2));
            const double u1 = double((((uint64_t(b[0]) << 32) | b[1]) >> 11) + 1) * 0x1.0p-53;
            const double u2 = uniform53(b[2], b[3]);
            const double r = std::sqrt(-2.0 * std::log(u1));
            const double z[2] = {r * std::cos(two_pi * u2), r * std::sin(two_pi * u2)};
            for (int64_t k = 0; k < 2 && i + k < n; ++k)
                encode_one(acc, i + k, double(x[i + k]) * f + sd * z[k], weight, scale,
                           opt.fixed_point_bits, max_abs);
        }
        return;
    }
    }
}

void privatize_decode(const PrivacyOptions& opt, const int64_t* acc, int64_t n, int64_t total_rows,
                      float* out) {
    validate(opt);
    check(total_rows >= 1, "privacy decode: total_rows must be >= 1, got ", total_rows);
    const double c = opt.clip, s = c / double(opt.buckets);
    switch (opt.mechanism) {
    case PrivacyMechanism::none:
    case PrivacyMechanism::gaussian:
        decode(out, acc, n, opt.fixed_point_bits);
        return;

    case PrivacyMechanism::pfcr_reference:
        // The published formula, literally: m is in bucket units (0..K-1) yet c is subtracted
        // in gradient units, and nothing undoes the mod-K sign loss or the added noise's mean.
        for (int64_t i = 0; i < n; ++i) {
            const double m = double(acc[i]) / double(total_rows);
            out[i] = float((m - c) * s);
        }
        return;

    case PrivacyMechanism::randomized_response: {
        const double B = double(2 * opt.buckets + 1);
        const double p = rr_keep_probability(opt.epsilon, opt.buckets);
        const double a = (B * p - 1.0) / (B - 1.0), b = (1.0 - p) * B / 2.0;
        for (int64_t i = 0; i < n; ++i) {
            const double m = double(acc[i]) / double(total_rows);
            out[i] = float((m - b) / a * s - c);
        }
        return;
    }
    }
}

PrivacySpent privacy_spent(const PrivacyOptions& opt, int64_t rounds_participated) {
    validate(opt);
    check(rounds_participated >= 0, "privacy_spent: rounds must be >= 0, got ",
          rounds_participated);
    const double rounds = double(rounds_participated);
    constexpr double inf = std::numeric_limits<double>::infinity();
    PrivacySpent ps;
    std::ostringstream note;
    switch (opt.mechanism) {
    case PrivacyMechanism::none:
        ps = {inf, rounds_participated > 0 ? inf : 0.0, 0.0, false, ""};
        note << "no privacy mechanism: uploads are exact";
        break;
    case PrivacyMechanism::pfcr_reference:
        ps = {opt.epsilon, rounds * opt.epsilon, 0.0, false, ""};
        note << std::setprecision(4)
             << "NOT a valid LDP mechanism for the configured epsilon (PFCR's published "
                "arithmetic, reproduced): epsilon values are nominal; decoding is biased and "
                "loses the sign, and noise grows with epsilon. Its randomization is in fact "
             << pfcr_reference_effective_epsilon(opt.epsilon, opt.buckets)
             << "-LDP per coordinate per round (K-ary randomized response on q mod K)";
        break;
    case PrivacyMechanism::randomized_response:
        ps = {opt.epsilon, rounds * opt.epsilon, 0.0, true, ""};
        note << "epsilon-LDP per coordinate per round; a client's vector of n coordinates "
                "composes to n*epsilon per round by basic composition; total = rounds*epsilon "
                "(basic composition)";
        break;
    case PrivacyMechanism::gaussian: {
        if (opt.noise_multiplier == 0.0) {
            ps = {inf, rounds_participated > 0 ? inf : 0.0, opt.delta, false, ""};
            note << "gaussian with zero noise: clipping only, no privacy";
            break;
        }
        const double rho = 2.0 / (opt.noise_multiplier * opt.noise_multiplier);
        ps = {zcdp_epsilon(rho, opt.delta), zcdp_epsilon(rounds * rho, opt.delta), opt.delta, true,
              ""};
        note << std::setprecision(6) << "(epsilon, delta)-LDP of the whole clipped vector: "
             << "Gaussian mechanism, L2 sensitivity 2*clip_norm (replace-one), rho = 2/sigma^2 = "
             << rho << " zCDP per round, rho_total = rounds*rho, epsilon = rho + "
             << "2*sqrt(rho*ln(1/delta))";
        break;
    }
    }
    ps.note = note.str();
    return ps;
}

std::string describe(const PrivacyOptions& opt) {
    std::ostringstream os;
    os << std::setprecision(6) << "privacy: " << mechanism_name(opt.mechanism);
    const int64_t K = opt.buckets;
    const double s = opt.clip / double(K);
    switch (opt.mechanism) {
    case PrivacyMechanism::none:
        os << " (exact fixed-point sums, " << opt.fixed_point_bits << " fractional bits)";
        break;
    case PrivacyMechanism::pfcr_reference:
        os << " epsilon=" << opt.epsilon << " clip=" << opt.clip << " buckets=" << K
           << " (add probability " << pfcr_reference_add_probability(opt.epsilon) << ", step " << s
           << ") WARNING: not a valid LDP mechanism, biased decoding";
        break;
    case PrivacyMechanism::randomized_response:
        os << " epsilon=" << opt.epsilon << " clip=" << opt.clip << " buckets=" << K << " ("
           << 2 * K + 1 << " levels, step " << s << ", keep probability "
           << rr_keep_probability(opt.epsilon, K) << ")";
        break;
    case PrivacyMechanism::gaussian:
        os << " clip_norm=" << opt.clip_norm << " noise_multiplier=" << opt.noise_multiplier
           << " (noise std " << opt.noise_multiplier * opt.clip_norm << ") delta=" << opt.delta
           << " fixed_point_bits=" << opt.fixed_point_bits;
        break;
    }
    return os.str();
}

} // namespace pfcr
