// The federated round for every algorithm (see engine.hpp). The update rules, per client k
// with weight w_k = train_rows_k / rows of this round's sampled clients, shared range x:
//   pfcr      u_k = sum over the local epoch's steps of dL/dx (x = the code table);
//             x <- x - server_lr * sum_k w_k u_k                                 (docs/METHOD.md
//             §6) (server_lr = federation.server_lr, or learning_rate when that is 0, as PFCR)
//   fedavg    u_k = x_k - x after local training;   x <- x + sum_k w_k u_k      (McMahan 2017)
//   fedprox   as fedavg, local gradient + mu (x_k - x)                            (Li 2020)
//   scaffold  as fedavg, local gradient + (c - c_k); then c_k+ = c_k - c + (x - x_k)/(S lr),
//             S = local steps (option II of Karimireddy 2020), c <- c + (1/K) sum_k (c_k+ - c_k)
//             over the K clients of the federation (the published server rule). The local
//             optimizer is Adam, as in every PFCR variant, not SGD: (x - x_k)/(S lr) is then
//             an average preconditioned gradient, the usual practical reading.
//   local     nothing is shared; every client keeps training its own model
//   centralized  one client holds every domain (batches of all domains interleaved)
// Contributions are added in int64 fixed point, so the sums are exact and order-free.
// Who takes part is planned on the virtual clock before anything trains (federation/system.hpp):
// sync rounds drop clients past the deadline, offline or over-committed (they do not train, so
// their state stays as before the round: an aborted device keeps nothing); weights then use the
// participants' rows. Async (FedBuff) server steps aggregate the schedule's buffered clients,
// each trained from the model version it started from, with weight
// w_k = train_rows_k * staleness_weight(s_k) / rows of the step's clients.
#include "federation/engine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <tuple>

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "core/error.hpp"
#include "core/log.hpp"
#include "data/batching.hpp"
#include "federation/clients.hpp"
#include "federation/fixed_point.hpp"

namespace pfcr {

Algorithm parse_algorithm(const std::string& name) {
    if (name == "pfcr") return Algorithm::pfcr;
    if (name == "fedavg") return Algorithm::fedavg;
    if (name == "fedprox") return Algorithm::fedprox;
    if (name == "scaffold") return Algorithm::scaffold;
    if (name == "local") return Algorithm::local;
    if (name == "centralized") return Algorithm::centralized;
    fail("federation.algorithm: unknown algorithm '", name, "'");
}

const char* algorithm_name(Algorithm a) {
    switch (a) {
    case Algorithm::pfcr:
        return "pfcr";
    case Algorithm::fedavg:
        return "fedavg";
    case Algorithm::fedprox:
        return "fedprox";
    case Algorithm::scaffold:
        return "scaffold";
    case Algorithm::local:
        return "local";
    case Algorithm::centralized:
        return "centralized";
    }
    return "?";
}

int64_t ClientState::bytes() const {
    return int64_t(sizeof(float)) * (private_params.size() + control.size()) + moments.bytes();
}

int64_t Federation::dense_client_bytes() const {
    const int64_t S = shared_end_ - shared_begin_;
    return int64_t(sizeof(float)) * ((layout_.total() - S) + 2 * layout_.total() +
                                     (fed_.algorithm == Algorithm::scaffold ? S : 0));
}

// Transient per-worker state: a full model to train in, the trainer scratch, upload buffers.
struct Federation::Slot {
    Slot(const ModelShape& shape, int64_t shared)
        : state(shape), upload(size_t(shared)), acc(size_t(shared), 0) {}
    ModelState state;
    std::shared_ptr<TrainerScratch> scratch = make_trainer_scratch();
    std::vector<float> upload, delta_control;
    // This slot's share of the round's integer sums (added into the round's totals after the
    // local phase: integer addition, so which slot served which client cannot matter).
    std::vector<int64_t> acc, control_acc;
};

// Free slots; a slot is created on first demand, so there are at most as many as clients ever
// trained at once (= threads, thanks to task isolation).
struct Federation::Pool {
    std::mutex mutex;
    std::vector<Slot*> all; // every slot ever created (they are all free between rounds)
    std::vector<std::unique_ptr<Slot>> free;
    std::unique_ptr<Slot> acquire(const ModelShape& shape, int64_t shared) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!free.empty()) {
                auto s = std::move(free.back());
                free.pop_back();
                return s;
            }
        }
        auto s = std::make_unique<Slot>(shape, shared);
        std::lock_guard<std::mutex> lock(mutex);
        all.push_back(s.get());
        return s;
    }
    void release(std::unique_ptr<Slot> s) {
        std::lock_guard<std::mutex> lock(mutex);
        free.push_back(std::move(s));
    }
};

