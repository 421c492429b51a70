// `pfcr inspect`: prints what a pfcr HDF5 file holds and validates its schema. Knows
// prepared.h5 and checkpoints (round_%06d.h5); the checkpoint checks are the same as
// analysis/check_checkpoint.py's, with expected shapes from the model's ParamLayout for the
// config stored in the file. It never modifies the file.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "data/prepare.hpp"
#include "io/checkpoint.hpp"
#include "io/checkpoint_schema.hpp"
#include "io/h5.hpp"
#include "model/params.hpp"
#include "sim/commands.hpp"

namespace pfcr {
namespace {

std::string shape_text(const std::vector<uint64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

class CheckpointValidator {
public:
    explicit CheckpointValidator(std::string path) : path_(std::move(path)) {}

    std::vector<std::string> run() {
        try {
            check_file();
        } catch (const Error& e) {
            problems_.push_back(e.what());
        }
        return problems_;
    }

private:
    template <typename... Parts> void problem(const std::string& where, Parts&&... parts) {
        std::ostringstream os;
        os << where << ": ";
        (os << ... << std::forward<Parts>(parts));
        problems_.push_back(os.str());
    }

    // kind: "string" or "int".
    void check_attrs(const h5::Group& g, const std::string& where,
                     const std::vector<std::pair<const char*, const char*>>& attrs) {
        for (const auto& [name, kind] : attrs) {
            if (!g.has_attr(name)) {
                problem(where, "attribute '", name, "' missing");
                continue;
            }
            const std::string t = g.attr_dtype(name);
            const bool ok =
                std::string(kind) == "string" ? t == "string" : (t == "int64" || t == "int32");
            if (!ok) problem(where, "attribute '", name, "' is ", t, ", expected ", kind);
        }
    }

    // Expected shapes of the model in config_yaml (empty if the config cannot be read).
    void load_model_shapes(const std::string& yaml) {
        try {
            const Options opt =
                resolve_options(Config::from_yaml_text(yaml, path_ + ":config_yaml"));
            ModelShape shape = opt.train.hp.shape;
            shape.head = HeadMode::none; // checkpoints of pre-training: the encoder only
            const ParamLayout layout(shape);
            for (const auto& e : layout.entries())
                expected_[e.name] = std::vector<uint64_t>(e.shape.begin(), e.shape.end());
            n_layers_ = shape.layers;
        } catch (const Error& e) {
            problem("/", "config_yaml: ", e.what());
        }
    }

    void check_tensor(const h5::Group& g, const std::string& where, const std::string& name,
                      const std::optional<std::string>& key) {
        const std::string dtype = g.dtype(name);
        if (dtype != "float32") {
            problem(where, "dtype ", dtype, ", expected float32");
            return;
        }
        h5::Shape shape;
        const std::vector<float> data = g.read<float>(name, &shape);
        if (key && !expected_.empty()) {
            const auto it = expected_.find(*key);
            const bool pfcr_name =
                key->rfind("trm_encoder.layer.", 0) == 0 || *key == "pq_code_embedding.weight" ||
                *key == "position_embedding.weight" || key->rfind("LayerNorm.", 0) == 0;
            if (it != expected_.end() && it->second != shape)
                problem(where, "shape ", shape_text(shape), ", expected ", shape_text(it->second),
                        " from the config");
            else if (it == expected_.end() && pfcr_name)
                problem(where, "'", *key,
                        "' is not a parameter of the model in config_yaml (n_layers = ", n_layers_,
                        ")");
        }
        for (float v : data)
            if (!std::isfinite(v)) {
                problem(where, "contains NaN or Inf");
                break;
            }
    }

    void check_file() {
        const h5::File f = h5::File::open_read(path_);
        namespace a = ckpt::attr;
        check_attrs(f, "/",
                    {{a::format, "string"},
                     {a::format_version, "string"},
                     {a::stage, "string"},
                     {a::round, "int"},
                     {a::seed, "int"},
                     {a::n_clients, "int"},
                     {a::world_size_at_write, "int"},
                     {a::software_version, "string"},
                     {a::created_utc, "string"},
                     {a::config_yaml, "string"}});
        if (!problems_.empty()) return;
        const std::string format = f.attr_string(a::format),
                          version = f.attr_string(a::format_version);
        if (format != checkpoint_format)
            return problem("/", "format '", format, "', expected '", checkpoint_format, "'");
        if (version != checkpoint_format_version)
            return problem("/", "format_version '", version, "', expected '",
                           checkpoint_format_version, "'");
        const std::string stage = f.attr_string(a::stage);
        if (stage != ckpt::stage_pretrain && stage != ckpt::stage_finetune)
            problem("/", "stage '", stage, "', expected '", ckpt::stage_pretrain, "' or '",
                    ckpt::stage_finetune, "'");
        load_model_shapes(f.attr_string(a::config_yaml));

        const std::string server_path = std::string("/") + ckpt::server;
        if (!f.has_group(ckpt::server)) {
            problem(server_path, "group missing");
        } else {
            const h5::Group server = f.open_group(ckpt::server);
            for (const auto& name : server.datasets())
                check_tensor(server, server_path + "/" + name, name, name);
        }

        const std::string clients_path = std::string("/") + ckpt::clients;
        if (!f.has_group(ckpt::clients)) return problem(clients_path, "group missing");
        const h5::Group clients = f.open_group(ckpt::clients);
        std::vector<std::string> ids = clients.children();
        const int64_t n_clients = f.attr_int(a::n_clients);
        if (int64_t(ids.size()) != n_clients)
            problem(clients_path, ids.size(), " clients, ", a::n_clients, " says ", n_clients);
        std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
            return std::make_pair(a.size(), a) < std::make_pair(b.size(), b);
        });
        std::optional<std::pair<std::string, std::set<std::string>>> reference;
        for (const auto& id : ids) {
            const std::string where = clients_path + "/" + id;
            const auto parsed = parse_int(id);
            if (!parsed || *parsed < 0 || std::to_string(*parsed) != id || !clients.has_group(id)) {
                problem(where, "not a client group named by a decimal id");
                continue;
            }
            const h5::Group g = clients.open_group(id);
            check_attrs(g, where,
                        {{a::domain, "string"},
                         {a::shard, "int"},
                         {a::n_train_rows, "int"},
                         {a::rng_counter, "int"}});
            if (!g.has_group(ckpt::optim) || !g.open_group(ckpt::optim).has_attr(a::step))
                problem(where + "/" + ckpt::optim, "attribute '", a::step, "' missing");
            const std::vector<std::string> names = g.datasets();
            const std::set<std::string> set(names.begin(), names.end());
            if (!reference) {
                reference.emplace(id, set);
            } else if (set != reference->second) {
                std::vector<std::string> missing, extra;
                std::set_difference(reference->second.begin(), reference->second.end(), set.begin(),
                                    set.end(), std::back_inserter(missing));
                std::set_difference(set.begin(), set.end(), reference->second.begin(),
                                    reference->second.end(), std::back_inserter(extra));
                problem(where, "tensor set differs from client ", reference->first, " (",
                        missing.size(), " missing, e.g. '", missing.empty() ? "" : missing[0],
                        "'; ", extra.size(), " extra, e.g. '", extra.empty() ? "" : extra[0], "')");
            }
            const std::string optim_prefix = std::string(ckpt::optim) + "/";
            const std::string model_prefix = ckpt::model_tensor("");
            const bool has_optim = std::any_of(names.begin(), names.end(), [&](const auto& n) {
                return n.rfind(optim_prefix, 0) == 0;
            });
            for (const auto& name : names) {
                if (has_optim && name.rfind(model_prefix, 0) == 0) {
                    const std::string key = name.substr(model_prefix.size());
                    for (const std::string& moment : {ckpt::moment_m(key), ckpt::moment_v(key)}) {
                        if (!set.count(moment))
                            problem(where + "/" + moment, "Adam moment missing");
                        else if (g.shape(moment) != g.shape(name))
                            problem(where + "/" + moment, "shape ", shape_text(g.shape(moment)),
                                    ", model tensor has ", shape_text(g.shape(name)));
                    }
                }
                check_tensor(g, where + "/" + name, name, ckpt::parameter_of(name));
            }
        }
    }

