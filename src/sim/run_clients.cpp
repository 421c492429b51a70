// See run_clients.hpp.
#include "sim/run_clients.hpp"

#include <algorithm>
#include <filesystem>

#include "core/error.hpp"
#include "federation/clients.hpp"

namespace pfcr {

RunClients load_run_clients(const Options& opt, const Comm& comm, bool pooled,
                            const std::vector<std::string>& only_domains) {
    RunClients rc;
    rc.prepared = opt.prepared;
    const ModelShape& shape = opt.train.hp.shape;
    check(std::filesystem::exists(rc.prepared), rc.prepared,
          ": prepared data not found; run `pfcr prepare` with the same config first");
    PreparedData data = read_prepared(rc.prepared);
    const auto& m = data.manifest;
    check(m.code_dim == shape.code_dim && m.code_cap == shape.code_cap, rc.prepared,
          ": items were coded with code_dim = ", m.code_dim, ", code_cap = ", m.code_cap,
          " but the config says code_dim = ", shape.code_dim, " (", opt.config.origin("code_dim"),
          "), code_cap = ", shape.code_cap, "; re-run pfcr prepare");
    check(m.max_history <= opt.max_history, rc.prepared, ": histories of up to ", m.max_history,
          " items, but MAX_ITEM_LIST_LENGTH = ", opt.max_history);
    for (const auto& d : data.domains) rc.domain_names.push_back(d.name);
    for (const auto& name : only_domains)
        check(std::find(rc.domain_names.begin(), rc.domain_names.end(), name) !=
                  rc.domain_names.end(),
              "finetune.domains (", opt.finetune.domains_origin, "): '", name,
              "' is not a domain of ", rc.prepared);
    const auto selected = [&](const std::string& domain) {
        return only_domains.empty() ||
               std::find(only_domains.begin(), only_domains.end(), domain) != only_domains.end();
    };

    std::vector<PreparedDomain> pieces; // parallel to specs
    if (pooled) {
        ClientSpec s{0, "*", 0, 0, 0};
        for (const auto& d : data.domains) s.train_rows += int64_t(d.train.rows());
        rc.specs.push_back(s);
    } else {
        const int64_t n_shards = opt.shards_per_domain;
        for (const auto& d : data.domains) {
            int64_t s = 0;
            for (auto& shard : split_into_shards(d, n_shards)) {
                rc.specs.push_back({int64_t(rc.specs.size()), d.name, s++,
                                    int64_t(shard.train.rows()), d.n_items});
                pieces.push_back(std::move(shard));
            }
        }
    }
    // Balanced assignment over the clients of this stage only.
    std::vector<int64_t> ids, rows;
    for (const auto& s : rc.specs)
        if (pooled || selected(s.domain)) {
            ids.push_back(s.id);
            rows.push_back(s.train_rows);
        }
    // The pooled client lives on rank 0; other ranks sit idle (its rounds need no peers).
    const std::vector<int> rank_of =
        pooled ? std::vector<int>{0} : assign_clients(rows, comm.size());
    rc.owner.assign(rc.specs.size(), -1);
    for (size_t i = 0; i < ids.size(); ++i) rc.owner[size_t(ids[i])] = rank_of[i];
    rc.data.resize(rc.specs.size());
    for (size_t k = 0; k < rc.specs.size(); ++k) {
        if (rc.owner[k] != comm.rank()) continue;
        if (pooled) {
            for (auto& d : data.domains) {
                rc.storage.push_back(std::move(d));
                rc.data[k].push_back(&rc.storage.back());
            }
        } else {
            rc.storage.push_back(std::move(pieces[k]));
            rc.data[k].push_back(&rc.storage.back());
        }
    }
    rc.manifest = std::move(data.manifest);
    return rc; // the other ranks' data is released with `data` and `pieces`
}

} // namespace pfcr
