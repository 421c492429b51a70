// `pfcr pretrain` (PFCR stage 1, algorithm "pfcr", no privacy mechanism yet): every domain, or
// each of its data.shards_per_domain user shards, is a client; clients are assigned to MPI ranks by the balanced rule; each round every client
// copies the global code table, runs one local epoch (Adam on all its parameters) while
// summing its code-table gradient, and contributes train_rows/total_rows times that sum; the
// contributions are added in 64-bit fixed point so the MPI sum is exact; every rank takes the
// same server SGD step. metrics.jsonl therefore has the same bytes for any rank count.
// federation.client_fraction < 1 samples clients per round (weights over the sampled rows).
// Not yet here: other algorithms, privacy, checkpoints and resume.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/error.hpp"
#include "federation/clients.hpp"
#include "federation/comm.hpp"
#include "federation/fixed_point.hpp"
#include "io/atomic_file.hpp"
#include "sim/commands.hpp"

namespace pfcr {

void run_pretrain(const Config& cfg, Comm& comm, const Logger& log, std::ostream& out) {
    const std::string path = prepared_path(cfg);
    check(std::filesystem::exists(path), path,
          ": prepared data not found; run `pfcr prepare` with the same config first");
    const PreparedData data = read_prepared(path);
    check(data.manifest.code_dim == cfg.get_int("code_dim") &&
              data.manifest.code_cap == cfg.get_int("code_cap"),
          path, ": items were coded with code_dim = ", data.manifest.code_dim, ", code_cap = ",
          data.manifest.code_cap, "; the config disagrees (re-run pfcr prepare)");
    // Clients: every domain's user shards, in domain order, then shard order.
    std::vector<PreparedDomain> clients;
    for (const auto& d : data.domains)
        for (auto& shard : split_into_shards(d, cfg.get_int("data.shards_per_domain")))
            clients.push_back(std::move(shard));
    const int64_t K = int64_t(clients.size());
    std::vector<int64_t> rows(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) rows[size_t(k)] = int64_t(clients[size_t(k)].train.rows());
    const std::vector<int> owner = assign_clients(rows, comm.size());

    const TrainOptions base = train_options(cfg);
    const ParamLayout layout(base.hp.shape);
    const auto& table = layout.at("pq_code_embedding.weight");
    // Global code table: the same keyed initialisation every client's model starts from.
    std::vector<float> global(size_t(table.size));
    {
        AlignedBuffer<float> init(layout.total());
        init_params(layout, init.data(), base.seed, cfg.get_double("initializer_range"));
        std::copy(init.data() + table.offset, init.data() + table.offset + table.size, global.begin());
    }
    // This rank's clients: model state + trainer, in client-id order.
    struct Client {
        int64_t id;
        std::unique_ptr<ModelState> state;
        std::unique_ptr<Trainer> trainer;
    };
    std::vector<Client> mine;
    // This rank's clients train one after another, so they share one step scratch: a client
    // persistently holds only its ModelState.
    const auto scratch = make_trainer_scratch();
    for (int64_t k = 0; k < K; ++k) {
        if (owner[size_t(k)] != comm.rank()) continue;
        TrainOptions opt = base;
        opt.client = uint32_t(k);
        Client c{k, std::make_unique<ModelState>(base.hp.shape), nullptr};
        init_params(layout, c.state->params.data(), base.seed, cfg.get_double("initializer_range"));
        c.trainer = std::make_unique<Trainer>(opt, clients[size_t(k)], scratch);
        mine.push_back(std::move(c));
    }
    const int bits = int(cfg.get_int("federation.fixed_point_bits"));
    const int64_t max_abs = fixed_point_max_abs(K);
    const double lr = cfg.get_double("learning_rate");
    const int64_t rounds = cfg.get_int("federation.rounds");
    const std::string dir = cfg.get_string("output_dir");
    std::ofstream metrics;
    if (comm.rank() == 0) {
        std::filesystem::create_directories(dir);
        metrics.open((std::filesystem::path(dir) / "metrics.jsonl").string(), std::ios::trunc);
        check(bool(metrics), dir, "/metrics.jsonl: cannot open for writing");
        log.info("pretrain: " + std::to_string(K) + " clients on " + std::to_string(comm.size()) +
                 " ranks, " + std::to_string(rounds) + " rounds");
    }

    std::vector<float> grad_sum(size_t(table.size));
    std::vector<int64_t> acc(size_t(table.size));
    std::vector<int64_t> loss_acc(static_cast<size_t>(K));
    std::vector<float> aggregate(size_t(table.size));
    const double fraction = cfg.get_double("federation.client_fraction");
    for (int64_t round = 0; round < rounds; ++round) {
        Stopwatch sw;
        std::fill(acc.begin(), acc.end(), 0);
        std::fill(loss_acc.begin(), loss_acc.end(), 0);
        // This round's clients: a pure function of (seed, round), the same on every rank.
        const std::vector<int64_t> sampled = sample_clients(base.seed, round, K, fraction);
        std::vector<char> active(size_t(K), 0);
        int64_t sampled_rows = 0;
        for (int64_t k : sampled) {
            active[size_t(k)] = 1;
            sampled_rows += rows[size_t(k)];
        }
        for (auto& c : mine) {
            if (!active[size_t(c.id)]) continue;
            float* local_table = c.state->params.data() + table.offset;
            std::copy(global.begin(), global.end(), local_table);  // clients take the global E
            std::fill(grad_sum.begin(), grad_sum.end(), 0.0f);
            c.trainer->set_shared_grad_accumulator(grad_sum.data());
            const float loss = float(c.trainer->train_epoch(*c.state, uint32_t(round)));
            c.trainer->set_shared_grad_accumulator(nullptr);
            const double weight = double(rows[size_t(c.id)]) / double(sampled_rows);
            encode_add(acc.data(), grad_sum.data(), table.size, weight, bits, max_abs);
            encode_add(loss_acc.data() + c.id, &loss, 1, 1.0, bits, max_abs);
        }
        const double t_local = sw.seconds();
        sw.reset();
        comm.allreduce_sum(acc.data(), table.size);
        comm.allreduce_sum(loss_acc.data(), K);
        const double t_comm = sw.seconds();
        // Server SGD step, identical on every rank: E <- E - lr * sum_k w_k g_k.
        decode(aggregate.data(), acc.data(), table.size, bits);
        for (int64_t i = 0; i < table.size; ++i) global[size_t(i)] -= float(lr) * aggregate[size_t(i)];
        std::vector<float> losses(static_cast<size_t>(K));
        decode(losses.data(), loss_acc.data(), K, bits);
        if (comm.rank() == 0) {
            double norm2 = 0;
            for (float g : aggregate) norm2 += double(g) * g;
            metrics << std::setprecision(17) << "{\"event\": \"round\", \"round\": " << round
                    << ", \"train_loss\": [";
            for (int64_t k = 0; k < K; ++k) {
                metrics << (k ? ", " : "");
                if (active[size_t(k)]) metrics << losses[size_t(k)];
                else metrics << "null";  // not sampled this round
            }
            metrics << "], \"clients\": [";
            for (size_t i = 0; i < sampled.size(); ++i) metrics << (i ? ", " : "") << sampled[i];
            metrics << "], \"aggregate_norm\": " << std::sqrt(norm2)
                    << ", \"bytes_up_per_client\": " << table.size * 4
                    << ", \"bytes_down_per_client\": " << table.size * 4 << "}\n" << std::flush;
            std::ostringstream line;
            line << "round " << round << "  loss";
            for (int64_t k = 0; k < K; ++k) {
                if (active[size_t(k)]) line << " " << std::fixed << std::setprecision(4) << losses[size_t(k)];
                else line << " -";
            }
            line << "  (" << std::setprecision(1) << t_local << " s local, " << t_comm << " s allreduce)";
            log.info(line.str());
        }
    }
    // Final state of the shared table, the same on every rank: a checksum for the summary line.
    const std::string sum = [&] {
        double s = 0;
        for (float v : global) s += double(v);
        std::ostringstream os;
        os << std::setprecision(17) << s;
        return os.str();
    }();
    if (comm.rank() == 0) {
        metrics << "{\"event\": \"end\", \"rounds\": " << rounds << ", \"code_table_sum\": " << sum << "}\n";
        write_text_file_atomic((std::filesystem::path(dir) / "config.resolved.yaml").string(), cfg.to_yaml());
        out << "pretrain: " << K << " clients, " << comm.size() << " ranks, " << rounds
            << " rounds, code_table_sum " << sum << " -> " << dir << "/metrics.jsonl\n";
    }
}

} // namespace pfcr
