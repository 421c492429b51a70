// Stage state <-> checkpoint tensors (see checkpoint_state.hpp).
#include "federation/checkpoint_state.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>

#include "core/error.hpp"
#include "io/checkpoint_schema.hpp"

namespace pfcr {
namespace {

// Where each pre-training tensor lives: (kind, offset into that buffer). Adam moments are
// offsets into a dense m|v buffer (2 x layout.total()) that a client's CompactMoments expand
// into.
struct PretrainLayout {
    enum What { global_params, global_control, priv, adam_m, adam_v, client_control };
    std::vector<TensorSpec> server, client;
    std::vector<std::pair<What, int64_t>> server_src, client_src;
};

PretrainLayout pretrain_layout(const Federation& fed) {
    PretrainLayout L;
    const int64_t sb = fed.shared_begin(), S = fed.shared_end() - fed.shared_begin();
    const bool scaffold = fed.options().algorithm == Algorithm::scaffold;
    for (const auto& e : fed.layout().entries()) {
        if (fed.is_shared(e)) {
            L.server.push_back({e.name, e.shape});
            L.server_src.emplace_back(PretrainLayout::global_params, e.offset - sb);
            if (scaffold) {
                L.server.push_back({ckpt::control_tensor(e.name), e.shape});
                L.server_src.emplace_back(PretrainLayout::global_control, e.offset - sb);
                L.client.push_back({ckpt::control_tensor(e.name), e.shape});
                L.client_src.emplace_back(PretrainLayout::client_control, e.offset - sb);
            }
        } else {
            L.client.push_back({ckpt::model_tensor(e.name), e.shape});
            L.client_src.emplace_back(PretrainLayout::priv,
                                      e.offset < sb ? e.offset : e.offset - S);
        }
    }
    for (const auto& e : fed.layout().entries()) {
        L.client.push_back({ckpt::moment_m(e.name), e.shape});
        L.client_src.emplace_back(PretrainLayout::adam_m, e.offset);
        L.client.push_back({ckpt::moment_v(e.name), e.shape});
        L.client_src.emplace_back(PretrainLayout::adam_v, e.offset);
    }
    return L;
}

float* source(Federation& fed, ClientState* c, std::pair<PretrainLayout::What, int64_t> src,
              float* moments = nullptr) {
    switch (src.first) {
    case PretrainLayout::global_params:
        return fed.server_params().data() + src.second;
    case PretrainLayout::global_control:
        return fed.server_control().data() + src.second;
    case PretrainLayout::priv:
        return c->private_params.data() + src.second;
    case PretrainLayout::adam_m:
        return moments + src.second;
    case PretrainLayout::adam_v:
        return moments + fed.layout().total() + src.second;
    case PretrainLayout::client_control:
        return c->control.data() + src.second;
    }
    return nullptr;
}

} // namespace

std::string profile_text(const ClientProfile& p) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "{\"s_per_sample\": %.17g, \"down_mbps\": %.17g, \"up_mbps\": %.17g}",
                  p.s_per_sample, p.down_bytes_per_s * 8 / 1e6, p.up_bytes_per_s * 8 / 1e6);
    return buf;
}

std::string stored_name(const ParamEntry& e) {
    return e.prompt ? e.key() : ckpt::model_tensor(e.name);
}

CheckpointContent pretrain_checkpoint(Federation& fed, CheckpointHeader header) {
    const PretrainLayout L = pretrain_layout(fed);
    CheckpointContent c;
    c.header = std::move(header);
    c.header.n_clients = int64_t(fed.all_clients().size());
    c.server = L.server;
    for (const auto& src : L.server_src) c.server_data.push_back(source(fed, nullptr, src));
    // Async: the old model versions clients in flight will train from.
    for (auto& [version, x] : fed.old_versions())
        for (const auto& e : fed.layout().entries())
            if (fed.is_shared(e)) {
                c.server.push_back({ckpt::version_tensor(version, e.name), e.shape});
                c.server_data.push_back(x.data() + (e.offset - fed.shared_begin()));
            }
    // Each client's device profile (system.*), as the run summary prints it.
    for (const auto& s : fed.all_clients())
        c.clients.push_back({s.id,
                             s.domain,
                             s.shard,
                             s.train_rows,
                             {},
                             profile_text(fed.profiles()[size_t(s.id)])});
    c.client_tensors = L.client;
    // One dense m|v buffer per rank, refilled for each client as the writer reaches it.
    auto dense = std::make_shared<AlignedBuffer<float>>(2 * fed.layout().total());
    const auto src = std::make_shared<const PretrainLayout>(L); // one copy for every client
    for (auto& cl : fed.clients()) {
        CheckpointContent::Owned o;
        o.id = cl.spec.id;
        o.adam_step = cl.step;
        o.rng_counter = cl.rounds_trained;
        o.fetch = [&fed, &cl, src, dense] {
            float* m = dense->data();
            cl.moments.load(fed.layout(), m, m + fed.layout().total());
            std::vector<const float*> data;
            for (const auto& from : src->client_src) data.push_back(source(fed, &cl, from, m));
            return data;
        };
        c.owned.push_back(std::move(o));
    }
    return c;
}