Federation::Federation(const FederationOptions& fed, const TrainOptions& base,
                       double initializer_range, std::vector<ClientSpec> all,
                       std::vector<int> owner, Comm& comm)
    : fed_(fed), base_(base), layout_(base.hp.shape), comm_(comm), all_(std::move(all)),
      owner_(std::move(owner)), pool_(std::make_unique<Pool>()) {
    check(all_.size() == owner_.size(), "Federation: owner list does not match the clients");
    check(fed_.algorithm != Algorithm::centralized || all_.size() == 1,
          "centralized training has exactly one (pooled) client");
    const auto& table = layout_.at("pq_code_embedding.weight");
    switch (fed_.algorithm) {
    case Algorithm::local:
    case Algorithm::centralized:
        shared_begin_ = shared_end_ = 0;
        break;
    case Algorithm::pfcr:
        shared_begin_ = table.offset;
        shared_end_ = table.offset + table.size;
        break;
    default:
        shared_begin_ = fed_.share_whole_model ? 0 : table.offset;
        shared_end_ = fed_.share_whole_model ? layout_.total() : table.offset + table.size;
    }
    // The shared range must consist of whole entries (checkpoints name them).
    for (const auto& e : layout_.entries()) {
        const bool inside = e.offset >= shared_begin_ && e.offset + e.size <= shared_end_;
        const bool outside = e.offset + e.size <= shared_begin_ || e.offset >= shared_end_;
        check(inside || outside, "shared range splits parameter ", e.name);
    }
    init_.resize(layout_.total());
    init_params(layout_, init_.data(), base_.seed, initializer_range);
    global_.assign(init_.data() + shared_begin_, init_.data() + shared_end_);
    if (fed_.algorithm == Algorithm::scaffold) control_.assign(global_.size(), 0.0f);

    // The virtual clock: every client's profile and participation time, known to every rank.
    const int64_t K = int64_t(all_.size());
    const auto [up, down] = bytes_per_client();
    for (const auto& c : all_) {
        profiles_.push_back(client_profile(fed_.system, base_.seed, c.id));
        seconds_.push_back(
            participation_seconds(profiles_.back(), c.train_rows * fed_.local_epochs, down, up));
    }
    avail_ = std::make_unique<Availability>(fed_.system, base_.seed, K);
    if (fed_.mode == FederationMode::async) {
        check(fed_.algorithm == Algorithm::pfcr || fed_.algorithm == Algorithm::fedavg ||
                  fed_.algorithm == Algorithm::fedprox,
              "federation.mode async: defined for pfcr (code-table gradients) and fedavg/fedprox "
              "(parameter deltas), not ",
              algorithm_name(fed_.algorithm));
        check(fed_.privacy.mechanism == PrivacyMechanism::none,
              "federation.mode async: privacy mechanisms are not supported (use privacy.mechanism: "
              "none)");
        AsyncOptions a;
        a.concurrency = fed_.concurrency > 0 ? fed_.concurrency : target_clients();
        a.buffer_size = fed_.buffer_size > 0 ? fed_.buffer_size : (a.concurrency + 3) / 4;
        a.max_staleness = fed_.max_staleness;
        a.server_step_s = fed_.system.server_step_s;
        async_opts_ = a;
        async_ = std::make_unique<AsyncSchedule>(a, seconds_, base_.seed, *avail_);
    }
}

std::pair<int64_t, int64_t> Federation::bytes_per_client() const {
    // Per element: a float, or the bucket index of a bucket mechanism (ceil(log2 #buckets)
    // bits). SCAFFOLD also sends its control variate delta up and the server's c down.
    const int64_t S = shared_end_ - shared_begin_;
    const int64_t up_bits = upload_bits_per_element(fed_.privacy);
    const int64_t control_bytes = fed_.algorithm == Algorithm::scaffold ? S * 4 : 0;
    return {(S * up_bits + 7) / 8 + control_bytes, S * 4 + control_bytes};
}

