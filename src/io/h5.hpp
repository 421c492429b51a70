// RAII wrappers over the HDF5 C API: files, groups, datasets and attributes of the few
// types pfcr stores (float32/64, int32/64, uint8, UTF-8 strings). Raw hid_t never leaves
// src/io. Errors become pfcr::Error naming the file and the object path. Serial access only
// for now; collective (MPI-IO) access is added with the checkpoint writer.
#pragma once

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
    int64_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }

private:
    int64_t id_ = -1;
    Closer closer_ = nullptr;
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
    const std::string& path() const { return path_; }
    std::string where(const std::string& name = "") const; // "<file>:<path>/<name>"

    // Datasets: row-major, contiguous, `data` holds product(shape) elements.
    template <typename T> void write(const std::string& name, const Shape& shape, const T* data);
    template <typename T> void write(const std::string& name, const std::vector<T>& v) {
        write(name, Shape{v.size()}, v.data());
    }
    template <typename T>
    std::vector<T> read(const std::string& name, Shape* shape = nullptr) const;
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
    void close(); // flushes; further use is an error

private:
    using Group::Group;
};

// True if `path` exists and has an HDF5 signature.
bool is_hdf5(const std::string& path);

} // namespace pfcr::h5
