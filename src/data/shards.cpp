// User shards of a prepared domain (see prepared.hpp: split_into_shards).
#include "core/error.hpp"
#include "core/rng.hpp"
#include "data/prepared.hpp"

namespace pfcr {
namespace {

void take_rows(const Split& in, const std::vector<int32_t>& shard_of_user, int32_t s, Split& out) {
    for (size_t r = 0; r < in.rows(); ++r) {
        if (shard_of_user[size_t(in.users[r])] != s) continue;
        out.items.insert(out.items.end(), in.items.begin() + in.indptr[r],
                         in.items.begin() + in.indptr[r + 1]);
        out.indptr.push_back(int64_t(out.items.size()));
        out.targets.push_back(in.targets[r]);
        out.users.push_back(in.users[r]);
    }
}

} // namespace

std::vector<PreparedDomain> split_into_shards(const PreparedDomain& d, int64_t shards) {
    check(shards >= 1, "data.shards_per_domain must be >= 1");
    if (shards == 1) return {d};
    // A fixed hash of the user index: shard membership never depends on seeds or ranks.
    std::vector<int32_t> shard_of_user(size_t(d.n_users));
    for (int64_t u = 0; u < d.n_users; ++u)
        shard_of_user[size_t(u)] = int32_t(mix64(uint64_t(u)) % uint64_t(shards));
    std::vector<PreparedDomain> out(static_cast<size_t>(shards));
    for (int64_t s = 0; s < shards; ++s) {
        PreparedDomain& p = out[size_t(s)];
        p.name = d.name + "#" + std::to_string(s);
        p.n_users = d.n_users;
        p.n_items = d.n_items;
        p.item_codes = d.item_codes;
        p.feature_source = d.feature_source;
        take_rows(d.train, shard_of_user, int32_t(s), p.train);
        take_rows(d.valid, shard_of_user, int32_t(s), p.valid);
        take_rows(d.test, shard_of_user, int32_t(s), p.test);
        check(p.train.rows() > 0, "domain ", d.name, ": shard ", s, " of ", shards,
              " has no train rows; lower data.shards_per_domain");
        p.item_popularity.assign(size_t(d.n_items + 1), 0);
        for (int32_t t : p.train.targets) ++p.item_popularity[size_t(t)];
    }
    return out;
}

} // namespace pfcr
