// Loading, merging, checking and printing the configuration (see config.hpp). The schema
// itself is in config_schema.cpp.
#include "io/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"

namespace pfcr {
namespace {

const KeySpec* find_spec(const std::string& key) {
    for (const auto& s : config_schema())
        if (s.key == key) return &s;
    return nullptr;
}

bool is_group_prefix(const std::string& prefix) {
    for (const auto& s : config_schema())
        if (s.key.size() > prefix.size() && s.key.compare(0, prefix.size(), prefix) == 0 &&
            s.key[prefix.size()] == '.')
            return true;
    return false;
}

std::vector<std::string> all_keys() {
    std::vector<std::string> keys;
    for (const auto& s : config_schema()) keys.push_back(s.key);
    return keys;
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& origin) {
    std::string msg = origin + ": unknown key '" + key + "'";
    // Try the full dotted name, then the last component against last components.
    auto guess = closest_match(key, all_keys());
    if (!guess) {
        const auto leaf = key.substr(key.rfind('.') + 1);
        for (const auto& k : all_keys())
            if (k.substr(k.rfind('.') + 1) == leaf) guess = k;
    }
    if (guess)
        msg += " — did you mean '" + *guess + "'?";
    else
        msg += " (run `pfcr config-keys` for the list of keys)";
    fail(msg);
}

std::string kind_name(ValueKind k) {
    switch (k) {
    case ValueKind::integer:
        return "an integer";
    case ValueKind::real:
        return "a number";
    case ValueKind::boolean:
        return "true or false";
    case ValueKind::string:
        return "a string";
    case ValueKind::int_list:
        return "a list of integers";
    case ValueKind::string_list:
        return "a list of strings";
    }
    return "?";
}

std::string format_double(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, r.ptr);
    // Keep reals recognisable as reals when printed ("1" -> "1.0").
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

std::string range_text(const KeySpec& s) {
    const bool integral = s.kind == ValueKind::integer || s.kind == ValueKind::int_list;
    const auto num = [&](double v) {
        return integral ? std::to_string(int64_t(v)) : format_double(v);
    };
    std::ostringstream os;
    os << (s.min_exclusive ? "(" : "[") << (s.min <= -1e299 ? "-inf" : num(s.min)) << ", "
       << (s.max >= 1e299 ? "inf" : num(s.max)) << (s.max_exclusive ? ")" : "]");
    return os.str();
}

void check_number(const KeySpec& s, double v, const std::string& origin) {
    const bool lo_ok = s.min_exclusive ? v > s.min : v >= s.min;
    const bool hi_ok = s.max_exclusive ? v < s.max : v <= s.max;
    const bool integral = s.kind == ValueKind::integer || s.kind == ValueKind::int_list;
    check(std::isfinite(v) && lo_ok && hi_ok, origin, ": ", s.key, " = ",
          integral ? std::to_string(int64_t(v)) : format_double(v), " is out of range ",
          range_text(s), " (", s.help, ")");
}

void check_choice(const KeySpec& s, const std::string& v, const std::string& origin) {
    if (s.choices.empty()) return;
    if (std::find(s.choices.begin(), s.choices.end(), v) != s.choices.end()) return;
    std::string list;
    for (const auto& c : s.choices) list += (list.empty() ? "" : ", ") + c;
    fail(origin, ": ", s.key, " = '", v, "' is not one of: ", list);
}

std::string scalar_text(const YAML::Node& n, const KeySpec& s, const std::string& origin) {
    check(n.IsScalar(), origin, ": ", s.key, " expects ", kind_name(s.kind));
    return n.Scalar();
}

// Converts a YAML node into a checked value of the key's kind.
ConfigValue parse_value(const KeySpec& s, const YAML::Node& n, const std::string& origin) {
    const auto bad = [&](const std::string& got) -> ConfigValue {
        fail(origin, ": ", s.key, " expects ", kind_name(s.kind), ", got '", got, "'");
    };
    switch (s.kind) {
    case ValueKind::integer: {
        const auto text = scalar_text(n, s, origin);
        const auto v = parse_int(text);
        if (!v) return bad(text);
        check_number(s, double(*v), origin);
        return *v;
    }
    case ValueKind::real: {
        const auto text = scalar_text(n, s, origin);
        const auto v = parse_double(text);
        if (!v) return bad(text);
        check_number(s, *v, origin);
        return *v;
    }
    case ValueKind::boolean: {
        const auto text = scalar_text(n, s, origin);
        if (text == "true" || text == "True") return true;
        if (text == "false" || text == "False") return false;
        return bad(text);
    }
    case ValueKind::string: {
        if (n.IsNull()) return std::string();
        const auto text = scalar_text(n, s, origin);
        check_choice(s, text, origin);
        return text;
    }
    case ValueKind::int_list: {
        std::vector<int64_t> out;
        const auto add = [&](const YAML::Node& e) {
            const auto text = scalar_text(e, s, origin);
            const auto v = parse_int(text);
            if (!v) bad(text);
            check_number(s, double(*v), origin);
            out.push_back(*v);
        };
        if (n.IsSequence())
            for (const auto& e : n) add(e);
        else
            add(n);
        return out;
    }
    case ValueKind::string_list: {
        std::vector<std::string> out;
        const auto add = [&](const YAML::Node& e) {
            const auto text = scalar_text(e, s, origin);
            check_choice(s, text, origin);
            out.push_back(text);
        };
        if (n.IsSequence())
            for (const auto& e : n) add(e);
        else if (!n.IsNull())
            add(n);
        return out;
    }
    }
    return bad("?");
}

std::string value_yaml(const ConfigValue& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, int64_t>)
                return std::to_string(x);
            else if constexpr (std::is_same_v<T, double>)
                return format_double(x);
            else if constexpr (std::is_same_v<T, bool>)
                return x ? "true" : "false";
            else if constexpr (std::is_same_v<T, std::string>)
                return quote_string(x);
            else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
                std::string out;
                for (auto e : x) out += (out.empty() ? "" : ", ") + std::to_string(e);
                return "[" + out + "]";
            } else {
                std::string out;
                for (const auto& e : x) out += (out.empty() ? "" : ", ") + quote_string(e);
                return "[" + out + "]";
            }
        },
        v);
}

} // namespace

