// Serial and MPI communicators and the MPI environment (see comm.hpp).
#include "io/comm.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "core/error.hpp"

namespace pfcr {

namespace {

// Turns a non-success MPI return code into pfcr::Error with MPI's own description.
void check_mpi(int rc, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    fail(call, " failed: ", std::string(text, size_t(len)), " (MPI error code ", rc, ")");
}

} // namespace

Comm::~Comm() = default;

std::string broadcast_string(Comm& comm, const std::string& s, int root) {
    int64_t len = comm.rank() == root ? int64_t(s.size()) : 0;
    comm.broadcast(&len, int64_t(sizeof len), root);
    std::string out = comm.rank() == root ? s : std::string(size_t(len), '\0');
    if (len > 0) comm.broadcast(out.data(), len, root);
    return out;
}

void agree_on_errors(Comm& comm, const std::function<void()>& f) {
    std::string error;
    int64_t status = exit_error;
    try {
        f();
    } catch (const CollectiveError& e) { // already agreed inside f: keep its status
        error = e.what();
        status = e.status();
    } catch (const IoError& e) {
        error = e.what();
        status = exit_io_error;
    } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "unknown error";
    }
    // Lowest failing rank = -max(-rank) over failing ranks (the others offer -size).
    int64_t neg_first = -int64_t(error.empty() ? comm.size() : comm.rank());
    comm.allreduce_max(&neg_first, 1);
    const int first = int(-neg_first);
    if (first == comm.size()) return;
    const std::string message = broadcast_string(comm, error, first);
    comm.broadcast(&status, int64_t(sizeof status), first); // that rank's exit status
    throw CollectiveError(message, int(status));
}

void agree_on_errors_quietly(Comm& comm, const std::function<void()>& f) {
    std::exception_ptr failure; // rethrown inside the agreement, after the quiet wait
    try {
        f();
    } catch (...) {
        failure = std::current_exception();
    }
    comm.quiet_barrier();
    agree_on_errors(comm, [&] {
        if (failure) std::rethrow_exception(failure);
    });
}

void SerialComm::allreduce_sum(int64_t* /*data*/, int64_t n) {
    check(n >= 0, "allreduce_sum: negative count ", n);
}

void SerialComm::allreduce_max(int64_t* /*data*/, int64_t n) {
    check(n >= 0, "allreduce_max: negative count ", n);
}

void SerialComm::broadcast(void* /*data*/, int64_t bytes, int root) {
    check(bytes >= 0, "broadcast: negative byte count ", bytes);
    check(root == 0, "broadcast: root ", root, " is not a rank of a 1-rank communicator");
}

MpiComm::MpiComm(MPI_Comm parent, int64_t max_chunk) : max_chunk_(max_chunk) {
    check(max_chunk >= 1 && max_chunk <= int64_t(INT32_MAX),
          "MpiComm: max_chunk must be in [1, INT_MAX], got ", max_chunk);
    int initialized = 0;
    MPI_Initialized(&initialized);
    check(initialized != 0, "MpiComm: MPI is not initialised (create an MpiEnvironment first)");
    check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
    // Errors on our communicator come back as codes (-> pfcr::Error with context) instead of
    // aborting inside MPI with a message that names no pfcr operation.
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiComm::~MpiComm() {
    // Freeing after MPI_Finalize is erroneous; a destructor must not throw, so just skip it.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_NULL && finalized == 0) MPI_Comm_free(&comm_);
}

void MpiComm::allreduce(int64_t* data, int64_t n, MPI_Op op, const char* what) {
    check(n >= 0, what, ": negative count ", n);
    for (int64_t off = 0; off < n; off += max_chunk_) {
        const int count = int(std::min(max_chunk_, n - off));
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + off, count, MPI_INT64_T, op, comm_), what);
    }
}

// Integer addition is associative, so MPI may reduce in any tree order and the result is
// still exact and identical on every rank for every rank layout.
void MpiComm::allreduce_sum(int64_t* data, int64_t n) {
    allreduce(data, n, MPI_SUM, "MPI_Allreduce(MPI_SUM)");
}

void MpiComm::allreduce_max(int64_t* data, int64_t n) {
    allreduce(data, n, MPI_MAX, "MPI_Allreduce(MPI_MAX)");
}

void MpiComm::broadcast(void* data, int64_t bytes, int root) {
    check(bytes >= 0, "broadcast: negative byte count ", bytes);
    check(root >= 0 && root < size_, "broadcast: root ", root, " is not a rank in [0, ", size_,
          ")");
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes; off += max_chunk_) {
        const int count = int(std::min(max_chunk_, bytes - off));
        check_mpi(MPI_Bcast(p + off, count, MPI_BYTE, root, comm_), "MPI_Bcast");
    }
}

void MpiComm::barrier() {
    check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

void MpiComm::quiet_barrier() {
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    for (;;) {
        int done = 0;
        check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test(MPI_Ibarrier)");
        if (done) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

bool MpiComm::any(bool flag) {
    int v = flag ? 1 : 0;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, comm_),
              "MPI_Allreduce(MPI_LOR)");
    return v != 0;
}

MpiEnvironment::MpiEnvironment(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized != 0) return;
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    initialized_here_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        initialized_here_ = false;
        fail("MPI_Init_thread: the MPI library provides thread level ", provided,
             ", pfcr needs MPI_THREAD_FUNNELED (TBB threads run beside the MPI thread)");
    }
}

MpiEnvironment::~MpiEnvironment() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (initialized_here_ && finalized == 0) MPI_Finalize();
}

int MpiEnvironment::world_rank() const {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int MpiEnvironment::world_size() const {
    int s = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

void MpiEnvironment::abort(int exit_code) {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::abort(); // MPI_Abort should not return; make sure we never do
}

} // namespace pfcr