    std::string path_;
    std::vector<std::string> problems_;
    std::map<std::string, std::vector<uint64_t>> expected_;
    int64_t n_layers_ = 0;
};

void print_checkpoint_summary(const CheckpointReader& r, std::ostream& out) {
    const auto& h = r.header();
    out << r.path() << ": " << checkpoint_format << " " << checkpoint_format_version << ", stage "
        << h.stage << ", round " << h.round << ", written by pfcr " << h.software_version << " at "
        << h.created_utc << " with " << h.world_size_at_write << " ranks\n";
    out << "seed " << h.seed << ", algorithm " << (h.algorithm.empty() ? "-" : h.algorithm) << ", "
        << h.n_clients << " clients\n";
    out << std::right << std::setw(8) << "client"
        << "  " << std::left << std::setw(16) << "domain" << std::right << std::setw(7) << "shard"
        << std::setw(12) << "train_rows" << std::setw(11) << "adam_step" << std::setw(13)
        << "rng_counter"
        << "\n";
    for (const auto& m : r.clients())
        out << std::setw(8) << m.id << "  " << std::left << std::setw(16) << m.domain << std::right
            << std::setw(7) << m.shard << std::setw(12) << m.n_train_rows << std::setw(11)
            << r.adam_step(m.id) << std::setw(13) << r.rng_counter(m.id) << "\n";
    auto print_tensors = [&](const std::vector<TensorSpec>& ts) {
        for (const auto& t : ts) {
            out << "  " << t.name << "  [";
            for (size_t i = 0; i < t.shape.size(); ++i) out << (i ? ", " : "") << t.shape[i];
            out << "]\n";
        }
    };
    // Server tensors with their L2 norm (double sum): how far federation moved the shared
    // table from its N(0, initializer_range^2) start, or how much upload noise it absorbed.
    const auto server = r.server_tensors();
    out << "server tensors (" << server.size() << "):\n";
    for (const auto& t : server) {
        std::vector<float> v(size_t(t.size()));
        r.read_server(t, v.data());
        double sq = 0;
        for (float x : v) sq += double(x) * double(x);
        out << "  " << t.name << "  [";
        for (size_t i = 0; i < t.shape.size(); ++i) out << (i ? ", " : "") << t.shape[i];
        out << "]  L2 " << std::setprecision(6) << std::sqrt(sq) << "\n";
    }
    if (!r.clients().empty()) {
        const auto tensors = r.client_tensors(r.clients().front().id);
        out << "client tensors (" << tensors.size() << " under every /clients/<id>/):\n";
        print_tensors(tensors);
    }
}

} // namespace