struct ConfigLoader {
    // Walks one YAML mapping; `prefix` is the dotted path of the mapping. `seen` holds the keys
    // this file already set (yaml-cpp accepts repeated keys; a repeat is almost always a
    // mistake, and with nested + dotted spellings it is easy to make).
    static void apply_map(Config& cfg, const YAML::Node& map, const std::string& prefix,
                          const std::string& file, std::map<std::string, std::string>& seen) {
        for (const auto& kv : map) {
            const std::string origin = file + ":" + std::to_string(kv.first.Mark().line + 1);
            check(kv.first.IsScalar(), origin, ": keys must be plain strings");
            const std::string key =
                prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
            if (const KeySpec* s = find_spec(key)) {
                const auto [it, fresh] = seen.emplace(key, origin);
                check(fresh, origin, ": ", key, " is set twice in this file (first at ", it->second,
                      ")");
                cfg.values_[key] = parse_value(*s, kv.second, origin);
                cfg.origins_[key] = origin;
            } else if (is_group_prefix(key)) {
                if (kv.second.IsNull()) continue; // "data:" with every child commented out
                check(kv.second.IsMap(), origin, ": '", key, "' is a group of keys (", key,
                      ".*); write it as a mapping, e.g. ", key, ": {key: value}");
                apply_map(cfg, kv.second, key, file, seen);
            } else {
                unknown_key(key, origin);
            }
        }
    }
    static void apply_root(Config& cfg, const YAML::Node& root, const std::string& file) {
        std::map<std::string, std::string> seen;
        apply_map(cfg, root, "", file, seen);
    }
};

