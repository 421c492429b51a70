// Device profiles, availability and the synchronous round plan (see system.hpp).
#include "federation/system.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <numeric>
#include <sstream>
#include <utility>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/text.hpp"
#include "io/sha256.hpp"

namespace pfcr {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Streams of RngPurpose::system: (what, client id low, client id high), index = draw.
enum : uint32_t {
    kCompute = 1,
    kDown = 2,
    kUp = 3,
    kAvailStart = 4,
    kAvailPeriod = 5,
    kAsyncPick = 6
};

// Uniform in (0, 1): never 0, so logarithms stay finite.
double open_uniform(KeyedRng::Stream& s) {
    double u;
    do {
        u = s.uniform();
    } while (u <= 0.0);
    return u;
}

double profile_draw(const Distribution& d, uint64_t seed, uint32_t what, int64_t client) {
    auto s = KeyedRng(seed, RngPurpose::system)
                 .stream(what, uint32_t(uint64_t(client)), uint32_t(uint64_t(client) >> 32));
    const double u1 = open_uniform(s), u2 = open_uniform(s);
    return draw(d, u1, u2);
}

} // namespace

DistKind parse_dist_kind(const std::string& name) {
    for (DistKind k :
         {DistKind::constant, DistKind::lognormal, DistKind::pareto, DistKind::uniform})
        if (name == dist_kind_name(k)) return k;
    fail("distribution '", name, "': expected constant, lognormal, pareto or uniform");
}

const char* dist_kind_name(DistKind k) {
    switch (k) {
    case DistKind::constant:
        return "constant";
    case DistKind::lognormal:
        return "lognormal";
    case DistKind::pareto:
        return "pareto";
    case DistKind::uniform:
        return "uniform";
    }
    return "?";
}

double draw(const Distribution& d, double u1, double u2) {
    switch (d.kind) {
    case DistKind::constant:
        return d.a;
    case DistKind::lognormal: {
        constexpr double two_pi = 6.283185307179586476925286766559;
        const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2);
        return d.a * std::exp(d.b * z);
    }
    case DistKind::pareto:
        return d.a * std::pow(1.0 - u1, -1.0 / d.b);
    case DistKind::uniform:
        return d.a + (d.b - d.a) * u1;
    }
    return d.a;
}

ClientProfile client_profile(const SystemOptions& o, uint64_t seed, int64_t client) {
    ClientProfile p;
    p.s_per_sample = profile_draw(o.compute, seed, kCompute, client);
    // Mbit/s -> bytes/s; 0 (unlimited) stays 0.
    p.down_bytes_per_s = profile_draw(o.down_mbps, seed, kDown, client) * 1e6 / 8;
    p.up_bytes_per_s = profile_draw(o.up_mbps, seed, kUp, client) * 1e6 / 8;
    return p;
}

double participation_seconds(const ClientProfile& p, int64_t samples, int64_t bytes_down,
                             int64_t bytes_up) {
    double t = double(samples) * p.s_per_sample;
    if (p.down_bytes_per_s > 0) t += double(bytes_down) / p.down_bytes_per_s;
    if (p.up_bytes_per_s > 0) t += double(bytes_up) / p.up_bytes_per_s;
    return t;
}

Availability::Availability(const SystemOptions& o, uint64_t seed, int64_t n_clients)
    : trace_(o.trace), onoff_(o.onoff && !o.trace), on_mean_(o.on_mean_s), off_mean_(o.off_mean_s),
      seed_(seed), cursors_(size_t(std::max<int64_t>(n_clients, 0))) {
    check(!onoff_ || (on_mean_ > 0 && off_mean_ > 0),
          "availability on/off: mean on and off periods must be > 0, got ", on_mean_, " and ",
          off_mean_);
}

