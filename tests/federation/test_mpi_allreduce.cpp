// MPI program (run at 1, 2 and 4 ranks by ctest, label mpi): the fixed-point cross-rank sum of
// 37 clients is bitwise identical to a serial sum in id order and in reverse order, whatever the
// rank count; plus MpiComm's collectives, chunking, broadcast and the quiet barrier. Every check is
// agreed over ranks with Comm::any, so rank 0 (the only rank that prints) reports failures of any
// rank.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <ctime>
#include <numeric>
#include <string>
#include <vector>

#include "../support/mpi_test_main.hpp"
#include "../support/test_helpers.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "federation/clients.hpp"
#include "federation/fixed_point.hpp"
#include "io/comm.hpp"

using namespace pfcr;
using namespace pfcr::test;

namespace {

constexpr int64_t n_clients = 37;
constexpr int64_t n_elems = 10000;
constexpr int scale_bits = default_fixed_point_scale_bits;

// Client c's update and row count: a pure function of c, so every rank can rebuild any client.
std::vector<float> client_update(int64_t c) {
    auto s = KeyedRng(1234, RngPurpose::synth).stream(uint32_t(c), 1);
    std::vector<float> x(static_cast<size_t>(n_elems));
    for (auto& v : x) v = float(s.normal() * std::pow(10.0, 4.0 * s.uniform() - 3.0));
    return x;
}

std::vector<int64_t> client_rows() {
    std::vector<int64_t> rows(static_cast<size_t>(n_clients));
    for (int64_t c = 0; c < n_clients; ++c)
        rows[size_t(c)] =
            1 + int64_t(KeyedRng(1234, RngPurpose::synth).stream(uint32_t(c), 2).below(5000));
    return rows;
}

// Weighted mean of the given clients' updates (weights rows/total over all clients), encoded
// in the given order into one accumulator.
std::vector<int64_t> encode_clients(const std::vector<int64_t>& order,
                                    const std::vector<int64_t>& rows) {
    const double total = double(std::accumulate(rows.begin(), rows.end(), int64_t(0)));
    const int64_t max_abs = fixed_point_max_abs(n_clients);
    std::vector<int64_t> acc(size_t(n_elems), 0);
    for (int64_t c : order)
        encode_add(acc.data(), client_update(c).data(), n_elems, double(rows[size_t(c)]) / total,
                   scale_bits, max_abs);
    return acc;
}

std::vector<float> decoded(const std::vector<int64_t>& acc) {
    std::vector<float> out(acc.size());
    decode(out.data(), acc.data(), int64_t(acc.size()), scale_bits);
    return out;
}

// True on every rank iff `ok` holds on every rank.
bool on_all_ranks(Comm& comm, bool ok) {
    return !comm.any(!ok);
}

// The cross-rank result: each rank encodes the clients assign_clients gives it, then one
// integer allreduce.
std::vector<float> distributed_sum(MpiComm& comm) {
    const auto rows = client_rows();
    const auto rank_of = assign_clients(rows, comm.size());
    std::vector<int64_t> mine;
    for (int64_t c = 0; c < n_clients; ++c)
        if (rank_of[size_t(c)] == comm.rank()) mine.push_back(c);
    auto acc = encode_clients(mine, rows);
    comm.allreduce_sum(acc.data(), n_elems);
    return decoded(acc);
}

} // namespace

