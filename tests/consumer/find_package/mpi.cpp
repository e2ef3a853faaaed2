// Consumer-side test (find_package, when l2rw was installed with MPI): a program built through
// the installed l2rw::mpi target alone, run as one process (MPI's singleton start).
#include <cstdio>
#include <l2rw/dist/mpi.hpp>

int main(int argc, char** argv) {
    l2rw::dist::MpiSession session(&argc, &argv);
    const l2rw::dist::Mpi world;
    double v[2] = {1.5, -2};
    world.all_reduce_host_sum(v, 2);
    std::printf("MPI: rank %d of %d, all-reduce %.1f %.1f\n", world.rank(), world.size(), v[0],
                v[1]);
    return world.size() == 1 && v[0] == 1.5 && v[1] == -2 ? 0 : 1;
}
