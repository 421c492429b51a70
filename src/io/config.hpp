// The run configuration: YAML files merged left to right, then `--set key=value` overrides,
// checked against one schema (config_schema.cpp) that lists every key with its type,
// default, allowed range and meaning. Keys are flat dotted names ("data.path"); YAML files
// may write them nested ("data: {path: ...}") or dotted. Unknown keys and out-of-range
// values are errors naming the file, line and key. This file knows nothing about what the
// keys do; src/options turns them into typed options.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace pfcr {

enum class ValueKind { integer, real, boolean, string, int_list, string_list };

// What a key shapes. Every "may this differ?" rule is derived from roles (below), never from a
// hand-kept list of key names, so a new key is covered as soon as the schema gives it a role.
enum class KeyRole {
    location,      // where outputs (and prepared inputs) are: never changes a result
    input,         // where pfcr prepare reads the raw data: prepared.h5 is rebuilt if it moves
    performance,   // how fast (threads): never changes a result
    checkpointing, // how often checkpoints are written, how many are kept, what a reader accepts
    synth,         // the synthetic data generator only (pfcr synth)
    data,          // which domains and item features go into prepared.h5
    quantizer,     // how prepared.h5's item codes are computed (featurizer, faiss training)
    item_codes,    // the shape of the item codes: prepared.h5 and the model's code table
    clients,       // how domains are cut into clients (client ids, checkpoint groups)
    model,         // the encoder's shapes
    trajectory,    // the training trajectory: seed, optimizer, dropout, federation, privacy
    budget,        // how long training runs: rounds, epochs, early-stopping patience
    evaluation,    // what is measured: cutoffs, metrics, evaluation batch size
    head,          // the fine-tuning head and the domains fine-tuned (fine-tuning checkpoints)
    finetune,      // the fine-tuning trajectory beyond the shared training keys
};
const char* role_name(KeyRole r);

// Rules derived from roles:
// prepared.h5 must be rebuilt when one of these keys differs from its manifest's config;
bool role_shapes_prepared(KeyRole r);
// a checkpoint can only be read by a config that agrees with it on these (model and data);
bool role_shapes_checkpoint(KeyRole r);
// a pre-training run resumes only with the same value of these (everything that shapes its
// trajectory; locations, speed, budget, checkpoint policy and later stages may change).
bool role_shapes_pretraining(KeyRole r);
// a fine-tuning run resumes only with the same value of these (the pre-training keys plus
// the budget, what is measured (early stopping reads it), the head and fine-tuning's own).
bool role_shapes_finetuning(KeyRole r);

struct KeySpec {
    std::string key; // dotted name, RecBole/PFCR spelling where one exists
    KeyRole role;    // what it shapes: every key declares one (config_schema.cpp)
    ValueKind kind;
    std::string default_yaml; // default value as YAML text
    double min = -1e300;      // inclusive numeric bounds (for lists: per element)
    double max = 1e300;
    bool min_exclusive = false;
    bool max_exclusive = false;
    std::vector<std::string> choices; // allowed values for strings / string-list elements
    std::string help;                 // one line: meaning and unit
};

// Every key pfcr understands, in the order they are printed.
const std::vector<KeySpec>& config_schema();

using ConfigValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>,
                                 std::vector<std::string>>;

class Config {
public:
    // Defaults only.
    Config();
    // Merge `files` left to right, then apply `overrides` ("key=value", value parsed as YAML),
    // then range-check every value and the cross-key rules. Throws pfcr::Error.
    static Config load(const std::vector<std::string>& files,
                       const std::vector<std::string>& overrides = {});
    // Same, from YAML text (used by tests and for configs stored in checkpoints).
    static Config from_yaml_text(const std::string& yaml, const std::string& origin);

    // The checked value of a key (the variant alternative of the key's ValueKind). Typed
    // access by key name is the options module's (src/options), nowhere else.
    const ConfigValue& value(const std::string& key) const;
    // The value as YAML text ("0.001", "[Scientific, Office]"), e.g. to compare two configs.
    std::string value_text(const std::string& key) const;
    // Where the value came from: "default", "<file>:<line>" or "--set".
    const std::string& origin(const std::string& key) const;

    // Sets one value from YAML text, as --set does, and re-validates.
    void set(const std::string& key, const std::string& yaml_value, const std::string& origin);

    // The resolved configuration as nested YAML, every key present, schema order.
    std::string to_yaml() const;

private:
    void apply_node_text(const std::string& key, const std::string& yaml_text,
                         const std::string& origin);
    void validate() const;

    std::map<std::string, ConfigValue> values_;
    std::map<std::string, std::string> origins_;

    friend struct ConfigLoader;
};

} // namespace pfcr
