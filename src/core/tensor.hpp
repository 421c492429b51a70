// Row-major views over flat buffers, the only tensor type of pfcr. Kernels take raw pointers
// plus sizes (llm.c style); `mat()` wraps a pointer as an Eigen::Map with row-major storage so
// Eigen does the GEMMs. Nothing here owns memory except AlignedBuffer; nothing is column-major.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace pfcr {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T> using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic, Eigen::RowMajor>;

// (rows, cols) row-major view of p.
template <typename T> Eigen::Map<RowMat<T>> mat(T* p, int64_t rows, int64_t cols) {
    return Eigen::Map<RowMat<T>>(p, rows, cols);
}
template <typename T> Eigen::Map<const RowMat<T>> mat(const T* p, int64_t rows, int64_t cols) {
    return Eigen::Map<const RowMat<T>>(p, rows, cols);
}
// (n) row-vector view of p.
template <typename T> Eigen::Map<RowVec<T>> vec(T* p, int64_t n) {
    return Eigen::Map<RowVec<T>>(p, n);
}
template <typename T> Eigen::Map<const RowVec<T>> vec(const T* p, int64_t n) {
    return Eigen::Map<const RowVec<T>>(p, n);
}

// A zero-initialised, 64-byte aligned flat buffer of n elements (parameters, gradients,
// moments, workspaces). Move-only.
template <typename T> class AlignedBuffer {
public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(int64_t n) { resize(n); }
    void resize(int64_t n) {
        const size_t bytes = ((size_t(n) * sizeof(T) + 63) / 64) * 64;
        T* p = bytes ? static_cast<T*>(std::aligned_alloc(64, bytes)) : nullptr;
        if (bytes && !p) throw std::bad_alloc();
        for (int64_t i = 0; i < n; ++i) p[i] = T(0);
        data_.reset(p);
        size_ = n;
    }
    void zero() {
        for (int64_t i = 0; i < size_; ++i) data_.get()[i] = T(0);
    }
    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    int64_t size() const { return size_; }
    T& operator[](int64_t i) { return data_.get()[i]; }
    const T& operator[](int64_t i) const { return data_.get()[i]; }

private:
    struct Free {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> data_;
    int64_t size_ = 0;
};

} // namespace pfcr
