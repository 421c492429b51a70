// The communicator that aggregation, checkpoint writing and the stages talk to: a small
// interface with a serial (one rank, no MPI calls) and an MPI implementation, so that code is
// unit-tested without mpirun. Lives in io because the parallel-HDF5 checkpoint writer takes its
// communicator through it (parallel_io_handle).
// Only integer reductions are offered on purpose: cross-rank sums of float contributions go
// through fixed point (fixed_point.hpp), which keeps them exact and order-free (§4).
// Not a general MPI wrapper: no point-to-point, no non-blocking calls (quiet_barrier uses one
// inside), no sub-communicators.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <optional>

namespace pfcr {

class Comm {
public:
    virtual ~Comm();
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // In place over all ranks; every rank passes the same n.
    virtual void allreduce_sum(int64_t* data, int64_t n) = 0;
    virtual void allreduce_max(int64_t* data, int64_t n) = 0;
    // Copies `bytes` bytes from `root`'s buffer into every other rank's buffer.
    virtual void broadcast(void* data, int64_t bytes, int root) = 0;
    virtual void barrier() = 0;
    // A barrier whose waiting ranks sleep instead of spinning, for ranks that wait while another
    // works alone (rank 0's prepare, minutes of faiss on every core): Open MPI's blocking
    // collectives poll and would take a core from that work. Wakes within ~10 ms of the last
    // rank's arrival.
    virtual void quiet_barrier() { barrier(); }
    // Logical OR of `flag` over ranks, e.g. "did any rank hit a NaN?".
    virtual bool any(bool flag) = 0;
    // The MPI communicator for parallel HDF5 (MPI-IO) files, or nullopt: then files are
    // written with serial HDF5 (one rank).
    virtual std::optional<MPI_Comm> parallel_io_handle() const { return std::nullopt; }
};

// One rank: every collective is the identity.
class SerialComm final : public Comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void allreduce_sum(int64_t* data, int64_t n) override;
    void allreduce_max(int64_t* data, int64_t n) override;
    void broadcast(void* data, int64_t bytes, int root) override;
    void barrier() override {}
    bool any(bool flag) override { return flag; }
};

// Owns a duplicate of a parent communicator (MPI_COMM_WORLD by default), so pfcr's messages
// never match a library's, and frees it on destruction. Errors on the duplicate are returned,
// not fatal, and become pfcr::Error naming the call. Counts above `max_chunk` elements are
// split into several calls because MPI counts are `int`; `max_chunk` is a parameter only so
// tests can exercise the chunking without 16 GiB buffers.
class MpiComm final : public Comm {
public:
    static constexpr int64_t default_max_chunk = int64_t(1) << 30; // < INT_MAX

    explicit MpiComm(MPI_Comm parent = MPI_COMM_WORLD, int64_t max_chunk = default_max_chunk);
    ~MpiComm() override;
    MpiComm(const MpiComm&) = delete;
    MpiComm& operator=(const MpiComm&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void allreduce_sum(int64_t* data, int64_t n) override;
    void allreduce_max(int64_t* data, int64_t n) override;
    void broadcast(void* data, int64_t bytes, int root) override;
    void barrier() override;
    void quiet_barrier() override; // MPI_Ibarrier, tested every 10 ms with sleeps between
    bool any(bool flag) override;
    std::optional<MPI_Comm> parallel_io_handle() const override { return comm_; }

    // The raw handle (tests; pfcr's own code goes through the Comm interface).
    MPI_Comm handle() const { return comm_; }

private:
    void allreduce(int64_t* data, int64_t n, MPI_Op op, const char* what);

    MPI_Comm comm_ = MPI_COMM_NULL;
    int64_t max_chunk_;
    int rank_ = 0;
    int size_ = 1;
};

// `root`'s string on every rank (length, then bytes; `s` is read on `root` only). Collective.
std::string broadcast_string(Comm& comm, const std::string& s, int root);

// Runs `f` (rank-local work: no collective calls inside) on every rank, then agrees on its
// outcome with one allreduce: if it threw on any rank, every rank throws CollectiveError with
// the message of the lowest failing rank (broadcast) and the exit status its error calls for
// (exit_io_error for an IoError, core/error.hpp), so an error only some ranks see still ends the
// job cleanly and is printed once. Collective.
void agree_on_errors(Comm& comm, const std::function<void()>& f);

// agree_on_errors for rank-local work of very different lengths (rank 0's prepare, each rank's
// fine-tuning clients): a rank done with `f` waits asleep (Comm::quiet_barrier) until every rank
// is, then the same agreement. A blocking collective would poll and take a core from the ranks
// still working wherever ranks share cores. Collective.
void agree_on_errors_quietly(Comm& comm, const std::function<void()>& f);

// MPI for the lifetime of main(): initialises with MPI_THREAD_FUNNELED (only the main thread
// calls MPI; TBB workers never do) unless MPI is already initialised, and finalises in the
// destructor only if it initialised. Create it first in main() and let it go out of scope
// last, after every MpiComm.
class MpiEnvironment {
public:
    MpiEnvironment(int* argc = nullptr, char*** argv = nullptr);
    ~MpiEnvironment();
    MpiEnvironment(const MpiEnvironment&) = delete;
    MpiEnvironment& operator=(const MpiEnvironment&) = delete;

    // Rank and size in MPI_COMM_WORLD, e.g. for the "[rank r] error: ..." prefix.
    int world_rank() const;
    int world_size() const;
    // Kills every rank of the job: what main() does after printing an uncaught error, so that
    // the other ranks do not wait forever in a collective.
    [[noreturn]] static void abort(int exit_code);

private:
    bool initialized_here_ = false;
};

} // namespace pfcr
