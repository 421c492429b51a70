// Writer and validating reader of prepared.h5 (schema: docs/formats.md).
#include "data/prepared.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/h5.hpp"

namespace pfcr {
namespace {

void write_split(h5::Group& parent, const char* name, const Split& s) {
    h5::Group g = parent.create_group(name);
    g.set_attr("rows", int64_t(s.rows()));
    g.set_attr("nnz", int64_t(s.items.size()));
    g.write("indptr", s.indptr);
    g.write("items", s.items);
    g.write("targets", s.targets);
    g.write("users", s.users);
}

// Collects schema problems instead of stopping at the first.
struct Problems {
    std::vector<std::string> list;
    template <typename... P> void add(P&&... parts) {
        std::ostringstream os;
        (os << ... << parts);
        list.push_back(os.str());
    }
    template <typename... P> bool expect(bool ok, P&&... parts) {
        if (!ok) add(std::forward<P>(parts)...);
        return ok;
    }
};

template <typename T>
std::vector<T> read_checked(const h5::Group& g, const std::string& name, const char* dtype,
                            const h5::Shape& want, Problems& p) {
    if (!p.expect(g.has(name), g.where(name), ": missing dataset")) return {};
    const std::string got = g.dtype(name);
    if (!p.expect(got == dtype, g.where(name), ": dtype ", got, ", expected ", dtype)) return {};
    h5::Shape shape;
    auto v = g.read<T>(name, &shape);
    if (!want.empty()) {
        bool ok = shape.size() == want.size();
        for (size_t i = 0; ok && i < want.size(); ++i) ok = shape[i] == want[i];
        std::string ws, gs;
        for (auto d : want) ws += (ws.empty() ? "" : ", ") + std::to_string(d);
        for (auto d : shape) gs += (gs.empty() ? "" : ", ") + std::to_string(d);
        if (!p.expect(ok, g.where(name), ": shape [", gs, "], expected [", ws, "]")) return {};
    }
    return v;
}

Split read_split(const h5::Group& dom, const char* name, int64_t n_users, int64_t n_items,
                 int64_t max_history, Problems& p) {
    Split s;
    if (!p.expect(dom.has_group(name), dom.where(name), ": missing group")) return s;
    const h5::Group g = dom.open_group(name);
    const int64_t rows = g.has_attr("rows") ? g.attr_int("rows") : -1;
    const int64_t nnz = g.has_attr("nnz") ? g.attr_int("nnz") : -1;
    if (!p.expect(rows > 0 && nnz > 0, g.where(), ": attributes rows/nnz missing or not positive"))
        return s;
    s.indptr = read_checked<int64_t>(g, "indptr", "int64", {uint64_t(rows + 1)}, p);
    s.items = read_checked<int32_t>(g, "items", "int32", {uint64_t(nnz)}, p);
    s.targets = read_checked<int32_t>(g, "targets", "int32", {uint64_t(rows)}, p);
    s.users = read_checked<int32_t>(g, "users", "int32", {uint64_t(rows)}, p);
    if (s.indptr.size() == size_t(rows + 1)) {
        p.expect(s.indptr.front() == 0 && s.indptr.back() == nnz, g.where("indptr"),
                 ": must start at 0 and end at nnz = ", nnz);
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t len = s.indptr[size_t(r + 1)] - s.indptr[size_t(r)];
            if (!p.expect(len >= 1 && len <= max_history, g.where("indptr"), ": row ", r,
                          " has history length ", len, ", expected 1..", max_history))
                break;
        }
    }
    const auto in_range = [&](const std::vector<int32_t>& v, int64_t lo, int64_t hi,
                              const char* what) {
        const auto bad =
            std::find_if(v.begin(), v.end(), [&](int32_t x) { return x < lo || x > hi; });
        p.expect(bad == v.end(), g.where(what), ": value ", bad == v.end() ? 0 : *bad,
                 " at position ", bad - v.begin(), " outside ", lo, "..", hi);
    };
    in_range(s.items, 1, n_items, "items");
    in_range(s.targets, 1, n_items, "targets");
    in_range(s.users, 0, n_users - 1, "users");
    return s;
}

PreparedData read_impl(const std::string& path, Problems& p) {
    PreparedData d;
    const h5::File f = h5::File::open_read(path);
    const auto attr_s = [&](const h5::Group& g, const char* name) {
        return p.expect(g.has_attr(name), g.where(), ": attribute '", name, "' missing")
                   ? g.attr_string(name)
                   : std::string();
    };
    const auto attr_i = [&](const h5::Group& g, const char* name) {
        return p.expect(g.has_attr(name), g.where(), ": attribute '", name, "' missing")
                   ? g.attr_int(name)
                   : int64_t(0);
    };
    const std::string format = attr_s(f, "format");
    const std::string version = attr_s(f, "format_version");
    if (format != prepared_format || version != prepared_format_version) {
        p.add(path, ": format '", format, "' version '", version, "', expected '", prepared_format,
              "' version '", prepared_format_version, "'");
        return d;
    }
    auto& m = d.manifest;
    m.software_version = attr_s(f, "software_version");
    m.created_utc = attr_s(f, "created_utc");
    m.config_yaml = attr_s(f, "config_yaml");
    if (!p.expect(f.has_group("manifest"), f.where("manifest"), ": missing group")) return d;
    const h5::Group mg = f.open_group("manifest");
    m.fingerprint = attr_s(mg, "fingerprint");
    m.quantizer_factory = attr_s(mg, "quantizer_factory");
    m.metric = attr_s(mg, "metric");
    m.features = attr_s(mg, "features");
    m.code_dim = attr_i(mg, "code_dim");
    m.code_cap = attr_i(mg, "code_cap");
    m.plm_size = attr_i(mg, "plm_size");
    m.max_history = attr_i(mg, "MAX_ITEM_LIST_LENGTH");
    m.quantizer_seed = attr_i(mg, "quantizer_seed");
    m.quantizer_iterations = attr_i(mg, "quantizer_iterations");
    m.opq_iterations = attr_i(mg, "opq_iterations");
    m.text_hash_buckets = attr_i(mg, "text_hash_buckets");
    m.text_ngrams = attr_i(mg, "text_ngrams");
    m.featurizer_seed = attr_i(mg, "featurizer_seed");
    if (mg.has_attr("quantizer_relative_mse"))
        m.quantizer_relative_mse = mg.attr_double("quantizer_relative_mse");
    if (mg.has("input_files")) m.input_files = mg.read_strings("input_files");
    if (mg.has("input_sha256")) m.input_sha256 = mg.read_strings("input_sha256");
    p.expect(!m.input_files.empty() && m.input_files.size() == m.input_sha256.size(), mg.where(),
             ": input_files and input_sha256 must be non-empty and of equal length");
    if (!p.expect(m.code_dim > 0 && m.code_cap > 1 && m.plm_size > 0 && m.max_history > 0,
                  mg.where(), ": code_dim/code_cap/plm_size/MAX_ITEM_LIST_LENGTH not positive"))
        return d;

    const uint64_t dim = uint64_t(m.plm_size), M = uint64_t(m.code_dim), cap = uint64_t(m.code_cap);
    if (p.expect(f.has_group("quantizer"), f.where("quantizer"), ": missing group")) {
        const h5::Group q = f.open_group("quantizer");
        d.opq_matrix = read_checked<float>(q, "opq_matrix", "float32", {dim, dim}, p);
        d.ivf_centroid = read_checked<float>(q, "ivf_centroid", "float32", {dim}, p);
        d.pq_centroids = read_checked<float>(q, "pq_centroids", "float32", {M, cap, dim / M}, p);
    }

    if (!p.expect(f.has_group("domains"), f.where("domains"), ": missing group")) return d;
    const h5::Group dg = f.open_group("domains");
    std::vector<std::string> names;
    if (p.expect(dg.has("names"), dg.where("names"), ": missing dataset"))
        names = dg.read_strings("names");
    p.expect(!names.empty(), dg.where("names"), ": no domains");
    const int32_t max_row = int32_t(M * (cap + 1));
    for (const auto& name : names) {
        if (!p.expect(dg.has_group(name), dg.where(name), ": listed in names but missing"))
            continue;
        const h5::Group g = dg.open_group(name);
        PreparedDomain pd;
        pd.name = name;
        pd.n_users = attr_i(g, "n_users");
        pd.n_items = attr_i(g, "n_items");
        pd.feature_source = attr_s(g, "feature_source");
        if (!p.expect(pd.n_users > 0 && pd.n_items > 0, g.where(),
                      ": n_users/n_items not positive"))
            continue;
        const uint64_t rows = uint64_t(pd.n_items + 1);
        pd.item_codes = read_checked<int32_t>(g, "item_codes", "int32", {rows, M}, p);
        pd.item_popularity = read_checked<int64_t>(g, "item_popularity", "int64", {rows}, p);
        if (pd.item_codes.size() == rows * M) {
            bool pad_ok = true;
            for (uint64_t j = 0; j < M; ++j) pad_ok = pad_ok && pd.item_codes[j] == 0;
            p.expect(pad_ok, g.where("item_codes"), ": row 0 (padding item) must be all 0");
            for (uint64_t i = 1; i < rows; ++i)
                for (uint64_t j = 0; j < M; ++j) {
                    const int32_t v = pd.item_codes[i * M + j];
                    const int32_t lo = int32_t(j * (cap + 1) + 1),
                                  hi = int32_t(j * (cap + 1) + cap);
                    if (!p.expect(v >= lo && v <= hi && v < max_row, g.where("item_codes"),
                                  ": item ", i, " sub-code ", j, " is row ", v, ", expected ", lo,
                                  "..", hi)) {
                        i = rows;
                        break;
                    }
                }
        }
        pd.train = read_split(g, "train", pd.n_users, pd.n_items, m.max_history, p);
        pd.valid = read_split(g, "valid", pd.n_users, pd.n_items, m.max_history, p);
        pd.test = read_split(g, "test", pd.n_users, pd.n_items, m.max_history, p);
        d.domains.push_back(std::move(pd));
    }
    return d;
}

std::string join_problems(const std::vector<std::string>& list) {
    std::string out;
    for (size_t i = 0; i < list.size() && i < 20; ++i) out += "\n  " + list[i];
    if (list.size() > 20) out += "\n  ... and " + std::to_string(list.size() - 20) + " more";
    return out;
}

} // namespace

