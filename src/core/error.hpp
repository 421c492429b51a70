// Error type and checks used at every boundary (files, config, CLI). Library code throws
// pfcr::Error with context ("file:line: what"); only sim/main.cpp catches and exits.
// Cheap internal invariants use assert() instead.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace pfcr {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Builds a message from any streamable parts: fail("a.inter:", 12, ": bad id ", id).
template <typename... Parts> [[noreturn]] void fail(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    throw Error(os.str());
}

template <typename... Parts> void check(bool ok, Parts&&... parts) {
    if (!ok) fail(std::forward<Parts>(parts)...);
}

} // namespace pfcr