TEST(MpiFixedPoint, CrossRankSumIsBitwiseTheSerialSumInAnyOrder) {
    MpiComm comm;
    const auto result = distributed_sum(comm);

    const auto rows = client_rows();
    std::vector<int64_t> forward(static_cast<size_t>(n_clients));
    std::iota(forward.begin(), forward.end(), int64_t(0));
    const std::vector<int64_t> reverse(forward.rbegin(), forward.rend());
    const auto serial_forward = decoded(encode_clients(forward, rows));
    const auto serial_reverse = decoded(encode_clients(reverse, rows));

    EXPECT_TRUE(on_all_ranks(comm, same_bits(result, serial_forward)))
        << comm.size() << " ranks vs serial id order";
    EXPECT_TRUE(on_all_ranks(comm, same_bits(result, serial_reverse)))
        << comm.size() << " ranks vs serial reverse order";

    // Every rank holds rank 0's bits.
    auto from_root = result;
    comm.broadcast(from_root.data(), int64_t(from_root.size() * sizeof(float)), 0);
    EXPECT_TRUE(on_all_ranks(comm, same_bits(result, from_root))) << "ranks disagree";

    // And the bits are the weighted mean, not merely consistent ones.
    const double total = double(std::accumulate(rows.begin(), rows.end(), int64_t(0)));
    std::vector<double> exact(size_t(n_elems), 0.0);
    for (int64_t c = 0; c < n_clients; ++c) {
        const auto x = client_update(c);
        for (int64_t i = 0; i < n_elems; ++i)
            exact[size_t(i)] += double(x[size_t(i)]) * double(rows[size_t(c)]) / total;
    }
    bool close = true;
    for (int64_t i = 0; i < n_elems; ++i)
        close = close && std::fabs(double(result[size_t(i)]) - exact[size_t(i)]) <=
                             1e-6 * std::fabs(exact[size_t(i)]) + 1e-8;
    EXPECT_TRUE(on_all_ranks(comm, close)) << "fixed-point sum far from the double sum";
}

TEST(MpiFixedPoint, ChunkedAllreduceGivesTheSameBits) {
    // 10,000 elements in chunks of 999: 11 MPI calls, the last one short.
    MpiComm whole;
    MpiComm chunked(MPI_COMM_WORLD, 999);
    EXPECT_TRUE(on_all_ranks(whole, same_bits(distributed_sum(whole), distributed_sum(chunked))));
}

TEST(MpiComm, IsAPrivateDuplicateOfWorld) {
    MpiComm comm;
    int world_rank = -1, world_size = -1, relation = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    MPI_Comm_compare(comm.handle(), MPI_COMM_WORLD, &relation);
    EXPECT_EQ(comm.rank(), world_rank);
    EXPECT_EQ(comm.size(), world_size);
    EXPECT_EQ(relation, MPI_CONGRUENT); // same group and order, separate message space
    comm.barrier();
}

TEST(MpiComm, IntegerSumAndMaxAreExact) {
    MpiComm comm(MPI_COMM_WORLD, 2); // 3 elements in chunks of 2
    const int64_t r = comm.rank(), R = comm.size();
    // Element 0: 1 + 2 + ... + R. Element 1: values near 2^60 whose double sum would round.
    // Element 2: -rank.
    std::vector<int64_t> v = {r + 1, (int64_t(1) << 60) + 2 * r + 1, -r};
    auto m = v;
    comm.allreduce_sum(v.data(), 3);
    comm.allreduce_max(m.data(), 3);
    const std::vector<int64_t> want_sum = {R * (R + 1) / 2, R * (int64_t(1) << 60) + R * R,
                                           -R * (R - 1) / 2};
    const std::vector<int64_t> want_max = {R, (int64_t(1) << 60) + 2 * R - 1, 0};
    EXPECT_TRUE(on_all_ranks(comm, v == want_sum));
    EXPECT_TRUE(on_all_ranks(comm, m == want_max));
    comm.allreduce_sum(v.data(), 0); // empty is fine
}

TEST(MpiComm, AnyIsLogicalOrOverRanks) {
    MpiComm comm;
    EXPECT_FALSE(comm.any(false));
    EXPECT_TRUE(comm.any(true));
    EXPECT_TRUE(comm.any(comm.rank() == comm.size() - 1)) << "only the last rank says yes";
    EXPECT_EQ(comm.any(comm.rank() == 1), comm.size() > 1);
}