std::vector<std::string> validate_checkpoint(const std::string& path) {
    return CheckpointValidator(path).run();
}

int run_inspect(const std::string& path, std::ostream& out) {
    check(std::filesystem::exists(path), path, ": no such file");
    check(h5::is_hdf5(path), path, ": not an HDF5 file");
    std::string format;
    {
        const h5::File f = h5::File::open_read(path);
        check(f.has_attr("format"), path, ": no 'format' attribute: not a pfcr file");
        format = f.attr_string("format");
    }
    if (format == checkpoint_format) {
        const auto problems = validate_checkpoint(path);
        if (!problems.empty()) {
            out << path << ": INVALID " << checkpoint_format << " file (" << problems.size()
                << " problems)\n";
            for (const auto& p : problems) out << "  " << p << "\n";
            return 1;
        }
        print_checkpoint_summary(CheckpointReader(path), out);
        out << "schema: valid\n";
        return 0;
    }
    if (format != prepared_format)
        fail(path, ": unknown format '", format, "' (this pfcr reads '", prepared_format, "' and '",
             checkpoint_format, "')");
    const auto problems = validate_prepared(path);
    if (!problems.empty()) {
        out << path << ": INVALID " << prepared_format << " file (" << problems.size()
            << " problems)\n";
        for (const auto& p : problems) out << "  " << p << "\n";
        return 1;
    }
    const PreparedData d = read_prepared(path);
    const auto& m = d.manifest;
    out << path << ": " << prepared_format << " " << prepared_format_version << ", written by pfcr "
        << m.software_version << " at " << m.created_utc << "\n";
    out << "fingerprint " << m.fingerprint << ", " << m.input_files.size() << " input files\n";
    print_prepared_summary(d, out);
    out << "schema: valid\n";
    return 0;
}

} // namespace pfcr
