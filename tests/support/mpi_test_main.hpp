// main() of the MPI test programs (pfcr_add_mpi_test in tests/CMakeLists.txt): MPI for the
// whole run, GoogleTest's usual output from rank 0 only.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>

#include "io/comm.hpp"

namespace pfcr::test {

// Prints each failed assertion of a rank other than 0 to stderr, prefixed "[rank r]".
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
public:
    explicit RankFailurePrinter(int rank) : rank_(rank) {}
    void OnTestPartResult(const ::testing::TestPartResult& r) override {
        if (r.failed())
            std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_,
                         r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
    }

private:
    int rank_;
};

enum class OtherRanks {
    silent,        // ranks other than 0 print nothing
    print_failures // ... except their failed assertions (RankFailurePrinter)
};

// The body of main(): initialises MPI and GoogleTest, silences GoogleTest's printer on ranks
// other than 0, runs every test; the status of RUN_ALL_TESTS on this rank.
inline int run_mpi_tests(int argc, char** argv, OtherRanks others) {
    MpiEnvironment mpi(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    if (mpi.world_rank() != 0) {
        auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
        if (others == OtherRanks::print_failures)
            listeners.Append(new RankFailurePrinter(mpi.world_rank()));
    }
    return RUN_ALL_TESTS();
}

} // namespace pfcr::test