int64_t Federation::target_clients() const {
    return sample_size(int64_t(all_.size()), fed_.client_fraction);
}

RoundPlan Federation::plan_sync(int64_t round, std::vector<int64_t>& sampled) {
    check(round == rounds_planned_, "Federation: round ", round, " planned out of order (next is ",
          rounds_planned_, ")");
    const int64_t K = int64_t(all_.size()), target = target_clients();
    const double wanted = std::ceil(double(target) * (1.0 + fed_.overcommit) * (1.0 - 1e-12));
    const int64_t m = std::clamp(int64_t(wanted), target, K);
    sampled = sample_clients_count(base_.seed, round, K, m);
    std::vector<double> secs;
    for (int64_t k : sampled) secs.push_back(seconds_[size_t(k)]);
    RoundPlan p = plan_sync_round(sampled, secs, target, fed_.deadline_s, clock_, *avail_);
    p.end_s += fed_.system.server_step_s;
    clock_ = p.end_s;
    ++rounds_planned_;
    return p;
}

void Federation::fast_forward(int64_t rounds_done) {
    check(rounds_planned_ == 0, "Federation::fast_forward: the clock has already started");
    for (int64_t r = 0; r < rounds_done; ++r) {
        if (async_) {
            clock_ = async_->next().end_s;
            ++rounds_planned_;
        } else {
            std::vector<int64_t> sampled;
            plan_sync(r, sampled);
        }
    }
}

std::vector<int64_t> Federation::needed_versions() const {
    std::vector<int64_t> v;
    if (!async_) return v;
    for (int64_t x : async_->referenced_versions())
        if (x != async_->steps_done()) v.push_back(x);
    return v;
}

Federation::~Federation() = default;

bool Federation::is_shared(const ParamEntry& e) const {
    return e.offset >= shared_begin_ && e.offset + e.size <= shared_end_ && e.size > 0 &&
           shared_end_ > shared_begin_;
}

void Federation::add_client(int64_t id, std::vector<const PreparedDomain*> data) {
    check(id >= 0 && id < int64_t(all_.size()) && owner_[size_t(id)] == comm_.rank(),
          "Federation::add_client: client ", id, " is not owned by rank ", comm_.rank());
    check(mine_.empty() || mine_.back().spec.id < id, "Federation::add_client: ids must ascend");
    ClientState c;
    c.spec = all_[size_t(id)];
    c.data = std::move(data);
    const int64_t total = layout_.total(), shared = shared_end_ - shared_begin_;
    c.private_params.resize(total - shared);
    std::copy(init_.data(), init_.data() + shared_begin_, c.private_params.data());
    std::copy(init_.data() + shared_end_, init_.data() + total,
              c.private_params.data() + shared_begin_);
    if (fed_.algorithm == Algorithm::scaffold) c.control.resize(shared);
    mine_.push_back(std::move(c));
}

void Federation::materialize(const ClientState& c, float* params) const {
    materialize(c, global_.data(), params);
}

void Federation::materialize(const ClientState& c, const float* x, float* params) const {
    const int64_t total = layout_.total();
    const float* p = c.private_params.data();
    std::copy(p, p + shared_begin_, params);
    std::copy(x, x + (shared_end_ - shared_begin_), params + shared_begin_);
    std::copy(p + shared_begin_, p + (total - (shared_end_ - shared_begin_)), params + shared_end_);
}

