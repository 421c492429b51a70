// Implementation of `pfcr synth` (see synth.hpp): a shared latent topic space, per-domain item
// catalogues drawn from it, topic-driven user sequences, and the UniSRec atomic files plus
// <output>/synth.yaml. It never reads data and never featurizes text: the .text written here is
// input for the featurizer, the float32 feature file is the "features: file" path.
#include "data/synth.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <unordered_map>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/atomic_file.hpp"

namespace pfcr {
namespace {

// Every random draw comes from a stream addressed by (domain, entity, what). `shared_domain`
// marks the streams every domain reads (topic geometry, feature projection): that is what
// makes an item's meaning comparable across domains.
constexpr uint32_t shared_domain = 0xFFFFFFFFu;
enum Draw : uint32_t {
    draw_topic_geometry = 1,   // entity = topic: centre and trajectory directions
    draw_projection = 2,       // entity = 0: latent -> feature projection
    draw_domain = 3,           // entity = 0: sizes, sparsity, topic subset and weights
    draw_item = 4,             // entity = item: topic, position u, latent noise
    draw_item_feature = 5,     // entity = item: feature noise
    draw_item_text = 6,        // entity = item: word choices
    draw_topic_popularity = 7, // entity = local topic: popularity order of its items
    draw_user = 8,             // entity = user: preferred topics, length, sequence
};

constexpr double two_pi = 6.283185307179586476925286766559;

// Latent geometry, in units where a topic centre has N(0,1) coordinates (norm ~ sqrt(D)).
// The trajectory radius keeps items of one topic clearly closer to each other than to other
// topics (mean same-topic cosine ~0.75) while still separating early from late positions.
constexpr double trajectory_radius = 0.5;  // x sqrt(D): circle in the (d1, d2) plane
constexpr double trajectory_wiggle = 0.25; // x sqrt(D): second harmonic along d3
constexpr double item_latent_noise = 0.25; // per coordinate

// Sequences: a "near neighbour" step moves u forward by step_min + Exp(step_mean), so the
// next item is usually one of the next few items along the topic's trajectory.
constexpr double step_min = 0.01, step_mean = 0.03, step_max = 0.5;
constexpr double prefer_own_topic = 0.7;   // a topic switch goes to a preferred topic this often
constexpr double two_preferences = 0.5;    // share of users with two preferred topics
constexpr double topic_weight_sigma = 0.5; // log-normal spread of topic sizes in a domain
constexpr int max_redraws = 4;             // popularity redraws before avoiding a repeat

// Text vocabulary per topic / bucket / domain (see item_text()).
constexpr int64_t title_words = 8, category_words = 2, n_buckets = 8, bucket_words = 3;
constexpr int64_t brands_per_domain = 5;

int64_t digits(int64_t v) {
    int64_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}

void append_int(std::string& out, int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_padded(std::string& out, int64_t v, int64_t width) {
    for (int64_t n = digits(v); n < width; ++n) out.push_back('0');
    append_int(out, v);
}

std::string domain_name(int64_t d, int64_t n_domains) {
    std::string s = "synth";
    append_padded(s, d, std::max<int64_t>(3, digits(n_domains - 1)));
    return s;
}

void validate(const SynthOptions& o) {
    const auto finite = [](double x) { return std::isfinite(x); };
    constexpr int64_t i32 = std::numeric_limits<int32_t>::max();
    check(!o.output.empty(), "synth: output folder must not be empty");
    check(!o.feature_suffix.empty() && o.feature_suffix.find('/') == std::string::npos,
          "synth: feature_suffix '", o.feature_suffix, "' must be a non-empty file suffix");
    check(o.n_domains >= 1 && o.n_domains < int64_t(shared_domain),
          "synth: n_domains = ", o.n_domains, " must be >= 1");
    check(o.users_min >= 1, "synth: users_min = ", o.users_min, " must be >= 1");
    check(o.users_min <= o.users_max && o.users_max <= i32, "synth: users_min = ", o.users_min,
          " must be <= users_max = ", o.users_max, " (at most 2^31-1)");
    check(o.items_min >= 2, "synth: items_min = ", o.items_min,
          " must be >= 2 (a sequence cannot repeat an item immediately)");
    check(o.items_min <= o.items_max && o.items_max <= i32, "synth: items_min = ", o.items_min,
          " must be <= items_max = ", o.items_max, " (at most 2^31-1)");
    check(o.seq_len_min >= 4, "synth: seq_len_min = ", o.seq_len_min,
          " must be >= 4 (train, valid and test each need a target with a history)");
    check(o.seq_len_min <= o.seq_len_max && o.seq_len_max <= i32,
          "synth: seq_len_min = ", o.seq_len_min, " must be <= seq_len_max = ", o.seq_len_max);
    check(finite(o.seq_len_mean_min) && finite(o.seq_len_mean_max) && o.seq_len_mean_min > 0 &&
              o.seq_len_mean_min <= o.seq_len_mean_max,
          "synth: need 0 < seq_len_mean_min (", o.seq_len_mean_min, ") <= seq_len_mean_max (",
          o.seq_len_mean_max, ")");
    check(o.feature_dim >= 1 && o.feature_dim <= 65536, "synth: feature_dim = ", o.feature_dim,
          " must be in [1, 65536]");
    check(o.latent_dim >= 1 && o.latent_dim <= 4096, "synth: latent_dim = ", o.latent_dim,
          " must be in [1, 4096]");
    check(o.n_topics >= 1 && o.n_topics <= i32, "synth: n_topics = ", o.n_topics, " must be >= 1");
    check(o.topics_per_domain >= 1 && o.topics_per_domain <= o.n_topics,
          "synth: topics_per_domain = ", o.topics_per_domain,
          " must be in [1, n_topics = ", o.n_topics, "]");
    check(finite(o.popularity_exponent) && o.popularity_exponent >= 0,
          "synth: popularity_exponent = ", o.popularity_exponent, " must be >= 0");
    check(o.topic_stay >= 0 && o.topic_stay <= 1, "synth: topic_stay = ", o.topic_stay,
          " must be in [0, 1]");
    check(o.transition_prob >= 0 && o.transition_prob <= 1,
          "synth: transition_prob = ", o.transition_prob, " must be in [0, 1]");
    check(finite(o.feature_noise) && o.feature_noise >= 0,
          "synth: feature_noise = ", o.feature_noise, " must be >= 0");
    check(o.max_history >= 1, "synth: max_history = ", o.max_history, " must be >= 1");
}

// Index of the first entry of a normalised CDF that exceeds x in [0, 1).
int64_t draw_from_cdf(const double* cdf, int64_t n, double x) {
    const int64_t k = std::upper_bound(cdf, cdf + n, x) - cdf;
    return std::min(k, n - 1);
}

// In-place prefix sum, scaled so the last entry is exactly 1.
void normalise_cdf(double* w, int64_t n) {
    for (int64_t i = 1; i < n; ++i) w[i] += w[i - 1];
    const double total = w[n - 1];
    for (int64_t i = 0; i < n; ++i) w[i] /= total;
    w[n - 1] = 1.0;
}

int64_t log_uniform_int(KeyedRng::Stream& r, int64_t lo, int64_t hi) {
    const double x = std::exp(std::log(double(lo)) +
                              r.uniform() * (std::log(double(hi) + 1.0) - std::log(double(lo))));
    return std::clamp(int64_t(x), lo, hi);
}

// Everything about one domain that is decided before its items and users.
struct DomainPlan {
    int64_t n_users = 0, n_items = 0;
    double mean_len = 0;           // target mean sequence length (before clamping)
    std::vector<int32_t> topics;   // (T) shared topic id of local topic k
    std::vector<double> topic_cdf; // (T) cumulative topic weights (share of items and users)
};

DomainPlan plan_domain(const KeyedRng& rng, const SynthOptions& o, int64_t d) {
    auto r = rng.stream(uint32_t(d), 0, draw_domain);
    DomainPlan p;
    p.n_users = log_uniform_int(r, o.users_min, o.users_max);
    p.n_items = log_uniform_int(r, o.items_min, o.items_max);
    p.mean_len = o.seq_len_mean_min + r.uniform() * (o.seq_len_mean_max - o.seq_len_mean_min);
    // A domain with fewer items than topics covers fewer topics, so none is empty.
    const int64_t T = std::min(o.topics_per_domain, p.n_items);
    // Partial Fisher-Yates over a virtual identity permutation: the first T entries are a
    // uniform T-subset of the shared topics; only displaced entries are stored, so memory is
    // O(T) even for huge n_topics.
    std::unordered_map<int64_t, int64_t> moved; // position -> value, where value != position
    const auto at = [&](int64_t i) {
        const auto it = moved.find(i);
        return it == moved.end() ? i : it->second;
    };
    for (int64_t k = 0; k < T; ++k) {
        const int64_t j = k + int64_t(r.below(uint64_t(o.n_topics - k)));
        const int64_t vk = at(k), vj = at(j);
        moved[k] = vj;
        moved[j] = vk;
        p.topics.push_back(int32_t(vj));
    }
    p.topic_cdf.resize(T);
    for (int64_t k = 0; k < T; ++k) p.topic_cdf[k] = std::exp(topic_weight_sigma * r.normal());
    normalise_cdf(p.topic_cdf.data(), T);
    return p;
}

// One domain's items: local topic, trajectory position u, and per-topic lookup tables.
struct Catalogue {
    std::vector<int32_t> topic;     // (N) local topic k of item i
    std::vector<double> u;          // (N) position along the topic trajectory, [0, 1)
    std::vector<int64_t> topic_ptr; // (T+1) CSR: items of topic k are [topic_ptr[k], [k+1])
    std::vector<int32_t> by_u;      // (N) items of each topic sorted by u
    std::vector<int32_t> by_pop;    // (N) items of each topic, most popular first
    std::vector<double> pop_cdf;    // (N) per topic, cumulative Zipf weights over by_pop
};

Catalogue make_catalogue(const KeyedRng& rng, const SynthOptions& o, const DomainPlan& p,
                         int64_t d) {
    const int64_t N = p.n_items, T = int64_t(p.topics.size());
    Catalogue c;
    c.topic.resize(N);
    c.u.resize(N);
    for (int64_t i = 0; i < N; ++i) {
        auto r = rng.stream(uint32_t(d), uint32_t(i), draw_item);
        const double x = r.uniform();
        // The first T items go round-robin so that every covered topic has an item.
        c.topic[i] = int32_t(i < T ? i : draw_from_cdf(p.topic_cdf.data(), T, x));
        c.u[i] = r.uniform();
    }
    c.topic_ptr.assign(T + 1, 0);
    for (int64_t i = 0; i < N; ++i) ++c.topic_ptr[c.topic[i] + 1];
    for (int64_t k = 0; k < T; ++k) c.topic_ptr[k + 1] += c.topic_ptr[k];
    c.by_u.resize(N);
    std::vector<int64_t> fill(c.topic_ptr.begin(), c.topic_ptr.end() - 1);
    for (int64_t i = 0; i < N; ++i) c.by_u[fill[c.topic[i]]++] = int32_t(i);
    c.by_pop = c.by_u; // items in index order per topic; shuffled below
    c.pop_cdf.resize(N);
    for (int64_t k = 0; k < T; ++k) {
        const int64_t b = c.topic_ptr[k], n = c.topic_ptr[k + 1] - b;
        std::sort(c.by_u.begin() + b, c.by_u.begin() + b + n, [&](int32_t x, int32_t y) {
            return c.u[x] < c.u[y] || (c.u[x] == c.u[y] && x < y);
        });
        // Popularity is independent of position u: a random order, Zipf weights by rank.
        auto r = rng.stream(uint32_t(d), uint32_t(k), draw_topic_popularity);
        for (int64_t j = n - 1; j > 0; --j)
            std::swap(c.by_pop[b + j], c.by_pop[b + int64_t(r.below(uint64_t(j + 1)))]);
        for (int64_t j = 0; j < n; ++j)
            c.pop_cdf[b + j] = std::pow(double(j + 1), -o.popularity_exponent);
        normalise_cdf(c.pop_cdf.data() + b, n);
    }
    return c;
}

// The item after `prev` along its topic's trajectory, at least `step` further in u (circular:
// the trajectory is a closed loop). Differs from prev whenever the topic has >= 2 items.
int32_t next_along(const Catalogue& c, int32_t prev, double step) {
    const int64_t k = c.topic[prev], b = c.topic_ptr[k], e = c.topic_ptr[k + 1];
    double target = c.u[prev] + step;
    if (target >= 1.0) target -= 1.0;
    int64_t j = std::lower_bound(c.by_u.begin() + b, c.by_u.begin() + e, target,
                                 [&](int32_t item, double t) { return c.u[item] < t; }) -
                c.by_u.begin();
    if (j == e) j = b;
    if (c.by_u[j] == prev) j = (j + 1 == e) ? b : j + 1;
    return c.by_u[j];
}

int32_t draw_popular(const Catalogue& c, int64_t k, double x) {
    const int64_t b = c.topic_ptr[k], n = c.topic_ptr[k + 1] - b;
    return c.by_pop[b + draw_from_cdf(c.pop_cdf.data() + b, n, x)];
}

// One user's chronological sequence, appended to `out`.
void user_sequence(const KeyedRng& rng, const SynthOptions& o, const DomainPlan& p,
                   const Catalogue& c, int64_t d, int64_t user, std::vector<int32_t>& out) {
    auto r = rng.stream(uint32_t(d), uint32_t(user), draw_user);
    const int64_t T = int64_t(p.topics.size());
    int64_t pref[2] = {draw_from_cdf(p.topic_cdf.data(), T, r.uniform()), -1};
    int n_pref = 1;
    if (T >= 2 && r.uniform() < two_preferences) {
        // Rejection against the first preference; bounded, so heavy topics cannot stall it.
        for (int tries = 0; tries < 16 && n_pref == 1; ++tries) {
            const int64_t k = draw_from_cdf(p.topic_cdf.data(), T, r.uniform());
            if (k != pref[0]) pref[n_pref++] = k;
        }
    }
    // Length: seq_len_min + geometric extra with the domain's mean, clamped to seq_len_max.
    int64_t len = o.seq_len_min;
    const double extra_mean = p.mean_len - double(o.seq_len_min);
    if (extra_mean > 0) {
        const double q = extra_mean / (1.0 + extra_mean); // P(extra > j) = q^(j+1)
        const double extra = std::floor(std::log1p(-r.uniform()) / std::log(q));
        len += int64_t(std::min(extra, double(o.seq_len_max - o.seq_len_min)));
    }
    len = std::min(len, o.seq_len_max);

    int64_t topic = pref[0];
    int32_t prev = draw_popular(c, topic, r.uniform());
    out.push_back(prev);
    for (int64_t t = 1; t < len; ++t) {
        const int64_t topic_size = c.topic_ptr[topic + 1] - c.topic_ptr[topic];
        // A one-item topic cannot follow itself; T == 1 implies that topic has >= 2 items.
        bool stay = T == 1 || (r.uniform() < o.topic_stay && topic_size >= 2);
        if (!stay) {
            int64_t others[2];
            int n_others = 0;
            for (int j = 0; j < n_pref; ++j)
                if (pref[j] != topic) others[n_others++] = pref[j];
            if (n_others > 0 && r.uniform() < prefer_own_topic) {
                topic = others[n_others == 1 ? 0 : r.below(2)];
            } else {
                const int64_t k = int64_t(r.below(uint64_t(T - 1)));
                topic = k >= topic ? k + 1 : k;
            }
        }
        int32_t next;
        if (stay && r.uniform() < o.transition_prob) {
            const double step = std::min(step_max, step_min - step_mean * std::log1p(-r.uniform()));
            next = next_along(c, prev, step);
        } else {
            next = draw_popular(c, topic, r.uniform());
            for (int tries = 0; tries < max_redraws && next == prev; ++tries)
                next = draw_popular(c, topic, r.uniform());
            if (next == prev) next = next_along(c, prev, 0.0);
        }
        out.push_back(next);
        prev = next;
    }
}

// Shared topic geometry: centre (D) and three orthonormal trajectory directions (3, D).
// With D < 3 the directions that do not fit stay zero.
std::vector<double> topic_geometry(const KeyedRng& rng, int64_t topic, int64_t D) {
    auto r = rng.stream(shared_domain, uint32_t(topic), draw_topic_geometry);
    std::vector<double> g(4 * D);
    for (auto& x : g) x = r.normal();
    for (int64_t a = 1; a <= 3; ++a) { // Gram-Schmidt on rows 1..3
        double* v = g.data() + a * D;
        for (int64_t b = 1; b < a; ++b) {
            const double* w = g.data() + b * D;
            double dot = 0;
            for (int64_t j = 0; j < D; ++j) dot += v[j] * w[j];
            for (int64_t j = 0; j < D; ++j) v[j] -= dot * w[j];
        }
        double norm = 0;
        for (int64_t j = 0; j < D; ++j) norm += v[j] * v[j];
        norm = std::sqrt(norm);
        const double scale = (a <= D && norm > 1e-9) ? 1.0 / norm : 0.0;
        for (int64_t j = 0; j < D; ++j) v[j] *= scale;
    }
    return g;
}

// projection (F, D), entries N(0, 1/D): one map shared by every domain.
std::vector<double> feature_projection(const KeyedRng& rng, int64_t F, int64_t D) {
    auto r = rng.stream(shared_domain, 0, draw_projection);
    std::vector<double> w(F * D);
    const double s = 1.0 / std::sqrt(double(D));
    for (auto& x : w) x = s * r.normal();
    return w;
}

// Item features (N, F) as little-endian float32 bytes.
std::string item_features(const KeyedRng& rng, const SynthOptions& o, const DomainPlan& p,
                          const Catalogue& c, int64_t d, const std::vector<double>& projection) {
    const int64_t D = o.latent_dim, F = o.feature_dim, N = p.n_items;
    std::vector<std::vector<double>> geometry;
    for (int32_t t : p.topics) geometry.push_back(topic_geometry(rng, t, D));
    const double radius = trajectory_radius * std::sqrt(double(D));
    const double wiggle = trajectory_wiggle * std::sqrt(double(D));
    std::string bytes(size_t(N * F) * sizeof(float), '\0');
    std::vector<double> z(D);
    std::vector<float> row(F);
    for (int64_t i = 0; i < N; ++i) {
        // z = centre + radius (cos th d1 + sin th d2) + wiggle sin(2 th) d3 + noise, th = 2 pi u
        const double* g = geometry[c.topic[i]].data();
        const double th = two_pi * c.u[i];
        const double a1 = radius * std::cos(th), a2 = radius * std::sin(th);
        const double a3 = wiggle * std::sin(2 * th);
        auto r = rng.stream(uint32_t(d), uint32_t(i), draw_item);
        r.uniform(); // topic and u were the first two draws of this stream
        r.uniform();
        for (int64_t j = 0; j < D; ++j)
            z[j] = g[j] + a1 * g[D + j] + a2 * g[2 * D + j] + a3 * g[3 * D + j] +
                   item_latent_noise * r.normal();
        auto rf = rng.stream(uint32_t(d), uint32_t(i), draw_item_feature);
        for (int64_t f = 0; f < F; ++f) {
            const double* w = projection.data() + f * D;
            double x = 0;
            for (int64_t j = 0; j < D; ++j) x += w[j] * z[j];
            row[f] = float(x + o.feature_noise * rf.normal());
        }
        if constexpr (std::endian::native == std::endian::big) {
            for (auto& v : row) {
                const uint32_t b = std::bit_cast<uint32_t>(v);
                v = std::bit_cast<float>((b >> 24) | ((b >> 8) & 0xFF00u) | ((b << 8) & 0xFF0000u) |
                                         (b << 24));
            }
        }
        std::memcpy(bytes.data() + size_t(i * F) * sizeof(float), row.data(),
                    size_t(F) * sizeof(float));
    }
    return bytes;
}

// Pronounceable words for a vocabulary id: base-75 digits -> consonant-vowel syllables. The
// affine map (id * 48271 + 11) mod 75^k is a bijection (48271 is coprime to 3 and 5), so
// distinct ids give distinct words, and neighbouring ids do not look alike.
class Vocabulary {
public:
    Vocabulary(int64_t n_topics, int64_t n_domains) : n_topics_(n_topics) {
        const uint64_t size = uint64_t(domain_base() + n_domains * (1 + brands_per_domain));
        modulus_ = 75 * 75 * 75;
        syllables_ = 3;
        while (modulus_ < size) {
            modulus_ *= 75;
            ++syllables_;
        }
    }
    std::string title(int64_t topic, int64_t j) const { return word(topic * title_words + j); }
    std::string category(int64_t topic, int64_t j) const {
        return word(n_topics_ * title_words + topic * category_words + j);
    }
    std::string bucket(int64_t topic, int64_t b, int64_t j) const {
        return word(n_topics_ * (title_words + category_words) +
                    (topic * n_buckets + b) * bucket_words + j);
    }
    std::string root(int64_t d) const {
        return capital(word(domain_base() + d * (1 + brands_per_domain)));
    }
    std::string brand(int64_t d, int64_t j) const {
        return capital(word(domain_base() + d * (1 + brands_per_domain) + 1 + j));
    }

private:
    int64_t domain_base() const {
        return n_topics_ * (title_words + category_words + n_buckets * bucket_words);
    }
    std::string word(int64_t id) const {
        static constexpr char consonants[] = "bcdfghklmnprstv";
        static constexpr char vowels[] = "aeiou";
        uint64_t x = (uint64_t(id) * 48271u + 11u) % modulus_;
        std::string w;
        for (int s = 0; s < syllables_; ++s, x /= 75) {
            w.push_back(consonants[(x % 75) / 5]);
            w.push_back(vowels[x % 5]);
        }
        return w;
    }
    static std::string capital(std::string w) {
        w[0] = char(w[0] - 'a' + 'A');
        return w;
    }
    int64_t n_topics_;
    uint64_t modulus_;
    int syllables_;
};

// "title. categories. brand. " like the Amazon texts (with the trailing space). The title
// holds topic words and position-bucket words, the categories the topic's fixed category
// words under the domain's root word, and the brand is one of the domain's brands.
std::string item_text(const KeyedRng& rng, const Vocabulary& v, const DomainPlan& p,
                      const Catalogue& c, int64_t d, int64_t i) {
    auto r = rng.stream(uint32_t(d), uint32_t(i), draw_item_text);
    const int64_t t = p.topics[c.topic[i]];
    const int64_t b = std::min<int64_t>(n_buckets - 1, int64_t(c.u[i] * n_buckets));
    const int64_t t1 = int64_t(r.below(title_words));
    const int64_t t2 = (t1 + 1 + int64_t(r.below(title_words - 1))) % title_words;
    const int64_t b1 = int64_t(r.below(bucket_words));
    const int64_t b2 = (b1 + 1 + int64_t(r.below(bucket_words - 1))) % bucket_words;
    const std::string brand = v.brand(d, int64_t(r.below(brands_per_domain)));
    std::string s = brand + " " + v.title(t, t1) + " " + v.title(t, t2) + " " + v.bucket(t, b, b1) +
                    " " + v.bucket(t, b, b2) + " ";
    // A model code makes texts (almost) unique, as real product titles are.
    s.push_back(char('A' + r.below(26)));
    s.push_back(char('A' + r.below(26)));
    append_int(s, 100 + int64_t(r.below(900)));
    s += ". " + v.root(d);
    for (int64_t j = 0; j < category_words; ++j) s += " " + v.category(t, j);
    s += ". " + brand + ". ";
    return s;
}

void write_binary_file_atomic(const std::string& path, const std::string& bytes) {
    AtomicOutput out(path);
    {
        std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
        check(bool(f), out.temp_path(), ": cannot open for writing");
        f.write(bytes.data(), std::streamsize(bytes.size()));
        f.close();
        check(bool(f), out.temp_path(), ": write failed");
    }
    out.commit();
}

// Generates and writes one domain; returns its summary.
SynthDomainSummary write_domain(const KeyedRng& rng, const SynthOptions& o, const Vocabulary& v,
                                const std::vector<double>& projection, int64_t d) {
    const std::string name = domain_name(d, o.n_domains);
    const DomainPlan p = plan_domain(rng, o, d);
    const Catalogue c = make_catalogue(rng, o, p, d);

    std::vector<int64_t> seq_ptr{0}; // (U+1) CSR over sequences
    std::vector<int32_t> seq;        // (interactions) item indices, oldest first
    seq_ptr.reserve(p.n_users + 1);
    for (int64_t u = 0; u < p.n_users; ++u) {
        user_sequence(rng, o, p, c, d, u, seq);
        seq_ptr.push_back(int64_t(seq.size()));
    }

    // Leave-one-out split (data/README.md): train targets s[-3], s[-4], ..., s[1]
    // (newest first), valid s[-2], test s[-1]; histories are the preceding items, capped.
    const char* header = "user_id:token\titem_id_list:token_seq\titem_id:token\n";
    std::string train = header, valid = header, test = header;
    const auto row = [&](std::string& out, int64_t user, const int32_t* s, int64_t target) {
        append_int(out, user);
        out.push_back('\t');
        for (int64_t j = std::max<int64_t>(0, target - o.max_history); j < target; ++j) {
            if (j > std::max<int64_t>(0, target - o.max_history)) out.push_back(' ');
            append_int(out, s[j]);
        }
        out.push_back('\t');
        append_int(out, s[target]);
        out.push_back('\n');
    };
    int64_t n_train = 0;
    for (int64_t u = 0; u < p.n_users; ++u) {
        const int32_t* s = seq.data() + seq_ptr[u];
        const int64_t L = seq_ptr[u + 1] - seq_ptr[u];
        for (int64_t target = L - 3; target >= 1; --target) row(train, u, s, target);
        n_train += L - 3;
        row(valid, u, s, L - 2);
        row(test, u, s, L - 1);
    }

    const std::string did = [&] {
        std::string s = "d";
        append_padded(s, d, std::max<int64_t>(3, digits(o.n_domains - 1)));
        return s;
    }();
    const int64_t item_width = std::max<int64_t>(6, digits(o.items_max - 1));
    const int64_t user_width = std::max<int64_t>(6, digits(o.users_max - 1));
    std::string item2index, user2index, text = "item_id:token\ttext:token_seq\n";
    for (int64_t i = 0; i < p.n_items; ++i) {
        std::string raw = did + "i";
        append_padded(raw, i, item_width);
        item2index += raw + "\t";
        append_int(item2index, i);
        item2index.push_back('\n');
        text += raw + "\t" + item_text(rng, v, p, c, d, i) + "\n";
    }
    for (int64_t u = 0; u < p.n_users; ++u) {
        user2index += did + "u";
        append_padded(user2index, u, user_width);
        user2index.push_back('\t');
        append_int(user2index, u);
        user2index.push_back('\n');
    }

    const std::string base = (std::filesystem::path(o.output) / name / name).string() + ".";
    write_text_file_atomic(base + "train.inter", train);
    write_text_file_atomic(base + "valid.inter", valid);
    write_text_file_atomic(base + "test.inter", test);
    write_text_file_atomic(base + "item2index", item2index);
    write_text_file_atomic(base + "user2index", user2index);
    write_text_file_atomic(base + "text", text);
    write_binary_file_atomic(base + o.feature_suffix, item_features(rng, o, p, c, d, projection));

    SynthDomainSummary sum;
    sum.name = name;
    sum.n_users = p.n_users;
    sum.n_items = p.n_items;
    sum.n_interactions = int64_t(seq.size());
    sum.n_train_rows = n_train;
    sum.mean_seq_len = double(seq.size()) / double(p.n_users);
    return sum;
}

// YAML double-quoted scalar.
std::string yaml_quote(const std::string& s) {
    std::string q = "\"";
    for (const char ch : s) {
        if (ch == '"' || ch == '\\') {
            q.push_back('\\');
            q.push_back(ch);
        } else if (uint8_t(ch) < 0x20) {
            static constexpr char hex[] = "0123456789abcdef";
            q += "\\x";
            q.push_back(hex[uint8_t(ch) >> 4]);
            q.push_back(hex[uint8_t(ch) & 15]);
        } else {
            q.push_back(ch);
        }
    }
    return q + "\"";
}

} // namespace

SynthSummary write_synthetic_dataset(const SynthOptions& opt) {
    validate(opt);
    const KeyedRng rng(opt.seed, RngPurpose::synth);
    const Vocabulary vocabulary(opt.n_topics, opt.n_domains);
    const std::vector<double> projection = feature_projection(rng, opt.feature_dim, opt.latent_dim);

    SynthSummary summary;
    summary.domains.resize(size_t(opt.n_domains));
    // Domains are independent and every stream is keyed by domain, so the thread layout
    // cannot change any byte; each domain writes only its own folder.
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, opt.n_domains, 1),
                      [&](const tbb::blocked_range<int64_t>& range) {
                          for (int64_t d = range.begin(); d < range.end(); ++d)
                              summary.domains[size_t(d)] =
                                  write_domain(rng, opt, vocabulary, projection, d);
                      });