TEST(MpiComm, BroadcastCopiesTheRootBufferInChunks) {
    MpiComm comm(MPI_COMM_WORLD, 64); // 10,001 bytes in 157 calls
    const int root = comm.size() - 1;
    auto pattern = [](int who) {
        std::vector<unsigned char> b(10001);
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<unsigned char>(i * 31 + who);
        return b;
    };
    auto buf = pattern(comm.rank());
    comm.broadcast(buf.data(), int64_t(buf.size()), root);
    EXPECT_TRUE(on_all_ranks(comm, buf == pattern(root)));

    // A bad root is rejected on every rank before any MPI call, so no rank is left waiting.
    EXPECT_THROW(comm.broadcast(buf.data(), 1, comm.size()), Error);
    EXPECT_THROW(comm.broadcast(buf.data(), 1, -1), Error);
}

namespace {
// Wall clock and this thread's CPU time (s), for the quiet-wait tests below.
std::chrono::steady_clock::time_point now() {
    return std::chrono::steady_clock::now();
}
double thread_cpu() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
} // namespace

// quiet_barrier: the ranks that wait while rank 0 works alone (a 1 s busy loop, as prepare) wait
// for it (wall time) asleep: their thread's CPU time stays under a fifth of the wait, where
// Open MPI's blocking barrier polls (measured: the whole wait at 2 ranks on 2 cores).
TEST(MpiComm, QuietBarrierWaitsWithoutSpinning) {
    MpiComm comm;
    comm.barrier(); // start together
    const auto t0 = now();
    const double cpu0 = thread_cpu();
    if (comm.rank() == 0)
        while (now() - t0 < std::chrono::seconds(1)) {
        } // rank 0 works alone
    comm.quiet_barrier();
    const double wall = std::chrono::duration<double>(now() - t0).count();
    const double cpu = thread_cpu() - cpu0;
    // Over the waiting ranks: the shortest wait and the largest CPU share, in thousandths.
    const bool waiter = comm.rank() != 0;
    int64_t worst[2] = {waiter ? -int64_t(1000 * wall) : INT64_MIN,
                        waiter ? int64_t(1000 * cpu / wall) : 0};
    comm.allreduce_max(worst, 2);
    if (comm.size() == 1) return; // nobody waits
    EXPECT_GE(-worst[0], 950) << "a waiting rank left after " << -worst[0] << " ms";
    EXPECT_LE(worst[1], 200) << "a waiting rank's thread used " << worst[1] / 10.0
                             << " % of a CPU while it waited";
}

// agree_on_errors_quietly (fine-tuning's clients, `pfcr run`'s prepare): the last rank works 1 s
// and then fails; the others, done at once, wait for it asleep (CPU under a fifth of the wait,
// as above) and then every rank throws the same CollectiveError with the last rank's message.
TEST(MpiComm, AgreeOnErrorsQuietlyWaitsAsleepThenAgrees) {
    MpiComm comm;
    const bool last = comm.rank() == comm.size() - 1;
    comm.barrier(); // start together
    const auto t0 = now();
    const double cpu0 = thread_cpu();
    std::string message = "no error";
    try {
        agree_on_errors_quietly(comm, [&] {
            if (!last) return;
            while (now() - t0 < std::chrono::seconds(1)) {
            } // the last rank works alone, then fails
            throw Error("late failure on the last rank");
        });
    } catch (const CollectiveError& e) {
        message = e.what();
    }
    const double wall = std::chrono::duration<double>(now() - t0).count();
    const double cpu = thread_cpu() - cpu0;
    EXPECT_NE(message.find("late failure on the last rank"), std::string::npos) << message;
    int64_t worst[2] = {!last ? -int64_t(1000 * wall) : INT64_MIN,
                        !last ? int64_t(1000 * cpu / wall) : 0};
    comm.allreduce_max(worst, 2);
    if (comm.size() == 1) return; // nobody waits
    EXPECT_GE(-worst[0], 950) << "a waiting rank left after " << -worst[0] << " ms";
    EXPECT_LE(worst[1], 200) << "a waiting rank's thread used " << worst[1] / 10.0
                             << " % of a CPU while it waited";
}

int main(int argc, char** argv) {
    return run_mpi_tests(argc, argv, OtherRanks::silent);
}