void Federation::train_client(ClientState& c, Slot& slot, int64_t round, const float* x,
                              double& loss) {
    ModelState& st = slot.state;
    const int64_t total = layout_.total(), S = shared_end_ - shared_begin_;
    materialize(c, x, st.params.data());
    if (client_hook_) client_hook_(round, c.spec, st); // fault injection (tests only)
    // The moments expand into the slot's dense buffers and are compacted again after the
    // round (on an exception the client keeps what it had).
    c.moments.load(layout_, st.adam_m.data(), st.adam_v.data());
    st.step = c.step;

    std::vector<std::unique_ptr<Trainer>> trainers;
    for (const PreparedDomain* d : c.data) {
        TrainOptions opt = base_;
        opt.client = uint32_t(c.spec.id);
        trainers.push_back(std::make_unique<Trainer>(opt, *d, slot.scratch));
    }
    float* upload = slot.upload.data();
    switch (fed_.algorithm) {
    case Algorithm::pfcr:
        std::fill(slot.upload.begin(), slot.upload.end(), 0.0f);
        for (auto& t : trainers) t->set_shared_grad_accumulator(upload);
        break;
    case Algorithm::fedprox: {
        const float mu = float(fed_.mu);
        const int64_t sb = shared_begin_;
        for (auto& t : trainers)
            t->set_grad_hook([mu, x, sb, S](float* grad, const float* params) {
                for (int64_t i = 0; i < S; ++i) grad[sb + i] += mu * (params[sb + i] - x[i]);
            });
        break;
    }
    case Algorithm::scaffold: {
        const float* cg = control_.data(); // (scaffold is sync only: x is the current model)
        const float* ck = c.control.data();
        const int64_t sb = shared_begin_;
        for (auto& t : trainers)
            t->set_grad_hook([cg, ck, sb, S](float* grad, const float*) {
                for (int64_t i = 0; i < S; ++i) grad[sb + i] += cg[i] - ck[i];
            });
        break;
    }
    default:
        break;
    }

    const int64_t step0 = st.step;
    double loss_sum = 0;
    int64_t loss_rows = 0;
    for (int64_t e = 0; e < fed_.local_epochs; ++e) {
        const uint32_t epoch = uint32_t(round * fed_.local_epochs + e);
        if (trainers.size() == 1) {
            const int64_t n = int64_t(c.data[0]->train.rows());
            loss_sum += trainers[0]->train_epoch(st, epoch) * double(n);
            loss_rows += n;
            continue;
        }
        // Pooled client: the batches of every domain in one keyed order.
        std::vector<std::pair<size_t, int64_t>> batches;
        for (size_t d = 0; d < trainers.size(); ++d)
            for (int64_t b = 0; b < trainers[d]->n_train_batches(); ++b) batches.emplace_back(d, b);
        const auto order = epoch_permutation(int64_t(batches.size()), base_.seed,
                                             0x80000000u | uint32_t(c.spec.id), epoch);
        for (int64_t i : order) {
            const auto [d, b] = batches[size_t(i)];
            const int64_t n = int64_t(c.data[d]->train.rows());
            const int64_t rows = std::min(base_.train_batch_size, n - b * base_.train_batch_size);
            loss_sum += trainers[d]->train_batch(st, epoch, b) * double(rows);
            loss_rows += rows;
        }
    }
    loss = loss_sum / double(std::max<int64_t>(loss_rows, 1));

    if (fed_.algorithm == Algorithm::fedavg || fed_.algorithm == Algorithm::fedprox ||
        fed_.algorithm == Algorithm::scaffold) {
        for (int64_t i = 0; i < S; ++i) upload[i] = st.params[shared_begin_ + i] - x[i];
    }
    if (fed_.algorithm == Algorithm::scaffold) {
        // c_k+ = c_k - c + (x - x_k) / (steps lr) = c_k - c - u / (steps lr).
        const double inv = 1.0 / (double(st.step - step0) * base_.learning_rate);
        slot.delta_control.resize(size_t(S));
        for (int64_t i = 0; i < S; ++i) {
            const float next = c.control[i] - control_[size_t(i)] - float(double(upload[i]) * inv);
            slot.delta_control[size_t(i)] = next - c.control[i];
            c.control[i] = next;
        }
    }
    // Keep what is private; the shared range comes from the server next round.
    const float* p = st.params.data();
    std::copy(p, p + shared_begin_, c.private_params.data());
    std::copy(p + shared_end_, p + total, c.private_params.data() + shared_begin_);
    c.moments.store(layout_, st.adam_m.data(), st.adam_v.data());
    c.step = st.step;
    c.rounds_trained += 1;
}

int64_t upload_bits_per_element(const PrivacyOptions& p) {
    int64_t values = 0; // number of distinct integers a bucket mechanism can send
    if (p.mechanism == PrivacyMechanism::pfcr_reference)
        values = p.buckets;
    else if (p.mechanism == PrivacyMechanism::randomized_response)
        values = 2 * p.buckets + 1;
    else
        return 32;
    int64_t bits = 0;
    while ((int64_t(1) << bits) < values) ++bits;
    return bits;
}