void Availability::advance_to(int64_t client, double t) {
    check(client >= 0 && client < int64_t(cursors_.size()), "Availability: client ", client,
          " outside 0..", cursors_.size() - 1);
    Cursor& c = cursors_[size_t(client)];
    const KeyedRng rng(seed_, RngPurpose::system);
    const uint32_t lo = uint32_t(uint64_t(client)), hi = uint32_t(uint64_t(client) >> 32);
    // Period i's length is keyed by (client, i): one Philox block, no generator state.
    const auto length = [&](int64_t period, bool on) {
        const PhiloxCounter b = rng.block(kAvailPeriod, lo, hi, uint32_t(period));
        double u = double(((uint64_t(b[0]) << 32) | b[1]) >> 11) * 0x1.0p-53;
        if (u <= 0.0) u = double((((uint64_t(b[2]) << 32) | b[3]) >> 11) + 1) * 0x1.0p-53;
        return -std::log(u) * (on ? on_mean_ : off_mean_);
    };
    if (c.period < 0) {
        const PhiloxCounter b = rng.block(kAvailStart, lo, hi, 0);
        c.on = double(b[0]) * 0x1.0p-32 < on_mean_ / (on_mean_ + off_mean_);
        c.period = 0;
        c.begin = 0;
        c.end = length(0, c.on);
    }
    check(t >= c.begin, "Availability: client ", client, " queried at ", t,
          " s, before its current period (from ", c.begin, " s)");
    while (t >= c.end) {
        ++c.period;
        c.on = !c.on;
        c.begin = c.end;
        c.end = c.begin + length(c.period, c.on);
    }
}

const OnInterval* Availability::trace_interval(int64_t client, double t) const {
    if (client < 0 || client >= int64_t(trace_->clients.size())) return nullptr;
    const auto& v = trace_->clients[size_t(client)];
    const auto it = std::upper_bound(v.begin(), v.end(), t,
                                     [](double x, const OnInterval& i) { return x < i.end_s; });
    return it == v.end() ? nullptr : &*it;
}

bool Availability::online(int64_t client, double t) {
    if (trace_) {
        const OnInterval* i = trace_interval(client, t);
        return i && i->start_s <= t;
    }
    if (!onoff_) return true;
    advance_to(client, t);
    return cursors_[size_t(client)].on;
}

double Availability::online_until(int64_t client, double t) {
    if (trace_) {
        const OnInterval* i = trace_interval(client, t);
        return i && i->start_s <= t ? i->end_s : t;
    }
    if (!onoff_) return kInf;
    advance_to(client, t);
    const Cursor& c = cursors_[size_t(client)];
    return c.on ? c.end : t;
}

double Availability::next_online(int64_t client, double t) {
    if (trace_) {
        const OnInterval* i = trace_interval(client, t);
        return !i ? kInf : std::max(i->start_s, t);
    }
    if (!onoff_) return t;
    advance_to(client, t);
    const Cursor& c = cursors_[size_t(client)];
    return c.on ? t : c.end;
}

std::string read_availability_trace_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    check(bool(in), path, ": cannot open the availability trace (system.trace)");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

AvailabilityTrace read_availability_trace(const std::string& path, int64_t n_clients) {
    return parse_availability_trace(read_availability_trace_text(path), path, n_clients);
}

