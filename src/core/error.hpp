// Error type and checks used at every boundary (files, config, CLI). Library code throws
// pfcr::Error with context ("file:line: what"); only the command line (src/sim/cli.cpp)
// catches and exits.
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

// An error every MPI rank throws at the same point because the ranks agreed on it (e.g. a
// client's NaN loss, found with one allreduce; agree_on_errors in io/comm.hpp): rank 0's
// message is the complete one (the ranks share the failing rank's text), so the command line
// prints it once, from rank 0, and every rank exits normally with status 1 instead of
// aborting the job.
class CollectiveError : public Error {
public:
    explicit CollectiveError(const std::string& what) : Error(what) {}
};

template <typename... Parts> [[noreturn]] void fail_collective(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    throw CollectiveError(os.str());
}

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