RoundResult Federation::run_round(int64_t round) {
    const int64_t K = int64_t(all_.size());
    const int64_t S = shared_end_ - shared_begin_;
    const int bits = fed_.privacy.fixed_point_bits;
    const int64_t max_abs = fixed_point_max_abs(K);
    RoundResult r;
    r.round = round;
    // Who trains, from which model, with which weight: the plan (every rank computes it).
    std::vector<char> active(size_t(K), 0);
    std::vector<double> weight(size_t(K), 0.0);         // async: aggregation weight
    std::vector<const float*> base(size_t(K), nullptr); // the model a client starts from
    int64_t sampled_rows = 0; // rows of the participants (their weights' denominator)
    if (!async_) {
        const RoundPlan p = plan_sync(round, r.sampled);
        r.participants = p.participants;
        r.dropped_deadline = p.dropped_deadline;
        r.dropped_unavailable = p.dropped_unavailable;
        r.dropped_overcommit = p.dropped_overcommit;
        r.sim_start_s = p.start_s;
        r.sim_end_s = p.end_s;
        r.wasted_client_s = p.wasted_client_s;
        for (int64_t k : r.participants) base[size_t(k)] = global_.data();
    } else {
        AsyncStep st = async_->next();
        check(st.step == round, "Federation: server step ", round, " run out of order (next is ",
              st.step, ")");
        ++rounds_planned_;
        clock_ = st.end_s;
        r.sim_start_s = st.start_s;
        r.sim_end_s = st.end_s;
        r.wasted_client_s = st.wasted_client_s;
        r.dropped_unavailable = st.dropped_unavailable;
        r.dropped_stale = st.dropped_stale;
        for (const AsyncMember& m : st.members) {
            r.participants.push_back(m.client);
            r.staleness.push_back(round - m.start_version);
            if (m.start_version == round) {
                base[size_t(m.client)] = global_.data();
            } else {
                const auto it = versions_.find(m.start_version);
                check(it != versions_.end(), "Federation: model version ", m.start_version,
                      " of client ", m.client, " is not held (internal error)");
                base[size_t(m.client)] = it->second.data();
            }
        }
        r.sampled = r.participants;
    }
    for (int64_t k : r.participants) {
        active[size_t(k)] = 1;
        sampled_rows += all_[size_t(k)].train_rows;
    }
    if (async_)
        for (size_t i = 0; i < r.participants.size(); ++i) {
            const int64_t k = r.participants[i];
            weight[size_t(k)] =
                double(all_[size_t(k)].train_rows) / double(sampled_rows) *
                staleness_weight(fed_.staleness_weight, fed_.staleness_exponent, r.staleness[i]);
        }

    Stopwatch sw;
    std::vector<int64_t> acc(static_cast<size_t>(S), 0), control_acc,
        loss_acc(static_cast<size_t>(K), 0);
    if (fed_.algorithm == Algorithm::scaffold) control_acc.assign(size_t(S), 0);
    std::vector<ClientState*> to_train;
    for (auto& c : mine_)
        if (active[size_t(c.spec.id)]) to_train.push_back(&c);
    std::vector<double> local_loss(to_train.size(), 0.0);
    std::vector<std::string> errors(to_train.size());
    std::vector<double> t_encode(to_train.size(), 0.0);
    tbb::parallel_for(size_t(0), to_train.size(), [&](size_t i) {
        ClientState& c = *to_train[i];
        auto slot = pool_->acquire(layout_.shape(), S);
        try {
            const float* x = base[size_t(c.spec.id)];
            tbb::this_task_arena::isolate([&] { train_client(c, *slot, round, x, local_loss[i]); });
            Stopwatch enc;
            if (S > 0 && async_) // privacy none (checked): the staleness-weighted update
                encode_add(slot->acc.data(), slot->upload.data(), S, weight[size_t(c.spec.id)],
                           bits, max_abs);
            else if (S > 0)
                privatize_add(fed_.privacy, base_.seed, round, c.spec.id, c.spec.train_rows,
                              sampled_rows, K, slot->upload.data(), S, slot->acc.data());
            if (fed_.algorithm == Algorithm::scaffold) {
                slot->control_acc.resize(size_t(S), 0);
                encode_add(slot->control_acc.data(), slot->delta_control.data(), S, 1.0 / double(K),
                           bits, max_abs);
            }
            const float l = float(local_loss[i]);
            encode_add(loss_acc.data() + c.spec.id, &l, 1, 1.0, bits, max_abs); // own entry
            t_encode[i] = enc.seconds();
        } catch (const Error& e) {
            errors[i] = e.what();
        }
        pool_->release(std::move(slot));
    });
    double t_aggregate = 0;
    for (double t : t_encode) t_aggregate += t;
    // The rank's sum over its slots (integers; slot order is irrelevant but fixed anyway).
    Stopwatch sum_sw;
    for (Slot* slot : pool_->all) {
        if (S > 0)
            for (int64_t i = 0; i < S; ++i) {
                acc[size_t(i)] += slot->acc[size_t(i)];
                slot->acc[size_t(i)] = 0;
            }
        if (!slot->control_acc.empty())
            for (int64_t i = 0; i < S; ++i) {
                control_acc[size_t(i)] += slot->control_acc[size_t(i)];
                slot->control_acc[size_t(i)] = 0;
            }
    }
    t_aggregate += sum_sw.seconds();
    r.t_local = sw.seconds() - t_aggregate; // encode time counted as aggregation
    r.t_aggregate = t_aggregate;

    // Agree on failures before any collective that carries data: the lowest failing id wins.
    int64_t failing = 0;
    for (size_t i = 0; i < to_train.size(); ++i)
        if (!errors[i].empty()) {
            failing = K - to_train[i]->spec.id;
            break;
        }
    comm_.allreduce_max(&failing, 1);
    if (failing > 0) {
        const int64_t id = K - failing;
        // The owner's message, on every rank (rank 0 prints it).
        const int owner = owner_[size_t(id)];
        std::string msg;
        for (size_t i = 0; i < to_train.size(); ++i)
            if (to_train[i]->spec.id == id)
                msg = "round " + std::to_string(round) + ", client " + std::to_string(id) +
                      " (domain " + to_train[i]->spec.domain + ", shard " +
                      std::to_string(to_train[i]->spec.shard) + "): " + errors[i];
        fail_collective(broadcast_string(comm_, msg, owner));
    }

    sw.reset();
    if (S > 0) comm_.allreduce_sum(acc.data(), S);
    if (!control_acc.empty()) comm_.allreduce_sum(control_acc.data(), S);
    comm_.allreduce_sum(loss_acc.data(), K);
    r.t_communicate = sw.seconds();

    sw.reset();
    std::vector<float> losses(static_cast<size_t>(K));
    decode(losses.data(), loss_acc.data(), K, bits);
    r.loss.assign(losses.begin(), losses.end());
    if (async_) { // keep the model some started client will train from
        const auto needed = async_->referenced_versions();
        if (std::binary_search(needed.begin(), needed.end(), round)) versions_[round] = global_;
        for (auto it = versions_.begin(); it != versions_.end();)
            it = std::binary_search(needed.begin(), needed.end(), it->first) ? std::next(it)
                                                                             : versions_.erase(it);
    }
    if (S > 0 && !r.participants.empty()) {
        std::vector<float> aggregate(static_cast<size_t>(S));
        if (async_)
            decode(aggregate.data(), acc.data(), S, bits);
        else
            privatize_decode(fed_.privacy, acc.data(), S, sampled_rows, aggregate.data());
        double norm2 = 0;
        for (float g : aggregate) norm2 += double(g) * g;
        r.aggregate_norm = std::sqrt(norm2);
        if (fed_.algorithm == Algorithm::pfcr) {
            const float lr = float(fed_.server_lr);
            for (int64_t i = 0; i < S; ++i) global_[size_t(i)] -= lr * aggregate[size_t(i)];
        } else {
            for (int64_t i = 0; i < S; ++i) global_[size_t(i)] += aggregate[size_t(i)];
        }
        if (!control_acc.empty()) {
            decode(aggregate.data(), control_acc.data(), S, bits);
            for (int64_t i = 0; i < S; ++i) control_[size_t(i)] += aggregate[size_t(i)];
        }
    }
    r.t_server = sw.seconds();
    std::tie(r.bytes_up_per_client, r.bytes_down_per_client) = bytes_per_client();
    if (S > 0) r.privacy = privacy_spent(fed_.privacy, round + 1);
    return r;
}

} // namespace pfcr
