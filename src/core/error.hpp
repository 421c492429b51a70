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

// Exit statuses of the command line (README "Exit status").
inline constexpr int exit_error = 1;     // bad input, a failed check, a model error
inline constexpr int exit_io_error = 74; // an output could not be written (EX_IOERR)
inline constexpr int exit_stopped = 75;  // stopped by a signal after saving (EX_TEMPFAIL)

// An output could not be written: disk full, quota, permission, a read-only or failing file
// system. The write is abandoned without a half-written file under its final name (temp +
// rename) and the previous checkpoint stays the newest; the command exits with exit_io_error.
class IoError : public Error {
public:
    explicit IoError(const std::string& what) : Error(what) {}
};

// One message from any streamable parts: message("a.inter:", 12, ": bad id ", id).
template <typename... Parts> std::string message(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    return os.str();
}

template <typename... Parts> [[noreturn]] void fail_io(Parts&&... parts) {
    throw IoError(message(std::forward<Parts>(parts)...));
}
template <typename... Parts> void check_io(bool ok, Parts&&... parts) {
    if (!ok) fail_io(std::forward<Parts>(parts)...);
}

// An error every MPI rank throws at the same point because the ranks agreed on it (e.g. a
// client's NaN loss, found with one allreduce; agree_on_errors in io/comm.hpp): rank 0's
// message is the complete one (the ranks share the failing rank's text), so the command line
// prints it once, from rank 0, and every rank exits normally with status 1 instead of
// aborting the job.
// `status`: the exit status the failing rank's error calls for (exit_io_error for an IoError).
class CollectiveError : public Error {
public:
    explicit CollectiveError(const std::string& what, int status = exit_error)
        : Error(what), status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

template <typename... Parts> [[noreturn]] void fail_collective(Parts&&... parts) {
    throw CollectiveError(message(std::forward<Parts>(parts)...));
}

// Throws Error with the message of the parts: fail("a.inter:", 12, ": bad id ", id).
template <typename... Parts> [[noreturn]] void fail(Parts&&... parts) {
    throw Error(message(std::forward<Parts>(parts)...));
}

template <typename... Parts> void check(bool ok, Parts&&... parts) {
    if (!ok) fail(std::forward<Parts>(parts)...);
}

} // namespace pfcr