Config::Config() {
    for (const auto& s : config_schema()) {
        values_[s.key] = parse_value(s, YAML::Load(s.default_yaml), "default for " + s.key);
        origins_[s.key] = "default";
    }
}

Config Config::load(const std::vector<std::string>& files,
                    const std::vector<std::string>& overrides) {
    Config cfg;
    for (const auto& file : files) {
        check(std::filesystem::is_regular_file(file), file, ": config file not found");
        YAML::Node root;
        try {
            root = YAML::LoadFile(file);
        } catch (const YAML::Exception& e) {
            fail(file, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg);
        }
        if (root.IsNull()) continue; // an empty file sets nothing
        check(root.IsMap(), file, ": the top level must be a mapping of keys to values");
        ConfigLoader::apply_root(cfg, root, file);
    }
    for (const auto& ov : overrides) {
        const auto eq = ov.find('=');
        check(eq != std::string::npos && eq > 0, "--set ", ov, ": expected key=value");
        cfg.apply_node_text(std::string(trim(ov.substr(0, eq))), ov.substr(eq + 1), "--set " + ov);
    }
    cfg.validate();
    return cfg;
}

Config Config::from_yaml_text(const std::string& yaml, const std::string& origin) {
    Config cfg;
    YAML::Node root;
    try {
        root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
        fail(origin, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg);
    }
    if (!root.IsNull()) {
        check(root.IsMap(), origin, ": the top level must be a mapping of keys to values");
        ConfigLoader::apply_root(cfg, root, origin);
    }
    cfg.validate();
    return cfg;
}

void Config::apply_node_text(const std::string& key, const std::string& yaml_text,
                             const std::string& origin) {
    const KeySpec* s = find_spec(key);
    if (!s) unknown_key(key, origin);
    YAML::Node n;
    try {
        n = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        fail(origin, ": cannot parse value: ", e.msg);
    }
    values_[key] = parse_value(*s, n, origin);
    origins_[key] = origin;
}

void Config::set(const std::string& key, const std::string& yaml_value, const std::string& origin) {
    // Strong guarantee: on any error the config keeps its previous value.
    const auto old_value = values_.find(key) != values_.end() ? values_.at(key) : ConfigValue{};
    const auto old_origin = origins_.count(key) ? origins_.at(key) : std::string();
    try {
        apply_node_text(key, yaml_value, origin);
        validate();
    } catch (...) {
        if (!old_origin.empty()) {
            values_[key] = old_value;
            origins_[key] = old_origin;
        }
        throw;
    }
}

const ConfigValue& Config::value(const std::string& key) const {
    const auto it = values_.find(key);
    if (it == values_.end()) fail("internal: config key '", key, "' is not in the schema");
    return it->second;
}

const std::string& Config::origin(const std::string& key) const {
    value(key);
    return origins_.at(key);
}

