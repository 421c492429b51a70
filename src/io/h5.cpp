// Implementation of the HDF5 RAII wrappers (see h5.hpp).
#include "io/h5.hpp"

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <numeric>
#include <type_traits>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace pfcr::h5 {
namespace {

// HDF5 prints its own error stack by default; pfcr reports errors itself.
void silence_hdf5() {
    static const bool done = [] {
        // Before the library initialises (the next call): no clean-up at exit. pfcr closes every
        // file itself; after a failed write (disk full) HDF5's clean-up would try to close the
        // broken objects again and crash (SIGSEGV in H5F__close_cb / H5G_close).
        H5dont_atexit();
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        return true;
    }();
    (void)done;
}

} // namespace

void initialize() {
    silence_hdf5();
}

namespace {

int close_file(int64_t id) {
    return H5Fclose(hid_t(id));
}
int close_group(int64_t id) {
    return H5Gclose(hid_t(id));
}
int close_dataset(int64_t id) {
    return H5Dclose(hid_t(id));
}
int close_space(int64_t id) {
    return H5Sclose(hid_t(id));
}
int close_type(int64_t id) {
    return H5Tclose(hid_t(id));
}
int close_attr(int64_t id) {
    return H5Aclose(hid_t(id));
}
int close_plist(int64_t id) {
    return H5Pclose(hid_t(id));
}

template <typename T> hid_t native_type() {
    if constexpr (std::is_same_v<T, float>)
        return H5T_NATIVE_FLOAT;
    else if constexpr (std::is_same_v<T, double>)
        return H5T_NATIVE_DOUBLE;
    else if constexpr (std::is_same_v<T, int32_t>)
        return H5T_NATIVE_INT32;
    else if constexpr (std::is_same_v<T, int64_t>)
        return H5T_NATIVE_INT64;
    else if constexpr (std::is_same_v<T, uint8_t>)
        return H5T_NATIVE_UINT8;
    else
        static_assert(sizeof(T) == 0, "unsupported HDF5 element type");
}

Handle vlen_string_type() {
    Handle t(H5Tcopy(H5T_C_S1), close_type);
    H5Tset_size(hid_t(t.get()), H5T_VARIABLE);
    H5Tset_cset(hid_t(t.get()), H5T_CSET_UTF8);
    return t;
}

Handle scalar_space() {
    return Handle(H5Screate(H5S_SCALAR), close_space);
}

Handle simple_space(const Shape& shape) {
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    return Handle(H5Screate_simple(int(dims.size()), dims.data(), nullptr), close_space);
}

// Reads a string from an attribute or dataset element of fixed or variable length type.
std::string read_string_value(hid_t obj, bool is_attr, const std::string& where) {
    Handle type(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), close_type);
    check(type.valid() && H5Tget_class(hid_t(type.get())) == H5T_STRING, where,
          ": expected a string");
    if (H5Tis_variable_str(hid_t(type.get())) > 0) {
        Handle mem = vlen_string_type();
        char* s = nullptr;
        const herr_t rc = is_attr
                              ? H5Aread(obj, hid_t(mem.get()), &s)
                              : H5Dread(obj, hid_t(mem.get()), H5S_ALL, H5S_ALL, H5P_DEFAULT, &s);
        check(rc >= 0, where, ": cannot read string");
        std::string out = s ? s : "";
        H5free_memory(s);
        return out;
    }
    const size_t n = H5Tget_size(hid_t(type.get()));
    std::string out(n, '\0');
    Handle mem(H5Tcopy(H5T_C_S1), close_type);
    H5Tset_size(hid_t(mem.get()), n);
    const herr_t rc =
        is_attr ? H5Aread(obj, hid_t(mem.get()), out.data())
                : H5Dread(obj, hid_t(mem.get()), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    check(rc >= 0, where, ": cannot read string");
    out.resize(out.find('\0') == std::string::npos ? n : out.find('\0'));
    return out;
}

// "float32", "float64", "int32", "int64", "uint8", "string" or "other".
std::string type_name(hid_t t) {
    const size_t size = H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_FLOAT:
        return size == 4 ? "float32" : size == 8 ? "float64" : "other";
    case H5T_INTEGER:
        if (H5Tget_sign(t) == H5T_SGN_NONE) return size == 1 ? "uint8" : "other";
        return size == 4 ? "int32" : size == 8 ? "int64" : "other";
    case H5T_STRING:
        return "string";
    default:
        return "other";
    }
}

} // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
    if (this != &o) {
        reset();
        id_ = o.id_;
        closer_ = o.closer_;
        o.id_ = -1;
    }
    return *this;
}

