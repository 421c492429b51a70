// Which rank simulates which client, and which clients take part in a round. Both are pure
// functions of their arguments, so every rank computes the same answer without communicating.
// The rank assignment changes speed only, never results (docs/ARCHITECTURE.md §3); client sampling
// depends on (seed, round) only, never on the rank layout. Not the client state itself.
#pragma once

#include <cstdint>
#include <vector>

namespace pfcr {

// rank_of[client] for clients 0..K-1 with train_rows[client] training rows, over n_ranks ranks.
// Greedy longest-processing-time rule: clients in order of train rows descending (ties: lower
// id first), each to the rank with the least load so far (load = sum of train rows; ties:
// lowest rank). A rank that has no client yet is always preferred, so every rank gets one even
// if some clients have 0 rows (with all rows > 0 this changes nothing). Throws pfcr::Error if
// n_ranks exceeds the number of clients or a row count is negative.
std::vector<int> assign_clients(const std::vector<int64_t>& train_rows, int n_ranks);

// The ids of the clients taking part in `round`, sorted ascending: ceil(fraction * n_clients)
// of them (at least 1), chosen by a partial Fisher-Yates shuffle drawn from
// KeyedRng(seed, RngPurpose::sampling), stream (round). fraction in (0, 1]; 1 returns all.
std::vector<int64_t> sample_clients(uint64_t seed, int64_t round, int64_t n_clients,
                                    double fraction);
// ceil(fraction * n_clients), at least 1 (the sample size above).
int64_t sample_size(int64_t n_clients, double fraction);
// The same draw for a given count m in 1..n_clients (sample_clients = this with
// m = sample_size): over-commitment asks for more clients from the same keyed stream.
std::vector<int64_t> sample_clients_count(uint64_t seed, int64_t round, int64_t n_clients,
                                          int64_t m);

} // namespace pfcr