void write_prepared(const std::string& path, const PreparedData& d) {
    const auto& m = d.manifest;
    const uint64_t dim = uint64_t(m.plm_size), M = uint64_t(m.code_dim), cap = uint64_t(m.code_cap);
    AtomicOutput out(path);
    {
        h5::File f = h5::File::create(out.temp_path());
        f.set_attr("format", prepared_format);
        f.set_attr("format_version", prepared_format_version);
        f.set_attr("software_version", m.software_version);
        f.set_attr("created_utc", m.created_utc);
        f.set_attr("config_yaml", m.config_yaml);
        f.set_attr("n_domains", int64_t(d.domains.size()));

        h5::Group mg = f.create_group("manifest");
        mg.set_attr("fingerprint", m.fingerprint);
        mg.set_attr("quantizer_factory", m.quantizer_factory);
        mg.set_attr("metric", m.metric);
        mg.set_attr("features", m.features);
        mg.set_attr("code_dim", m.code_dim);
        mg.set_attr("code_cap", m.code_cap);
        mg.set_attr("plm_size", m.plm_size);
        mg.set_attr("MAX_ITEM_LIST_LENGTH", m.max_history);
        mg.set_attr("quantizer_seed", m.quantizer_seed);
        mg.set_attr("quantizer_iterations", m.quantizer_iterations);
        mg.set_attr("opq_iterations", m.opq_iterations);
        mg.set_attr("text_hash_buckets", m.text_hash_buckets);
        mg.set_attr("text_ngrams", m.text_ngrams);
        mg.set_attr("featurizer_seed", m.featurizer_seed);
        mg.set_attr("quantizer_relative_mse", m.quantizer_relative_mse);
        mg.write_strings("input_files", m.input_files);
        mg.write_strings("input_sha256", m.input_sha256);

        h5::Group q = f.create_group("quantizer");
        q.write("opq_matrix", {dim, dim}, d.opq_matrix.data());
        q.write("ivf_centroid", {dim}, d.ivf_centroid.data());
        q.write("pq_centroids", {M, cap, dim / M}, d.pq_centroids.data());

        h5::Group dg = f.create_group("domains");
        std::vector<std::string> names;
        for (const auto& pd : d.domains) names.push_back(pd.name);
        dg.write_strings("names", names);
        for (const auto& pd : d.domains) {
            h5::Group g = dg.create_group(pd.name);
            g.set_attr("n_users", pd.n_users);
            g.set_attr("n_items", pd.n_items);
            g.set_attr("feature_source", pd.feature_source);
            g.write("item_codes", {uint64_t(pd.n_items + 1), M}, pd.item_codes.data());
            g.write("item_popularity", pd.item_popularity);
            write_split(g, "train", pd.train);
            write_split(g, "valid", pd.valid);
            write_split(g, "test", pd.test);
        }
        f.close();
    }
    out.commit();
}

PreparedData read_prepared(const std::string& path) {
    Problems p;
    PreparedData d = read_impl(path, p);
    check(p.list.empty(), path, ": invalid prepared file:", join_problems(p.list));
    return d;
}

std::vector<std::string> validate_prepared(const std::string& path) {
    Problems p;
    try {
        read_impl(path, p);
    } catch (const Error& e) {
        p.add(e.what());
    }
    return p.list;
}

} // namespace pfcr