void restore_pretrain_state(Federation& fed, const CheckpointReader& r) {
    const std::string& path = r.path();
    const auto& h = r.header();
    check(h.n_clients == int64_t(fed.all_clients().size()), path, ": ", h.n_clients,
          " clients, the config defines ", fed.all_clients().size());
    for (const auto& s : fed.all_clients()) {
        check(r.has_client(s.id), path, ": client ", s.id, " missing");
        const auto& m = r.clients()[size_t(s.id)];
        check(m.domain == s.domain && m.shard == s.shard && m.n_train_rows == s.train_rows, path,
              ": client ", s.id, " is domain ", m.domain, " shard ", m.shard, " with ",
              m.n_train_rows, " train rows; the data now gives domain ", s.domain, " shard ",
              s.shard, " with ", s.train_rows, " (different prepared.h5?)");
    }
    const PretrainLayout L = pretrain_layout(fed);
    for (size_t i = 0; i < L.server.size(); ++i)
        r.read_server(L.server[i], source(fed, nullptr, L.server_src[i]));
    AlignedBuffer<float> dense(2 * fed.layout().total());
    for (auto& c : fed.clients()) {
        for (size_t i = 0; i < L.client.size(); ++i)
            r.read_client(c.spec.id, L.client[i], source(fed, &c, L.client_src[i], dense.data()));
        c.moments.store(fed.layout(), dense.data(), dense.data() + fed.layout().total());
        c.step = r.adam_step(c.spec.id);
        c.rounds_trained = r.rng_counter(c.spec.id);
    }
    // The virtual clock is a pure function of the config: replay it; async also needs the
    // old model versions in flight.
    fed.fast_forward(h.round);
    for (int64_t version : fed.needed_versions()) {
        std::vector<float>& x = fed.old_versions()[version];
        x.resize(size_t(fed.shared_end() - fed.shared_begin()));
        for (const auto& e : fed.layout().entries())
            if (fed.is_shared(e))
                r.read_server({ckpt::version_tensor(version, e.name), e.shape},
                              x.data() + (e.offset - fed.shared_begin()));
    }
}

CheckpointContent finetune_checkpoint(const ParamLayout& layout, CheckpointHeader header,
                                      const std::vector<ClientSpec>& all, bool with_optimizer) {
    CheckpointContent c;
    c.header = std::move(header);
    std::vector<std::string> per_client_rows; // tensors whose rows follow the domain
    for (const auto& e : layout.entries()) {
        // best/ and optim/ take the parameter's key (prompt/<name> for the head).
        std::vector<std::string> names = {stored_name(e)};
        if (e.trainable) names.push_back(ckpt::best_tensor(e.key()));
        if (with_optimizer) {
            names.push_back(ckpt::moment_m(e.key()));
            names.push_back(ckpt::moment_v(e.key()));
        }
        for (const auto& n : names) c.client_tensors.push_back({n, e.shape});
        if (e.name == "item_embedding.weight")
            per_client_rows.insert(per_client_rows.end(), names.begin(), names.end());
    }
    for (const auto& s : all) {
        ClientMeta meta{s.id, s.domain, s.shard, s.train_rows, {}, {}};
        for (const auto& t : per_client_rows) meta.rows_override.emplace_back(t, s.n_items + 1);
        c.clients.push_back(meta);
    }
    c.header.n_clients = int64_t(c.clients.size());
    return c;
}

CheckpointContent::Owned finetune_owned(const FinetunedClient& f, bool with_optimizer) {
    CheckpointContent::Owned o;
    o.id = f.spec.id;
    o.adam_step = f.state->step;
    o.rng_counter = f.epochs;
    for (const auto& e : f.state->layout.entries()) {
        o.data.push_back(f.state->params.data() + e.offset);
        if (e.trainable) o.data.push_back(f.best + e.offset);
        if (with_optimizer) {
            o.data.push_back(f.state->adam_m.data() + e.offset);
            o.data.push_back(f.state->adam_v.data() + e.offset);
        }
    }
    return o;
}

bool read_finetune_state(const CheckpointReader& r, int64_t id, ModelState& state, float* best) {
    const ParamLayout& layout = state.layout;
    read_finetuned(r, id, layout, false, state.params.data());
    if (best) read_finetuned(r, id, layout, true, best);
    std::set<std::string> stored;
    for (const auto& t : r.client_tensors(id)) stored.insert(t.name);
    const bool with_optimizer = stored.count(ckpt::moment_m(layout.entries().front().key())) > 0;
    std::fill(state.adam_m.data(), state.adam_m.data() + layout.total(), 0.0f);
    std::fill(state.adam_v.data(), state.adam_v.data() + layout.total(), 0.0f);
    state.step = 0;
    if (!with_optimizer) return false;
    for (const auto& e : layout.entries()) {
        r.read_client(id, TensorSpec{ckpt::moment_m(e.key()), e.shape},
                      state.adam_m.data() + e.offset);
        r.read_client(id, TensorSpec{ckpt::moment_v(e.key()), e.shape},
                      state.adam_v.data() + e.offset);
    }
    state.step = r.adam_step(id);
    return true;
}

void read_finetuned(const CheckpointReader& r, int64_t id, const ParamLayout& layout, bool best,
                    float* params) {
    // best/ holds the trainable entries only (older files: every entry); a frozen entry's best
    // is its model/.
    for (const auto& e : layout.entries()) {
        const bool from_best = best && e.trainable;
        const std::string name = from_best ? ckpt::best_tensor(e.key()) : stored_name(e);
        r.read_client(id, TensorSpec{name, e.shape}, params + e.offset);
    }
}

void load_pretrained(const CheckpointReader& r, int64_t src, const ParamLayout& layout,
                     float* params) {
    std::set<std::string> on_server;
    for (const auto& t : r.server_tensors()) on_server.insert(t.name);
    for (const auto& e : layout.entries()) {
        if (e.prompt) continue; // the prompt-tuning head is new in fine-tuning
        if (on_server.count(e.name))
            r.read_server(TensorSpec{e.name, e.shape}, params + e.offset);
        else
            r.read_client(src, TensorSpec{ckpt::model_tensor(e.name), e.shape}, params + e.offset);
    }
}

} // namespace pfcr
