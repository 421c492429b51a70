// The clients of a run as every stage sees them (docs/ARCHITECTURE.md §3): read prepared.h5, cut
// each domain into data.shards_per_domain user shards (client id = domain order, then shard
// order) or pool every domain into one client (centralized), assign clients to ranks by the
// balanced rule, and keep only this rank's clients' data. Shared by pretrain and finetune so
// that a client id means the same thing in both. No training here.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "data/prepared.hpp"
#include "federation/engine.hpp"
#include "io/comm.hpp"
#include "options/options.hpp"

namespace pfcr {

struct RunClients {
    std::string prepared; // path of prepared.h5
    PreparedManifest manifest;
    std::vector<ClientSpec> specs; // every client
    std::vector<int> owner;        // rank of each client (-1: not part of this stage)
    std::vector<std::vector<const PreparedDomain*>> data; // owned clients' data (else empty)
    std::deque<PreparedDomain> storage;    // what `data` points into (stable addresses)
    std::vector<std::string> domain_names; // every domain, prepared.h5 order
};

// `pooled`: one client "*" holding every domain. `only_domains`: if not empty, clients of
// other domains keep their ids but get no rank (owner -1) and no data.
// Messages about only_domains name finetune.domains (the only key that selects domains).
RunClients load_run_clients(const Options& opt, const Comm& comm, bool pooled,
                            const std::vector<std::string>& only_domains = {});

} // namespace pfcr
