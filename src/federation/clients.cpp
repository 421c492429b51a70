// Client-to-rank assignment and per-round client sampling (see clients.hpp).
#include "federation/clients.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <tuple>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace pfcr {

std::vector<int> assign_clients(const std::vector<int64_t>& train_rows, int n_ranks) {
    const int64_t n_clients = int64_t(train_rows.size());
    check(n_ranks >= 1, "assign_clients: need at least one rank, got ", n_ranks);
    check(n_ranks <= n_clients, n_ranks, " ranks but only ", n_clients,
          " clients: every rank needs at least one client; use fewer ranks or more clients "
          "(data.shards_per_domain)");
    for (int64_t c = 0; c < n_clients; ++c)
        check(train_rows[size_t(c)] >= 0, "assign_clients: client ", c, " has ",
              train_rows[size_t(c)], " training rows");

    std::vector<int64_t> order(static_cast<size_t>(n_clients));
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return train_rows[size_t(a)] > train_rows[size_t(b)];
    });

    // Min-heap on (has a client, load, rank): empty ranks first, then least load, then lowest rank.
    using Slot = std::tuple<bool, int64_t, int>;
    std::priority_queue<Slot, std::vector<Slot>, std::greater<Slot>> ranks;
    for (int r = 0; r < n_ranks; ++r) ranks.emplace(false, int64_t(0), r);

    std::vector<int> rank_of(size_t(n_clients), -1);
    for (const int64_t c : order) {
        auto [used, load, r] = ranks.top();
        ranks.pop();
        rank_of[size_t(c)] = r;
        ranks.emplace(true, load + train_rows[size_t(c)], r);
    }
    return rank_of;
}

int64_t sample_size(int64_t n_clients, double fraction) {
    check(fraction > 0.0 && fraction <= 1.0,
          "sample_clients: federation client fraction must be in (0, 1], got ", fraction);
    // The relative slack keeps products that are integers on paper integers in practice
    // (0.55 * 100 is 55.00000000000001 in double and must select 55 clients, not 56).
    const double wanted = std::ceil(fraction * double(n_clients) * (1.0 - 1e-12));
    return std::clamp(int64_t(wanted), int64_t(1), std::max<int64_t>(n_clients, 1));
}

std::vector<int64_t> sample_clients(uint64_t seed, int64_t round, int64_t n_clients,
                                    double fraction) {
    check(n_clients >= 1, "sample_clients: need at least one client, got ", n_clients);
    return sample_clients_count(seed, round, n_clients, sample_size(n_clients, fraction));
}

std::vector<int64_t> sample_clients_count(uint64_t seed, int64_t round, int64_t n_clients,
                                          int64_t m) {
    check(n_clients >= 1, "sample_clients: need at least one client, got ", n_clients);
    check(round >= 0, "sample_clients: negative round ", round);
    check(m >= 1 && m <= n_clients, "sample_clients: ", m, " of ", n_clients, " clients");
    std::vector<int64_t> ids(static_cast<size_t>(n_clients));
    std::iota(ids.begin(), ids.end(), int64_t(0));
    if (m == n_clients) return ids;

    // Partial Fisher-Yates: positions [0, m) end up holding a uniform m-subset.
    auto s = KeyedRng(seed, RngPurpose::sampling).stream(uint32_t(round), uint32_t(round >> 32));
    for (int64_t i = 0; i < m; ++i) {
        const int64_t j = i + int64_t(s.below(uint64_t(n_clients - i)));
        std::swap(ids[size_t(i)], ids[size_t(j)]);
    }
    ids.resize(size_t(m));
    std::sort(ids.begin(), ids.end());
    return ids;
}

} // namespace pfcr
