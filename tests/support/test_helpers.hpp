// Small helpers shared by the C++ tests (tests/federation, tests/io, tests/data): the message
// of a thrown pfcr::Error and bitwise equality of float vectors.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace pfcr::test {

// The message of the pfcr::Error that `f` throws, or "" if it throws none (any other exception
// propagates and fails the test).
template <typename F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Same size and the same bits in every element (so NaN == NaN and -0 != +0).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

} // namespace pfcr::test
