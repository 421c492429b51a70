// `pfcr pretrain` (PFCR stage 1): builds the clients (every domain, each of its
// data.shards_per_domain user shards, or one pooled client for `centralized`), assigns them to
// MPI ranks by the balanced rule, keeps only this rank's clients' data, and drives the rounds
// of federation/engine.hpp. Rank 0 writes metrics.jsonl (one line per round: per-client train
// loss, sampled clients, aggregate norm, bytes, phase timings) and a grep-able summary line.
// Everything except the "time" fields has the same bytes for any rank or thread count.
#include <sys/resource.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include <tbb/global_control.h>

#include "core/error.hpp"
#include "federation/clients.hpp"
#include "federation/comm.hpp"
#include "federation/engine.hpp"
#include "federation/fixed_point.hpp"
#include "io/atomic_file.hpp"
#include "sim/commands.hpp"

namespace pfcr {
namespace {

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0; // Linux: KiB
}

// Max over ranks of non-negative doubles (microsecond resolution; for timings and memory).
std::vector<double> max_over_ranks(Comm& comm, const std::vector<double>& v) {
    std::vector<int64_t> q(v.size());
    for (size_t i = 0; i < v.size(); ++i) q[i] = int64_t(std::llround(v[i] * 1e6));
    comm.allreduce_max(q.data(), int64_t(q.size()));
    std::vector<double> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = double(q[i]) * 1e-6;
    return out;
}

} // namespace

