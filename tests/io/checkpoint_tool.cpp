// Test and benchmark helper (not a ctest by itself): writes one synthetic checkpoint with the
// real parameter layout (ParamLayout names and shapes: model/<name>, optim/<name>/m and /v for
// every client-local parameter, the code table under /server) for K clients, collectively
// over all ranks of the job, clients assigned by the balanced rule. Prints the write time.
// Used by test_check_checkpoint.sh (validator, inspect, crash safety) and for the 512-client
// timing in docs/PERFORMANCE.md. Values are deterministic: finite, depend on client and name.
//
// Usage: mpirun -n R checkpoint_tool DIR ROUND N_CLIENTS [n_layers hidden inner [keep]]
#include <mpi.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "federation/clients.hpp"
#include "io/checkpoint.hpp"
#include "io/comm.hpp"
#include "io/config.hpp"
#include "model/params.hpp"
#include "options/options.hpp"

using namespace pfcr;

int main(int argc, char** argv) {
    MpiEnvironment mpi(&argc, &argv);
    try {
        check(argc == 4 || argc == 7 || argc == 8,
              "usage: checkpoint_tool DIR ROUND N_CLIENTS [n_layers hidden inner [keep]]");
        const std::string dir = argv[1];
        const int64_t round = std::atoll(argv[2]);
        const int64_t n_clients = std::atoll(argv[3]);
        const std::string layers = argc > 4 ? argv[4] : "2";
        const std::string hidden = argc > 5 ? argv[5] : "8";
        const std::string inner = argc > 6 ? argv[6] : "12";
        const int keep = argc > 7 ? std::atoi(argv[7]) : 2;
        const Config cfg = Config::from_yaml_text(
            "n_layers: " + layers + "\nhidden_size: " + hidden + "\ninner_size: " + inner +
                "\nn_heads: 2\ncode_dim: 4\ncode_cap: 8\nMAX_ITEM_LIST_LENGTH: 10\nseed: 7\n",
            "checkpoint_tool");
        ModelShape shape = resolve_options(cfg).train.hp.shape;
        const ParamLayout layout(shape);

        MpiComm comm;
        CheckpointContent c;
        c.header = {"pretrain", round,         7,      n_clients, comm.size(), "checkpoint_tool",
                    "",         cfg.to_yaml(), "pfcr", "",        ""};
        std::vector<int64_t> rows;
        for (int64_t k = 0; k < n_clients; ++k) {
            rows.push_back(100 + (k * 37) % 50);
            c.clients.push_back({k, "domain" + std::to_string(k % 8), k / 8, rows.back(), {}, {}});
        }
        const std::vector<int> owner = assign_clients(rows, comm.size());

        // Server: the shared code table; clients: every other parameter with its moments.
        AlignedBuffer<float> server(layout.total());
        init_params(layout, server.data(), 7, 0.02);
        std::vector<const ParamEntry*> local;
        for (const auto& e : layout.entries()) {
            if (e.shared) {
                c.server.push_back({e.name, e.shape});
                c.server_data.push_back(server.data() + e.offset);
            } else {
                local.push_back(&e);
            }
        }
        for (const auto* e : local) c.client_tensors.push_back({"model/" + e->name, e->shape});
        for (const auto* e : local)
            for (const char* m : {"/m", "/v"})
                c.client_tensors.push_back({"optim/" + e->name + m, e->shape});

        struct Store {
            AlignedBuffer<float> params, m, v;
        };
        std::vector<Store> stores;
        stores.reserve(size_t(n_clients));
        for (int64_t k = 0; k < n_clients; ++k) {
            if (owner[size_t(k)] != comm.rank()) continue;
            Store& s = stores.emplace_back(Store{AlignedBuffer<float>(layout.total()),
                                                 AlignedBuffer<float>(layout.total()),
                                                 AlignedBuffer<float>(layout.total())});
            init_params(layout, s.params.data(), uint64_t(1000 + k), 0.02);
            for (int64_t i = 0; i < layout.total(); ++i) {
                s.m.data()[i] = 0.1f * s.params.data()[i];
                s.v.data()[i] = s.params.data()[i] * s.params.data()[i];
            }
            CheckpointContent::Owned o{k, 10 * round + k, 1000 * round + k, {}, {}};
            for (const auto* e : local) o.data.push_back(s.params.data() + e->offset);
            for (const auto* e : local) {
                o.data.push_back(s.m.data() + e->offset);
                o.data.push_back(s.v.data() + e->offset);
            }
            c.owned.push_back(std::move(o));
        }

        MPI_Barrier(comm.handle());
        const double t0 = MPI_Wtime();
        // Crash-safety test (test_check_checkpoint.sh): SIGKILL half-way through the write.
        CheckpointFaults faults;
        if (const char* v = std::getenv("PFCR_TEST_KILL_DURING_CHECKPOINT"))
            faults.mid_write = [r = std::atoll(v)](int64_t round) {
                if (round == r) std::raise(SIGKILL);
            };
        const std::string path = write_checkpoint(comm, dir, c, keep, faults);
        const double seconds = MPI_Wtime() - t0;
        if (comm.rank() == 0) {
            int64_t floats = 0;
            for (const auto& t : c.server) floats += t.size();
            for (const auto& t : c.client_tensors) floats += n_clients * t.size();
            std::printf("checkpoint_tool: wrote %s: %lld clients x %zu tensors + %zu server, "
                        "%.1f MiB, %d ranks, %.3f s\n",
                        path.c_str(), static_cast<long long>(n_clients), c.client_tensors.size(),
                        c.server.size(), double(floats) * 4.0 / (1 << 20), comm.size(), seconds);
        }
    } catch (const std::exception& e) {
        std::cerr << "[rank " << mpi.world_rank() << "] error: " << e.what() << "\n";
        MpiEnvironment::abort(1);
    }
    return 0;
}
