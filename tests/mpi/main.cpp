// tests/mpi/main.cpp — the doctest main of the data-parallel tests, run under
// `mpiexec -n 2` by CTest: MPI for the whole run, one dist::Mpi for the tests (mpi_testing.hpp),
// and an exit code that fails on every rank when a check failed on any of them.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <l2rw/dist/mpi.hpp>

#include "mpi_testing.hpp"

namespace l2rw::testing {
const dist::Mpi* world_comm = nullptr;
}

int main(int argc, char** argv) {
    l2rw::dist::MpiSession session(&argc, &argv);
    l2rw::dist::Mpi comm;
    l2rw::testing::world_comm = &comm;
    doctest::Context ctx(argc, argv);
    if (comm.rank() != 0) ctx.setOption("no-intro", true);
    const int rc = ctx.run();
    if (ctx.shouldExit()) return rc;
    double failed = rc != 0 ? 1.0 : 0.0;
    comm.all_reduce_host_sum(&failed, 1);
    if (comm.rank() == 0 && failed > 0)
        std::fprintf(stderr, "mpi tests: a check failed on %.0f of %d ranks\n", failed,
                     comm.size());
    return failed > 0 ? 1 : 0;
}
