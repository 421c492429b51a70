// The run configuration: YAML files merged left to right, then `--set key=value` overrides,
// checked against one schema (config_schema.cpp) that lists every key with its type,
// default, allowed range and meaning. Keys are flat dotted names ("data.path"); YAML files
// may write them nested ("data: {path: ...}") or dotted. Unknown keys and out-of-range
// values are errors naming the file, line and key. This file knows nothing about what the
// keys do; the drivers in src/sim read them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace pfcr {

enum class ValueKind { integer, real, boolean, string, int_list, string_list };

struct KeySpec {
    std::string key; // dotted name, RecBole/PFCR spelling where one exists
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

    int64_t get_int(const std::string& key) const;
    double get_double(const std::string& key) const; // also accepts integer-kind keys
    bool get_bool(const std::string& key) const;
    const std::string& get_string(const std::string& key) const;
    const std::vector<int64_t>& get_int_list(const std::string& key) const;
    const std::vector<std::string>& get_string_list(const std::string& key) const;
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
    const ConfigValue& value(const std::string& key) const;

    std::map<std::string, ConfigValue> values_;
    std::map<std::string, std::string> origins_;

    friend struct ConfigLoader;
};

} // namespace pfcr
