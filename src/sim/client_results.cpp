// Helpers shared by `pfcr finetune` and `pfcr evaluate` (see client_results.hpp).
#include "sim/client_results.hpp"

#include <algorithm>
#include <iomanip>
#include <set>
#include <sstream>

#include "core/error.hpp"

namespace pfcr {

void check_same_shapes(const Config& cfg, const CheckpointReader& r) {
    const Config saved = Config::from_yaml_text(r.header().config_yaml, r.path() + ":/config_yaml");
    check_agrees(cfg, saved, role_shapes_checkpoint, r.path());
}

void check_prepared(const CheckpointReader& r, const RunClients& rc, bool allow_other) {
    const std::string& then = r.header().prepared_fingerprint;
    const std::string& now = rc.manifest.fingerprint;
    check(then.empty() || then == now || allow_other, r.path(),
          ": trained on prepared data with fingerprint ", then.substr(0, 12), ", but ", rc.prepared,
          " has fingerprint ", now.substr(0, 12),
          " (other data or another quantizer); use the prepared.h5 it was trained on, or set "
          "checkpoint.allow_other_prepared: true");
}

bool check_clients(const CheckpointReader& r, const RunClients& rc) {
    const auto& stored = r.clients();
    if (r.header().n_clients == 1 && !stored.empty() && stored[0].domain == "*") return true;
    for (const auto& s : rc.specs) {
        if (rc.owner[size_t(s.id)] < 0) continue;
        check(r.has_client(s.id), r.path(), ": no client ", s.id, " (domain ", s.domain, " shard ",
              s.shard, ")");
        const auto m = std::find_if(stored.begin(), stored.end(),
                                    [&](const ClientMeta& c) { return c.id == s.id; });
        check(m->domain == s.domain && m->shard == s.shard, r.path(), ": client ", s.id,
              " is domain ", m->domain, " shard ", m->shard, "; the config gives domain ", s.domain,
              " shard ", s.shard);
    }
    return false;
}

} // namespace pfcr