AvailabilityTrace parse_availability_trace(const std::string& csv, const std::string& path,
                                           int64_t n_clients) {
    std::istringstream in(csv);
    AvailabilityTrace tr;
    tr.path = path;
    tr.sha256 = sha256_hex(csv.data(), csv.size());
    std::vector<std::vector<int64_t>> lines; // per client, the line of each interval
    std::string line;
    int64_t n = 0;
    bool header = false;
    while (std::getline(in, line)) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        if (!header) {
            check(line == "client,start_s,end_s", path, ":", n,
                  ": expected the header 'client,start_s,end_s', found '", visible(line), "'");
            header = true;
            continue;
        }
        std::vector<std::string> f;
        std::stringstream ss(line);
        std::string x;
        while (std::getline(ss, x, ',')) f.push_back(x);
        check(f.size() == 3, path, ":", n, ": expected 3 fields client,start_s,end_s, found ",
              f.size(), " in '", visible(line), "'");
        int64_t client = -1;
        double a = 0, b = 0;
        size_t used = 0;
        try {
            client = std::stoll(f[0], &used);
            check(used == f[0].size(), "");
            a = std::stod(f[1], &used);
            check(used == f[1].size(), "");
            b = std::stod(f[2], &used);
            check(used == f[2].size(), "");
        } catch (const std::exception&) {
            fail(path, ":", n, ": not a number in '", visible(line), "'");
        }
        check(client >= 0, path, ":", n, ": negative client id ", client);
        check(std::isfinite(a) && std::isfinite(b) && a >= 0 && a < b, path, ":", n,
              ": need 0 <= start_s < end_s (finite), got ", f[1], ", ", f[2]);
        if (client >= n_clients) { // a trace may list more devices than the run has clients
            ++tr.ignored_lines;
            continue;
        }
        if (int64_t(tr.clients.size()) <= client) {
            tr.clients.resize(size_t(client + 1));
            lines.resize(size_t(client + 1));
        }
        tr.clients[size_t(client)].push_back({a, b});
        lines[size_t(client)].push_back(n);
    }
    check(header, path, ": empty availability trace (no 'client,start_s,end_s' header)");
    for (size_t k = 0; k < tr.clients.size(); ++k) {
        auto& v = tr.clients[k];
        std::vector<size_t> order(v.size());
        std::iota(order.begin(), order.end(), size_t(0));
        std::sort(order.begin(), order.end(),
                  [&](size_t x, size_t y) { return v[x].start_s < v[y].start_s; });
        std::vector<OnInterval> sorted;
        for (size_t j = 0; j < order.size(); ++j) {
            const OnInterval& x = v[order[j]];
            if (j > 0)
                check(x.start_s >= v[order[j - 1]].end_s, path, ":", lines[k][order[j]],
                      ": interval of client ", k, " overlaps the one on line ",
                      lines[k][order[j - 1]]);
            if (!sorted.empty() && x.start_s == sorted.back().end_s)
                sorted.back().end_s = x.end_s; // touching: one continuous online period
            else
                sorted.push_back(x);
        }
        v = std::move(sorted);
    }
    return tr;
}

std::string availability_trace_csv(const SystemOptions& o, uint64_t seed, int64_t n_clients,
                                   double horizon_s) {
    check(o.onoff, "availability_trace_csv: needs the on/off process");
    std::ostringstream os;
    os << "# pfcr availability trace: online intervals [start_s, end_s) per client, from the\n"
       << "# on/off process (mean on " << o.on_mean_s << " s, off " << o.off_mean_s << " s), seed "
       << seed << ", horizon " << horizon_s << " s\n"
       << "client,start_s,end_s\n";
    os << std::setprecision(17);
    Availability a(o, seed, n_clients);
    for (int64_t k = 0; k < n_clients; ++k) {
        double t = 0;
        while (t < horizon_s) {
            const double on = a.next_online(k, t);
            if (on >= horizon_s) break;
            const double off = std::min(a.online_until(k, on), horizon_s);
            os << k << "," << on << "," << off << "\n";
            t = off;
        }
    }
    return os.str();
}

RoundPlan plan_sync_round(const std::vector<int64_t>& sampled, const std::vector<double>& seconds,
                          int64_t target, double deadline_s, double start_s,
                          Availability& availability) {
    check(sampled.size() == seconds.size(), "plan_sync_round: ", sampled.size(), " clients but ",
          seconds.size(), " durations");
    check(target >= 1, "plan_sync_round: target ", target, " < 1");
    RoundPlan plan;
    plan.start_s = start_s;
    std::vector<size_t> done;      // indices into sampled that finished in time and online
    std::vector<double> work;      // per dropped client: its work until it was dropped
    std::vector<double> offline_s; // per unavailable client: when it went offline (from start)
    for (size_t i = 0; i < sampled.size(); ++i) {
        const double d = seconds[i];
        check(d >= 0 && std::isfinite(d), "plan_sync_round: client ", sampled[i], " duration ", d);
        const double until = availability.online_until(sampled[i], start_s);
        if (deadline_s > 0 && d > deadline_s && until >= start_s + deadline_s) {
            plan.dropped_deadline.push_back(sampled[i]);
            work.push_back(deadline_s);
        } else if (until < start_s + d) {
            plan.dropped_unavailable.push_back(sampled[i]);
            work.push_back(until - start_s);
            offline_s.push_back(until - start_s);
        } else {
            done.push_back(i);
        }
    }
    // The first `target` to finish; equal times: lower id first (sampled is ascending).
    std::stable_sort(done.begin(), done.end(),
                     [&](size_t x, size_t y) { return seconds[x] < seconds[y]; });
    double last = 0;
    for (size_t j = 0; j < done.size(); ++j) {
        const size_t i = done[j];
        if (int64_t(j) < target) {
            plan.participants.push_back(sampled[i]);
            last = std::max(last, seconds[i]);
        } else {
            plan.dropped_overcommit.push_back(sampled[i]);
            work.push_back(seconds[i]);
        }
    }
    std::sort(plan.participants.begin(), plan.participants.end());
    std::sort(plan.dropped_overcommit.begin(), plan.dropped_overcommit.end());
    // With `target` participants the round closes when the last of them finishes (the others
    // are stopped then). Short of the target, the server waits for the deadline (it cannot
    // know that no one else will come) and notices a client going offline when it does.
    double length = last;
    if (int64_t(plan.participants.size()) < target) {
        if (deadline_s > 0) length = deadline_s;
        for (double t : offline_s)
            length = std::max(length, std::min(t, deadline_s > 0 ? deadline_s : kInf));
    }
    for (double w : work) plan.wasted_client_s += std::min(w, length);
    plan.end_s = start_s + length;
    return plan;
}