// Rules that involve more than one key. Each message names every key involved.
void Config::validate() const {
    const auto where = [&](const std::string& k) { return k + " (" + origin(k) + ")"; };
    const auto int_of = [&](const std::string& k) { return std::get<int64_t>(value(k)); };
    const auto real_of = [&](const std::string& k) { return std::get<double>(value(k)); };
    check(int_of("hidden_size") % int_of("n_heads") == 0, "hidden_size = ", int_of("hidden_size"),
          " must be divisible by n_heads = ", int_of("n_heads"), ": ", where("hidden_size"), ", ",
          where("n_heads"));
    check(int_of("plm_size") % int_of("code_dim") == 0, "plm_size = ", int_of("plm_size"),
          " must be divisible by code_dim = ", int_of("code_dim"),
          " (each PQ sub-quantizer takes plm_size/code_dim feature dimensions): ",
          where("plm_size"), ", ", where("code_dim"));
    const int64_t cap = int_of("code_cap");
    check((cap & (cap - 1)) == 0, "code_cap = ", cap,
          " must be a power of two (PQ codes have log2(code_cap) bits): ", where("code_cap"));
    check(int_of("synth.users_min") <= int_of("synth.users_max"),
          "synth.users_min must be <= synth.users_max");
    check(int_of("synth.items_min") <= int_of("synth.items_max"),
          "synth.items_min must be <= synth.items_max");
    check(int_of("synth.seq_len_min") <= int_of("synth.seq_len_max"),
          "synth.seq_len_min must be <= synth.seq_len_max");
    check(real_of("synth.seq_len_mean_min") <= real_of("synth.seq_len_mean_max"),
          "synth.seq_len_mean_min must be <= synth.seq_len_mean_max");
    check(real_of("synth.seq_len_mean_max") >= double(int_of("synth.seq_len_min")),
          "synth.seq_len_mean_max must be >= synth.seq_len_min");
    const auto& topk = std::get<std::vector<int64_t>>(value("topk"));
    check(!topk.empty(), "topk must list at least one cutoff: ", where("topk"));
    const auto& vm = std::get<std::string>(value("valid_metric"));
    const auto at = vm.find('@');
    check(at != std::string::npos, "valid_metric = '", vm,
          "' must look like recall@10: ", where("valid_metric"));
    const auto k = parse_int(vm.substr(at + 1));
    const auto metric = vm.substr(0, at);
    check((metric == "recall" || metric == "ndcg") && k && std::count(topk.begin(), topk.end(), *k),
          "valid_metric = '", vm,
          "' must be recall@K or ndcg@K with K in topk: ", where("valid_metric"), ", ",
          where("topk"));
}

std::string Config::value_text(const std::string& key) const {
    return value_yaml(value(key));
}

const char* role_name(KeyRole r) {
    switch (r) {
    case KeyRole::location:
        return "location";
    case KeyRole::input:
        return "input";
    case KeyRole::performance:
        return "performance";
    case KeyRole::checkpointing:
        return "checkpointing";
    case KeyRole::synth:
        return "synth";
    case KeyRole::data:
        return "data";
    case KeyRole::quantizer:
        return "quantizer";
    case KeyRole::item_codes:
        return "item_codes";
    case KeyRole::clients:
        return "clients";
    case KeyRole::model:
        return "model";
    case KeyRole::trajectory:
        return "trajectory";
    case KeyRole::budget:
        return "budget";
    case KeyRole::evaluation:
        return "evaluation";
    case KeyRole::head:
        return "head";
    case KeyRole::finetune:
        return "finetune";
    }
    return "?";
}

bool role_shapes_prepared(KeyRole r) {
    return r == KeyRole::input || r == KeyRole::data || r == KeyRole::quantizer ||
           r == KeyRole::item_codes;
}

bool role_shapes_checkpoint(KeyRole r) {
    return r == KeyRole::data || r == KeyRole::item_codes || r == KeyRole::clients ||
           r == KeyRole::model;
}

bool role_shapes_pretraining(KeyRole r) {
    return (role_shapes_prepared(r) && r != KeyRole::input) || role_shapes_checkpoint(r) ||
           r == KeyRole::trajectory;
}

bool role_shapes_finetuning(KeyRole r) {
    return role_shapes_pretraining(r) || r == KeyRole::budget || r == KeyRole::evaluation ||
           r == KeyRole::head || r == KeyRole::finetune;
}

std::string Config::to_yaml() const {
    std::ostringstream os;
    os << "# pfcr resolved configuration: every key, with where its value came from\n";
    std::string group;
    for (const auto& s : config_schema()) {
        const auto dot = s.key.find('.');
        const std::string g = dot == std::string::npos ? "" : s.key.substr(0, dot);
        const std::string leaf = dot == std::string::npos ? s.key : s.key.substr(dot + 1);
        if (g != group) {
            if (!g.empty()) os << g << ":\n";
            group = g;
        }
        os << (g.empty() ? "" : "  ") << leaf << ": " << value_yaml(values_.at(s.key)) << "  # "
           << origins_.at(s.key) << "\n";
    }
    return os.str();
}

} // namespace pfcr