void Handle::reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
}

std::string Group::where(const std::string& name) const {
    std::string p = path_;
    if (!name.empty()) p += (p == "/" ? "" : "/") + name;
    return file_ + ":" + p;
}

Group Group::create_group(const std::string& name) {
    Handle g(H5Gcreate2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
             close_group);
    check_io(g.valid(), where(name), ": cannot create group");
    return Group(std::move(g), file_, where(name).substr(file_.size() + 1));
}

Group Group::open_group(const std::string& name) const {
    check(has_group(name), where(name), ": group missing");
    Handle g(H5Gopen2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_group);
    check(g.valid(), where(name), ": cannot open group");
    return Group(std::move(g), file_, where(name).substr(file_.size() + 1));
}

bool Group::has(const std::string& name) const {
    return H5Lexists(hid_t(h_.get()), name.c_str(), H5P_DEFAULT) > 0;
}

bool Group::has_group(const std::string& name) const {
    if (!has(name)) return false;
    H5O_info_t info;
    if (H5Oget_info_by_name(hid_t(h_.get()), name.c_str(), &info, H5P_DEFAULT) < 0) return false;
    return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> Group::datasets() const {
    std::vector<std::string> names;
    auto visit = [](hid_t root, const char* name, const H5L_info_t* link, void* data) -> herr_t {
        if (link->type != H5L_TYPE_HARD) return 0;
        H5O_info_t info;
        if (H5Oget_info_by_name2(root, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
        if (info.type == H5O_TYPE_DATASET)
            static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
    };
    check(H5Lvisit(hid_t(h_.get()), H5_INDEX_NAME, H5_ITER_INC, visit, &names) >= 0, where(),
          ": cannot list datasets");
    return names;
}

std::vector<std::string> Group::children() const {
    std::vector<std::string> names;
    auto visit = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
    };
    H5Literate(hid_t(h_.get()), H5_INDEX_NAME, H5_ITER_INC, nullptr, visit, &names);
    return names;
}

template <typename T>
void Group::write(const std::string& name, const Shape& shape, const T* data) {
    Handle space = simple_space(shape);
    Handle ds(H5Dcreate2(hid_t(h_.get()), name.c_str(), native_type<T>(), hid_t(space.get()),
                         H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              close_dataset);
    check_io(ds.valid(), where(name), ": cannot create dataset");
    const uint64_t n =
        std::accumulate(shape.begin(), shape.end(), uint64_t(1), std::multiplies<>());
    if (n > 0) {
        check_io(H5Dwrite(hid_t(ds.get()), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >=
                     0,
                 where(name), ": write failed");
    }
}

template <typename T> void Dataset::write(const T* data) {
    check_io(H5Dwrite(hid_t(h_.get()), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
             where_, ": write failed");
}

template <typename T> Dataset Group::create_dataset(const std::string& name, const Shape& shape) {
    Handle space = simple_space(shape);
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), close_plist);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), close_plist);
    check(lcpl.valid() && dcpl.valid() &&
              H5Pset_create_intermediate_group(hid_t(lcpl.get()), 1) >= 0 &&
              H5Pset_alloc_time(hid_t(dcpl.get()), H5D_ALLOC_TIME_EARLY) >= 0 &&
              H5Pset_fill_time(hid_t(dcpl.get()), H5D_FILL_TIME_NEVER) >= 0,
          where(name), ": cannot set up dataset properties");
    Handle ds(H5Dcreate2(hid_t(h_.get()), name.c_str(), native_type<T>(), hid_t(space.get()),
                         hid_t(lcpl.get()), hid_t(dcpl.get()), H5P_DEFAULT),
              close_dataset);
    check_io(ds.valid(), where(name), ": cannot create dataset");
    return Dataset(std::move(ds), where(name));
}

Shape Group::shape(const std::string& name) const {
    check(has(name), where(name), ": dataset missing");
    Handle ds(H5Dopen2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_dataset);
    check(ds.valid(), where(name), ": cannot open dataset");
    Handle space(H5Dget_space(hid_t(ds.get())), close_space);
    const int rank = H5Sget_simple_extent_ndims(hid_t(space.get()));
    check(rank >= 0, where(name), ": cannot read shape");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(hid_t(space.get()), dims.data(), nullptr);
    return Shape(dims.begin(), dims.end());
}

std::string Group::dtype(const std::string& name) const {
    check(has(name), where(name), ": dataset missing");
    Handle ds(H5Dopen2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_dataset);
    check(ds.valid(), where(name), ": cannot open dataset");
    Handle type(H5Dget_type(hid_t(ds.get())), close_type);
    return type_name(hid_t(type.get()));
}

std::string Group::attr_dtype(const std::string& name) const {
    check(has_attr(name), where(), ": attribute '", name, "' missing");
    Handle a(H5Aopen(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_attr);
    check(a.valid(), where(), ": cannot open attribute ", name);
    Handle type(H5Aget_type(hid_t(a.get())), close_type);
    return type_name(hid_t(type.get()));
}

template <typename T> std::vector<T> Group::read(const std::string& name, Shape* shape_out) const {
    const Shape s = shape(name);
    Handle ds(H5Dopen2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_dataset);
    const uint64_t n = std::accumulate(s.begin(), s.end(), uint64_t(1), std::multiplies<>());
    std::vector<T> out(n);
    if (n > 0) {
        check(H5Dread(hid_t(ds.get()), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      out.data()) >= 0,
              where(name), ": read failed (type conversion to the requested type impossible?)");
    }
    if (shape_out) *shape_out = s;
    return out;
}

template <typename T> void Group::read_into(const std::string& name, T* out) const {
    check(has(name), where(name), ": dataset missing");
    Handle ds(H5Dopen2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_dataset);
    check(ds.valid(), where(name), ": cannot open dataset");
    check(H5Dread(hid_t(ds.get()), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0,
          where(name), ": read failed (type conversion to the requested type impossible?)");
}

void Group::write_strings(const std::string& name, const std::vector<std::string>& values) {
    Handle type = vlen_string_type();
    Handle space = simple_space({values.size()});
    Handle ds(H5Dcreate2(hid_t(h_.get()), name.c_str(), hid_t(type.get()), hid_t(space.get()),
                         H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              close_dataset);
    check_io(ds.valid(), where(name), ": cannot create dataset");
    std::vector<const char*> ptrs;
    for (const auto& v : values) ptrs.push_back(v.c_str());
    if (!values.empty()) {
        check_io(H5Dwrite(hid_t(ds.get()), hid_t(type.get()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                          ptrs.data()) >= 0,
                 where(name), ": write failed");
    }
}

std::vector<std::string> Group::read_strings(const std::string& name) const {
    const Shape s = shape(name);
    check(s.size() == 1, where(name), ": expected a 1-d string dataset");
    Handle ds(H5Dopen2(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_dataset);
    Handle type(H5Dget_type(hid_t(ds.get())), close_type);
    check(H5Tget_class(hid_t(type.get())) == H5T_STRING, where(name), ": expected strings");
    check(H5Tis_variable_str(hid_t(type.get())) > 0, where(name),
          ": expected variable-length strings");
    Handle mem = vlen_string_type();
    std::vector<char*> ptrs(s[0], nullptr);
    if (!ptrs.empty()) {
        check(H5Dread(hid_t(ds.get()), hid_t(mem.get()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      ptrs.data()) >= 0,
              where(name), ": read failed");
    }
    std::vector<std::string> out;
    for (char* p : ptrs) {
        out.emplace_back(p ? p : "");
        H5free_memory(p);
    }
    return out;
}

void Group::set_attr(const std::string& name, const std::string& value) {
    if (has_attr(name)) H5Adelete(hid_t(h_.get()), name.c_str());
    Handle type = vlen_string_type();
    Handle space = scalar_space();
    Handle a(H5Acreate2(hid_t(h_.get()), name.c_str(), hid_t(type.get()), hid_t(space.get()),
                        H5P_DEFAULT, H5P_DEFAULT),
             close_attr);
    check_io(a.valid(), where(), ": cannot create attribute ", name);
    const char* p = value.c_str();
    check_io(H5Awrite(hid_t(a.get()), hid_t(type.get()), &p) >= 0, where(),
             ": cannot write attribute ", name);
}

template <typename T>
static void set_numeric_attr(hid_t loc, const std::string& where, const std::string& name,
                             T value) {
    if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
    Handle space = scalar_space();
    Handle a(H5Acreate2(loc, name.c_str(), native_type<T>(), hid_t(space.get()), H5P_DEFAULT,
                        H5P_DEFAULT),
             close_attr);
    check_io(a.valid(), where, ": cannot create attribute ", name);
    check_io(H5Awrite(hid_t(a.get()), native_type<T>(), &value) >= 0, where,
             ": cannot write attribute ", name);
}

void Group::set_attr(const std::string& name, int64_t value) {
    set_numeric_attr(hid_t(h_.get()), where(), name, value);
}
void Group::set_attr(const std::string& name, double value) {
    set_numeric_attr(hid_t(h_.get()), where(), name, value);
}

bool Group::has_attr(const std::string& name) const {
    return H5Aexists(hid_t(h_.get()), name.c_str()) > 0;
}

std::string Group::attr_string(const std::string& name) const {
    check(has_attr(name), where(), ": attribute '", name, "' missing");
    Handle a(H5Aopen(hid_t(h_.get()), name.c_str(), H5P_DEFAULT), close_attr);
    return read_string_value(hid_t(a.get()), true, where() + "@" + name);
}

template <typename T>
static T read_numeric_attr(hid_t loc, const std::string& where, const std::string& name) {
    check(H5Aexists(loc, name.c_str()) > 0, where, ": attribute '", name, "' missing");
    Handle a(H5Aopen(loc, name.c_str(), H5P_DEFAULT), close_attr);
    Handle type(H5Aget_type(hid_t(a.get())), close_type);
    const auto cls = H5Tget_class(hid_t(type.get()));
    check(cls == H5T_INTEGER || cls == H5T_FLOAT, where, ": attribute '", name, "' is not numeric");
    T v{};
    check(H5Aread(hid_t(a.get()), native_type<T>(), &v) >= 0, where, ": cannot read attribute ",
          name);
    return v;
}

int64_t Group::attr_int(const std::string& name) const {
    return read_numeric_attr<int64_t>(hid_t(h_.get()), where(), name);
}
double Group::attr_double(const std::string& name) const {
    return read_numeric_attr<double>(hid_t(h_.get()), where(), name);
}

File File::create(const std::string& path) {
    silence_hdf5();
    Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), close_file);
    check_io(f.valid(), path, ": cannot create HDF5 file");
    return File(std::move(f), path, "/");
}

File File::open_read(const std::string& path) {
    silence_hdf5();
    check(std::filesystem::exists(path), path, ": no such file");
    check(is_hdf5(path), path, ": not an HDF5 file");
    Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), close_file);
    check(f.valid(), path, ": cannot open HDF5 file (corrupt or truncated?)");
    return File(std::move(f), path, "/");
}

File File::create_parallel(const std::string& path, MPI_Comm comm) {
    silence_hdf5();
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), close_plist);
    const hid_t p = hid_t(fapl.get());
    check(fapl.valid() && H5Pset_fapl_mpio(p, comm, MPI_INFO_NULL) >= 0 &&
              H5Pset_all_coll_metadata_ops(p, 1) >= 0 && H5Pset_coll_metadata_write(p, 1) >= 0 &&
              H5Pset_libver_bounds(p, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0,
          path, ": cannot set up parallel HDF5 access (is HDF5 built with MPI?)");
    Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, p), close_file);
    check_io(f.valid(), path, ": cannot create HDF5 file (parallel)");
    return File(std::move(f), path, "/");
}