StalenessWeight parse_staleness_weight(const std::string& name) {
    for (StalenessWeight w :
         {StalenessWeight::constant, StalenessWeight::sqrt, StalenessWeight::poly})
        if (name == staleness_weight_name(w)) return w;
    fail("federation.staleness_weight '", name, "': expected constant, sqrt or poly");
}

const char* staleness_weight_name(StalenessWeight w) {
    switch (w) {
    case StalenessWeight::constant:
        return "constant";
    case StalenessWeight::sqrt:
        return "sqrt";
    case StalenessWeight::poly:
        return "poly";
    }
    return "?";
}

double staleness_weight(StalenessWeight w, double exponent, int64_t staleness) {
    check(staleness >= 0, "staleness_weight: negative staleness ", staleness);
    switch (w) {
    case StalenessWeight::constant:
        return 1.0;
    case StalenessWeight::sqrt:
        return 1.0 / std::sqrt(1.0 + double(staleness));
    case StalenessWeight::poly:
        return std::pow(1.0 + double(staleness), -exponent);
    }
    return 1.0;
}

// Kinds in the order events of one instant are processed.
namespace {
enum : int { kStepDone = 0, kClient = 1, kRetry = 2 };
}

bool AsyncSchedule::Event::operator>(const Event& o) const {
    if (t != o.t) return t > o.t;
    if (kind != o.kind) return kind > o.kind;
    return who > o.who;
}

AsyncSchedule::AsyncSchedule(const AsyncOptions& o, std::vector<double> seconds, uint64_t seed,
                             Availability availability)
    : o_(o), seconds_(std::move(seconds)), seed_(seed), avail_(std::move(availability)),
      busy_(seconds_.size(), 0), running_(seconds_.size()) {
    const int64_t K = int64_t(seconds_.size());
    check(o_.concurrency >= 1 && o_.concurrency <= K, "federation.concurrency = ", o_.concurrency,
          ": must be in 1..", K, " (the number of clients)");
    check(o_.buffer_size >= 1 && o_.buffer_size <= o_.concurrency,
          "federation.buffer_size = ", o_.buffer_size, ": must be in 1..", o_.concurrency,
          " (federation.concurrency)");
    check(o_.max_staleness >= 0, "federation.max_staleness must be >= 0");
    check(o_.server_step_s > 0, "system.server_step_s must be > 0 in async mode (server steps "
                                "must take time for the clock to advance)");
    for (int64_t k = 0; k < K; ++k)
        check(seconds_[size_t(k)] > 0 && std::isfinite(seconds_[size_t(k)]), "client ", k,
              ": participation time ", seconds_[size_t(k)], " s; must be positive and finite");
    for (int64_t i = 0; i < o_.concurrency; ++i) start_one(0.0);
}

void AsyncSchedule::push(Event e) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end(), std::greater<Event>());
}

AsyncSchedule::Event AsyncSchedule::pop() {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<Event>());
    const Event e = heap_.back();
    heap_.pop_back();
    return e;
}

