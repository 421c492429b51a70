// What the fine-tuning and evaluation drivers share: checking that a pre-training or
// fine-tuning checkpoint fits the run's config, and gathering every client's result
// on rank 0. No training and no file output here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "federation/checkpoint_state.hpp"
#include "io/checkpoint.hpp"
#include "io/comm.hpp"
#include "model/params.hpp"
#include "model/trainer.hpp"
#include "options/options.hpp"
#include "sim/run_clients.hpp"

namespace pfcr {

// Throws unless `cfg` agrees with the config stored in `r` on every key that shapes a
// checkpoint (role_shapes_checkpoint: the model's shapes and the data that defines clients
// and item codes); the error names the key, both values and where the current one came from.
void check_same_shapes(const Config& cfg, const CheckpointReader& r);

// Throws unless `r` was trained on the prepared data `rc` reads (same fingerprint; a checkpoint
// without one passes), or `allow_other` (checkpoint.allow_other_prepared).
void check_prepared(const CheckpointReader& r, const RunClients& rc, bool allow_other);

// True if `r` holds one pooled client "*" (a centralized pre-training checkpoint, whose model
// serves every client); otherwise checks that its clients are exactly `rc`'s owned clients
// (same ids, domains, shards) and returns false.
bool check_clients(const CheckpointReader& r, const RunClients& rc);

// Every client's value in id order, on rank 0 only (gather_to_rank0) or on every rank
// (gather_to_all): `mine` holds this rank's clients (by id), `serialize` turns one into text
// and `deserialize` back (exactly). Collective; gather_to_rank0 returns an empty map on other
// ranks.
template <typename T, typename Serialize, typename Deserialize>
std::map<int64_t, T> gather_clients(Comm& comm, const RunClients& rc, std::map<int64_t, T>& mine,
                                    Serialize serialize, Deserialize deserialize, bool everywhere) {
    std::map<int64_t, T> all;
    for (int64_t k = 0; k < int64_t(rc.owner.size()); ++k) {
        const int owner = rc.owner[size_t(k)];
        if (owner < 0) continue;
        const std::string s = broadcast_string(
            comm, owner == comm.rank() ? serialize(mine[k]) : std::string(), owner);
        if (comm.rank() == 0 || everywhere)
            all[k] = owner == comm.rank() ? mine[k] : deserialize(s);
    }
    return all;
}
template <typename T, typename Serialize, typename Deserialize>
std::map<int64_t, T> gather_to_rank0(Comm& comm, const RunClients& rc, std::map<int64_t, T>& mine,
                                     Serialize serialize, Deserialize deserialize) {
    return gather_clients(comm, rc, mine, serialize, deserialize, false);
}
template <typename T, typename Serialize, typename Deserialize>
std::map<int64_t, T> gather_to_all(Comm& comm, const RunClients& rc, std::map<int64_t, T>& mine,
                                   Serialize serialize, Deserialize deserialize) {
    return gather_clients(comm, rc, mine, serialize, deserialize, true);
}

} // namespace pfcr