void File::close() {
    if (!h_.valid()) return;
    // Closed exactly once, also when the flush fails: a file left open after a failed close
    // is what HDF5's own clean-up would trip over later.
    const bool flushed = H5Fflush(hid_t(h_.get()), H5F_SCOPE_GLOBAL) >= 0;
    const bool closed = H5Fclose(hid_t(h_.get())) >= 0;
    h_.forget();
    check_io(flushed && closed, file_, flushed ? ": close failed" : ": flush failed",
             disk_full_note(file_));
}

bool is_hdf5(const std::string& path) {
    silence_hdf5();
    return std::filesystem::exists(path) && H5Fis_hdf5(path.c_str()) > 0;
}

#define PFCR_H5_INSTANTIATE(T)                                                                     \
    template void Group::write<T>(const std::string&, const Shape&, const T*);                     \
    template std::vector<T> Group::read<T>(const std::string&, Shape*) const;                      \
    template void Group::read_into<T>(const std::string&, T*) const;                               \
    template Dataset Group::create_dataset<T>(const std::string&, const Shape&);                   \
    template void Dataset::write<T>(const T*);
PFCR_H5_INSTANTIATE(float)
PFCR_H5_INSTANTIATE(double)
PFCR_H5_INSTANTIATE(int32_t)
PFCR_H5_INSTANTIATE(int64_t)
PFCR_H5_INSTANTIATE(uint8_t)
#undef PFCR_H5_INSTANTIATE

} // namespace pfcr::h5