void AsyncSchedule::start_one(double t) {
    const int64_t K = int64_t(seconds_.size());
    std::vector<int64_t> candidates;
    double retry = kInf;
    for (int64_t k = 0; k < K; ++k) {
        if (busy_[size_t(k)]) continue;
        const double on = avail_.next_online(k, t);
        if (on == t)
            candidates.push_back(k);
        else
            retry = std::min(retry, on);
    }
    if (candidates.empty()) {
        if (std::isfinite(retry)) // every idle client is offline: wait for the first to come on
            push({retry, kRetry, retries_++});
        else // every client is training or buffered: wait for the next server step
            ++waiting_;
        return;
    }
    auto s = KeyedRng(seed_, RngPurpose::system)
                 .stream(kAsyncPick, uint32_t(uint64_t(picks_)), uint32_t(uint64_t(picks_) >> 32));
    ++picks_;
    const int64_t k = candidates[size_t(s.below(uint64_t(candidates.size())))];
    AsyncMember& m = running_[size_t(k)];
    m.client = k;
    m.start_version = version_;
    m.start_s = t;
    m.end_s = t + seconds_[size_t(k)];
    busy_[size_t(k)] = 1;
    pending_.started += 1;
    // A client that goes offline first is dropped then (its event time is the drop time).
    push({std::min(m.end_s, avail_.online_until(k, t)), kClient, k});
}

AsyncStep AsyncSchedule::next() {
    int64_t events = 0;
    while (true) {
        check(!heap_.empty(), "async schedule: no client will ever be online again after ",
              last_step_s_, " simulated s (does the availability trace end?), so server step ",
              version_, " can never happen; lower federation.rounds or extend the trace");
        check(++events < 100000000, "async schedule: 10^8 events without a server step (are "
                                    "clients almost never online, or is every update stale?)");
        const Event e = pop();
        if (e.kind == kRetry) {
            start_one(e.t);
        } else if (e.kind == kClient) {
            const int64_t k = e.who;
            const AsyncMember m = running_[size_t(k)];
            // A dropped client is idle again at once; a buffered one when its step is applied
            // (it trains from its state after that update, so it is never in two at once).
            if (e.t < m.end_s) { // went offline before finishing
                busy_[size_t(k)] = 0;
                pending_.dropped_unavailable.push_back(k);
                pending_.wasted_client_s += e.t - m.start_s;
            } else {
                const int64_t applied_by = int64_t(closed_.size()) + version_; // its step index
                if (o_.max_staleness > 0 && applied_by - m.start_version > o_.max_staleness) {
                    busy_[size_t(k)] = 0;
                    pending_.dropped_stale.push_back(k);
                    pending_.wasted_client_s += m.end_s - m.start_s;
                } else {
                    buffer_.push_back(m);
                    if (int64_t(buffer_.size()) == o_.buffer_size) {
                        closed_.push_back(std::move(buffer_));
                        buffer_.clear();
                        server_free_s_ = std::max(server_free_s_, e.t) + o_.server_step_s;
                        push({server_free_s_, kStepDone, applied_by});
                    }
                }
            }
            start_one(e.t);
        } else { // the oldest closed buffer is applied
            AsyncStep step = std::move(pending_);
            pending_ = AsyncStep();
            step.step = version_;
            step.start_s = last_step_s_;
            step.end_s = e.t;
            step.members = std::move(closed_.front());
            closed_.erase(closed_.begin());
            std::sort(
                step.members.begin(), step.members.end(),
                [](const AsyncMember& a, const AsyncMember& b) { return a.client < b.client; });
            std::sort(step.dropped_unavailable.begin(), step.dropped_unavailable.end());
            std::sort(step.dropped_stale.begin(), step.dropped_stale.end());
            ++version_;
            last_step_s_ = e.t;
            for (const AsyncMember& m : step.members) busy_[size_t(m.client)] = 0;
            for (int64_t n = std::exchange(waiting_, 0); n > 0; --n) start_one(e.t);
            return step;
        }
    }
}

std::vector<int64_t> AsyncSchedule::referenced_versions() const {
    std::vector<int64_t> v;
    // A running client whose update is already too stale will be dropped, never trained.
    const int64_t next_step = version_ + int64_t(closed_.size());
    for (size_t k = 0; k < busy_.size(); ++k)
        if (busy_[k] &&
            !(o_.max_staleness > 0 && next_step - running_[k].start_version > o_.max_staleness))
            v.push_back(running_[k].start_version);
    for (const auto& m : buffer_) v.push_back(m.start_version);
    for (const auto& b : closed_)
        for (const auto& m : b) v.push_back(m.start_version);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

} // namespace pfcr
