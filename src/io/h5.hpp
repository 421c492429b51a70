// RAII wrappers over the HDF5 C API: files, groups, datasets and attributes of the few
// types pfcr stores (float32/64, int32/64, uint8, UTF-8 strings). Raw hid_t never leaves
// src/io. Errors become pfcr::Error naming the file and the object path. Files are serial
// (File::create / open_read) or parallel (File::create_parallel: MPI-IO driver, collective
// metadata); which calls are collective on a parallel file is documented at create_parallel.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pfcr::h5 {

using Shape = std::vector<uint64_t>;

// Owns one hid_t and closes it with the matching H5?close.
class Handle {
public:
    using Closer = int (*)(int64_t);
    Handle() = default;
    Handle(int64_t id, Closer closer) : id_(id), closer_(closer) {}
    Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
    Handle& operator=(Handle&& o) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }
    void reset();
    void forget() { id_ = -1; } // the id was closed elsewhere
    int64_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }

private:
    int64_t id_ = -1;
    Closer closer_ = nullptr;
};

// An open dataset, for writing its data separately from creating it (parallel files: the
// creation is collective, the write independent).
class Dataset {
public:
    Dataset(Handle h, std::string where) : h_(std::move(h)), where_(std::move(where)) {}
    // Writes the whole dataset from `data` (product(shape) elements, row-major). On a parallel
    // file this is an independent transfer: only the calling rank writes.
    template <typename T> void write(const T* data);
    const std::string& where() const { return where_; }

private:
    Handle h_;
    std::string where_;
};

// A group (or the file's root group). Paths in messages are "<file>:<object path>".
class Group {
public:
    Group(Handle h, std::string file, std::string path)
        : h_(std::move(h)), file_(std::move(file)), path_(std::move(path)) {}

    Group create_group(const std::string& name);
    Group open_group(const std::string& name) const;
    bool has(const std::string& name) const;       // link exists (group or dataset)
    bool has_group(const std::string& name) const; // exists and is a group
    std::vector<std::string> children() const;     // link names, in name order
    // Paths (relative to this group, '/'-separated) of every dataset below it, recursively,
    // in name order: "model/LayerNorm.bias", "optim/LayerNorm.bias/m", ...
    std::vector<std::string> datasets() const;
    const std::string& path() const { return path_; }
    std::string where(const std::string& name = "") const; // "<file>:<path>/<name>"

    // Datasets: row-major, contiguous, `data` holds product(shape) elements.
    template <typename T> void write(const std::string& name, const Shape& shape, const T* data);
    template <typename T> void write(const std::string& name, const std::vector<T>& v) {
        write(name, Shape{v.size()}, v.data());
    }
    template <typename T>
    std::vector<T> read(const std::string& name, Shape* shape = nullptr) const;
    // Reads the whole dataset into `out`, which must hold product(shape(name)) elements.
    template <typename T> void read_into(const std::string& name, T* out) const;
    // Creates a dataset without writing it: contiguous, space allocated at creation, never
    // filled (the caller writes every element). `name` may contain '/': missing intermediate
    // groups are created.
    template <typename T> Dataset create_dataset(const std::string& name, const Shape& shape);
    Shape shape(const std::string& name) const;
    // "float32", "float64", "int32", "int64", "uint8", "string" or "other".
    std::string dtype(const std::string& name) const;
    void write_strings(const std::string& name, const std::vector<std::string>& values);
    std::vector<std::string> read_strings(const std::string& name) const;

    // Attributes on this group.
    void set_attr(const std::string& name, const std::string& value);
    void set_attr(const std::string& name, const char* value) {
        set_attr(name, std::string(value));
    }
    void set_attr(const std::string& name, int64_t value);
    void set_attr(const std::string& name, double value);
    bool has_attr(const std::string& name) const;
    std::string attr_dtype(const std::string& name) const; // as dtype()
    std::string attr_string(const std::string& name) const;
    int64_t attr_int(const std::string& name) const;
    double attr_double(const std::string& name) const;

protected:
    Handle h_;
    std::string file_;
    std::string path_;
};

class File : public Group {
public:
    static File create(const std::string& path); // truncates an existing file
    static File open_read(const std::string& path);
    // Creates (truncates) `path` with the MPI-IO driver over `comm`; every rank of `comm` calls
    // it. From then on every call that creates or modifies metadata (create_group,
    // create_dataset, set_attr, close) is COLLECTIVE: every rank makes the same calls in the
    // same order with identical arguments (including attribute values). Dataset::write is
    // independent. Metadata reads and writes are collective (H5Pset_all_coll_metadata_ops,
    // H5Pset_coll_metadata_write), the format is the newest the library knows (libver latest).
    static File create_parallel(const std::string& path, MPI_Comm comm);
    void close(); // flushes (MPI_File_sync on a parallel file); further use is an error

private:
    using Group::Group;
};

// True if `path` exists and has an HDF5 signature.
bool is_hdf5(const std::string& path);

// Initialises the library without any clean-up at exit. Call it before MPI_Init: a parallel
// HDF5 initialised after MPI_Init also registers its clean-up with MPI_Finalize, which after a
// failed write (disk full) crashes closing the broken objects again. (Every h5 entry point
// initialises the library too, for programs without MPI.)
void initialize();

} // namespace pfcr::h5
