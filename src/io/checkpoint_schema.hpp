// The checkpoint format's names, in one place (docs/formats.md lists the same): groups,
// attributes and the tensor-name patterns under /server and /clients/<id>. The writer and
// reader (checkpoint.cpp), the validator (`pfcr inspect`, src/sim/inspect.cpp), the stages'
// checkpoint <-> state mapping (src/federation/checkpoint_state.*) and
// analysis/check_checkpoint.py (tested against files the binary writes) use these names and
// no others. Not here: which tensors a stage stores (checkpoint_state) or the HDF5 calls.
#pragma once

#include <optional>
#include <string>

namespace pfcr::ckpt {

// Groups: /server/<tensor>, /clients/<id>/<tensor>, /clients/<id>/optim (attribute `step`).
inline constexpr const char* server = "server";
inline constexpr const char* clients = "clients";
inline constexpr const char* optim = "optim";

// Stages (root attribute `stage`).
inline constexpr const char* stage_pretrain = "pretrain";
inline constexpr const char* stage_finetune = "finetune";

namespace attr {
// Root.
inline constexpr const char* format = "format";                 // checkpoint_format
inline constexpr const char* format_version = "format_version"; // checkpoint_format_version
inline constexpr const char* stage = "stage";
inline constexpr const char* round = "round"; // rounds (pretrain) / epochs (finetune) done
inline constexpr const char* seed = "seed";
inline constexpr const char* n_clients = "n_clients";
inline constexpr const char* world_size_at_write = "world_size_at_write";
inline constexpr const char* software_version = "software_version";
inline constexpr const char* created_utc = "created_utc";
inline constexpr const char* config_yaml = "config_yaml";
inline constexpr const char* algorithm = "algorithm";
// The fingerprint of the prepared.h5 the state was trained on (optional: absent in files
// written before it existed; readers then skip the check).
inline constexpr const char* prepared_fingerprint = "prepared_fingerprint";
// SHA-256 of the availability trace (system.trace) pre-training used; only written then.
inline constexpr const char* trace_sha256 = "trace_sha256";
// /clients/<id>.
inline constexpr const char* domain = "domain";
inline constexpr const char* shard = "shard";
inline constexpr const char* n_train_rows = "n_train_rows";
inline constexpr const char* rng_counter = "rng_counter";
inline constexpr const char* stage_state = "stage_state"; // optional: ClientMeta::stage_state
// /clients/<id>/optim.
inline constexpr const char* step = "step";
} // namespace attr

// Tensor names, relative to /server or /clients/<id>. `name` is a parameter's PyTorch
// state_dict name ("pq_code_embedding.weight"); a prompt-head parameter's stored name already
// carries its "prompt/" prefix (ParamEntry::key()).
inline std::string model_tensor(const std::string& name) {
    return "model/" + name;
}
inline std::string control_tensor(const std::string& name) {
    return "control/" + name;
}
// Asynchronous pre-training: an old model version (shared entry `name`) that clients still in
// flight train from; under /server.
inline std::string version_tensor(int64_t version, const std::string& name) {
    return "version/" + std::to_string(version) + "/" + name;
}
inline std::string best_tensor(const std::string& stored) {
    return "best/" + stored;
}
inline std::string moment_m(const std::string& stored) {
    return std::string(optim) + "/" + stored + "/m";
}
inline std::string moment_v(const std::string& stored) {
    return std::string(optim) + "/" + stored + "/v";
}

// The parameter a /clients/<id> tensor name belongs to (for validation): "model/<p>",
// "best/<p>", "control/<p>", "optim/<p>/m|v" -> p (prompt parameters keep "prompt/");
// nullopt for a name outside the patterns.
std::optional<std::string> parameter_of(const std::string& tensor);

} // namespace pfcr::ckpt