void run_pretrain(const Config& cfg, Comm& comm, const Logger& log, std::ostream& out) {
    Stopwatch total_time;
    const std::string path = prepared_path(cfg);
    check(std::filesystem::exists(path), path,
          ": prepared data not found; run `pfcr prepare` with the same config first");
    const FederationOptions fed = federation_options(cfg);
    std::deque<PreparedDomain> storage; // this rank's client data (stable addresses)
    std::vector<ClientSpec> specs;
    std::vector<std::vector<const PreparedDomain*>> client_data; // filled for owned clients
    std::vector<int> owner;
    {
        PreparedData data = read_prepared(path);
        check(data.manifest.code_dim == cfg.get_int("code_dim") &&
                  data.manifest.code_cap == cfg.get_int("code_cap"),
              path, ": items were coded with code_dim = ", data.manifest.code_dim,
              ", code_cap = ", data.manifest.code_cap, "; the config disagrees (re-run pfcr prepare)");
        if (fed.algorithm == Algorithm::centralized) {
            ClientSpec s{0, "*", 0, 0};
            for (const auto& d : data.domains) s.train_rows += int64_t(d.train.rows());
            specs.push_back(s);
            owner = assign_clients({s.train_rows}, comm.size());
            client_data.resize(1);
            if (owner[0] == comm.rank()) {
                for (auto& d : data.domains) {
                    storage.push_back(std::move(d));
                    client_data[0].push_back(&storage.back());
                }
            }
        } else {
            // Clients: every domain's user shards, in domain order, then shard order.
            const int64_t n_shards = cfg.get_int("data.shards_per_domain");
            std::vector<PreparedDomain> shards;
            for (const auto& d : data.domains) {
                int64_t s = 0;
                for (auto& shard : split_into_shards(d, n_shards)) {
                    specs.push_back({int64_t(specs.size()), d.name, s++, int64_t(shard.train.rows())});
                    shards.push_back(std::move(shard));
                }
            }
            std::vector<int64_t> rows;
            for (const auto& s : specs) rows.push_back(s.train_rows);
            owner = assign_clients(rows, comm.size());
            client_data.resize(specs.size());
            for (size_t k = 0; k < specs.size(); ++k) {
                if (owner[k] != comm.rank()) continue;
                storage.push_back(std::move(shards[k]));
                client_data[k].push_back(&storage.back());
            }
        }
    } // the other ranks' data is released here
    const int64_t K = int64_t(specs.size());
    const TrainOptions base = train_options(cfg);
    Federation federation(fed, base, cfg.get_double("initializer_range"), specs, owner, comm);
    for (int64_t k = 0; k < K; ++k)
        if (owner[size_t(k)] == comm.rank()) federation.add_client(k, client_data[size_t(k)]);
    int64_t client_bytes = 0;
    for (const auto& c : federation.clients()) client_bytes += c.bytes();

    const int64_t rounds = cfg.get_int("federation.rounds");
    const std::string dir = cfg.get_string("output_dir");
    std::ofstream metrics;
    if (comm.rank() == 0) {
        std::filesystem::create_directories(dir);
        metrics.open((std::filesystem::path(dir) / "metrics.jsonl").string(), std::ios::trunc);
        check(bool(metrics), dir, "/metrics.jsonl: cannot open for writing");
        std::ostringstream os;
        os << "pretrain: " << algorithm_name(fed.algorithm) << ", " << K << " clients on "
           << comm.size() << " ranks, " << rounds << " rounds, shared "
           << (federation.shared_end() - federation.shared_begin()) << " floats, client state "
           << std::fixed << std::setprecision(1)
           << double(client_bytes) / double(std::max<size_t>(federation.clients().size(), 1)) / 1048576.0
           << " MiB per client";
        log.info(os.str());
    }

    double round_seconds = 0;
    for (int64_t round = 0; round < rounds; ++round) {
        const RoundResult r = federation.run_round(round);
        const auto t = max_over_ranks(comm, {r.t_local, r.t_aggregate, r.t_communicate, r.t_server});
        round_seconds += t[0] + t[1] + t[2] + t[3];
        if (comm.rank() != 0) continue;
        std::vector<char> active(size_t(K), 0);
        for (int64_t k : r.sampled) active[size_t(k)] = 1;
        metrics << std::setprecision(17) << "{\"event\": \"round\", \"round\": " << round
                << ", \"train_loss\": [";
        for (int64_t k = 0; k < K; ++k) {
            metrics << (k ? ", " : "");
            if (active[size_t(k)]) metrics << float(r.loss[size_t(k)]);
            else metrics << "null"; // not sampled this round
        }
        metrics << "], \"clients\": [";
        for (size_t i = 0; i < r.sampled.size(); ++i) metrics << (i ? ", " : "") << r.sampled[i];
        metrics << "], \"aggregate_norm\": " << r.aggregate_norm
                << ", \"bytes_up_per_client\": " << r.bytes_up_per_client
                << ", \"bytes_down_per_client\": " << r.bytes_down_per_client
                << std::setprecision(6) << ", \"time\": {\"local_train\": " << t[0]
                << ", \"aggregate\": " << t[1] << ", \"communicate\": " << t[2]
                << ", \"server\": " << t[3] << "}}\n"
                << std::flush;
        std::ostringstream line;
        line << "round " << round << "  loss";
        for (int64_t k = 0; k < K && k < 8; ++k) {
            if (active[size_t(k)])
                line << " " << std::fixed << std::setprecision(4) << r.loss[size_t(k)];
            else line << " -";
        }
        if (K > 8) line << " ...";
        line << std::fixed << std::setprecision(2) << "  (" << t[0] << " s local, " << t[2]
             << " s allreduce)";
        log.info(line.str());
    }
    // Checksum of the whole final state (server + every client's private parameters), the
    // same on every rank: per-client sums travel in fixed point, then add up in id order.
    std::vector<int64_t> client_sums(static_cast<size_t>(K), 0);
    for (const auto& c : federation.clients()) {
        double s = 0;
        for (int64_t i = 0; i < c.private_params.size(); ++i) s += double(c.private_params[i]);
        const float f = float(s);
        encode_add(client_sums.data() + c.spec.id, &f, 1, 1.0, 20, fixed_point_max_abs(1));
    }
    comm.allreduce_sum(client_sums.data(), K);
    double sum = 0;
    for (float v : federation.server_params()) sum += double(v);
    for (int64_t k = 0; k < K; ++k) sum += double(client_sums[size_t(k)]) * std::ldexp(1.0, -20);
    const auto mem = max_over_ranks(comm, {peak_rss_mib()});
    if (comm.rank() == 0) {
        std::ostringstream s;
        s << std::setprecision(17) << sum;
        metrics << "{\"event\": \"end\", \"rounds\": " << rounds
                << ", \"state_sum\": " << s.str() << "}\n";
        write_text_file_atomic((std::filesystem::path(dir) / "config.resolved.yaml").string(),
                               cfg.to_yaml());
        out << "pretrain: " << algorithm_name(fed.algorithm) << ", " << K << " clients, "
            << comm.size() << " ranks, " << rounds << " rounds, " << std::fixed
            << std::setprecision(2) << round_seconds / double(std::max<int64_t>(rounds, 1))
            << " s/round, " << std::setprecision(1) << total_time.seconds() << " s total, peak RSS "
            << mem[0] << " MiB/rank, state_sum " << s.str() << " -> " << dir << "/metrics.jsonl\n";
    }
}

} // namespace pfcr