    std::string yaml = "data:\n  path: " + yaml_quote(opt.output) + "\n  domains: [";
    for (int64_t d = 0; d < opt.n_domains; ++d)
        yaml += (d ? ", " : "") + yaml_quote(summary.domains[size_t(d)].name);
    yaml += "]\n  features: \"file\"\n  feature_suffix: " + yaml_quote(opt.feature_suffix) +
            "\nplm_size: " + std::to_string(opt.feature_dim) + "\n";
    summary.config_fragment_path = (std::filesystem::path(opt.output) / "synth.yaml").string();
    write_text_file_atomic(summary.config_fragment_path, yaml);
    return summary;
}

std::vector<int32_t> synthetic_item_topics(const SynthOptions& opt, int64_t domain) {
    validate(opt);
    check(domain >= 0 && domain < opt.n_domains, "synthetic_item_topics: domain ", domain,
          " not in [0, ", opt.n_domains, ")");
    const KeyedRng rng(opt.seed, RngPurpose::synth);
    const DomainPlan p = plan_domain(rng, opt, domain);
    const Catalogue c = make_catalogue(rng, opt, p, domain);
    std::vector<int32_t> topics(c.topic.size());
    for (size_t i = 0; i < topics.size(); ++i) topics[i] = p.topics[c.topic[i]];
    return topics;
}

} // namespace pfcr
