// l2rw/dist/mpi.hpp — the Communicator over MPI, for the host-memory backends (Cpu,
// Thrust<OMP>, Thrust<CPP>). Opt-in: link the CMake target l2rw::mpi (MPI from
// find_package(MPI), Debian's libopenmpi-dev), and run the program under mpirun/mpiexec.
//
//   int main(int argc, char** argv) {
//       l2rw::dist::MpiSession mpi(&argc, &argv);     // MPI_Init_thread … MPI_Finalize
//       l2rw::dist::Mpi comm;                          // a duplicate of MPI_COMM_WORLD
//       l2rw::meta::OnlineReweighter rw(model, {}, l2rw::meta::default_loss<float, Cpu>, &comm);
//       …
//   }
//
// Only the thread that initialised MPI calls it (MPI_THREAD_FUNNELED): l2rw's OpenMP threads
// never do. MPI errors come back as l2rw::Error naming the call, not as an abort.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <string>

#include "../error.hpp"
#include "communicator.hpp"

namespace l2rw::dist {

namespace detail {

inline void check_mpi(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(code, text, &len);
    throw Error(std::string(call) + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

/// MPI counts are ints: a longer buffer goes in pieces of at most this many values.
inline constexpr std::size_t mpi_chunk = std::size_t(1) << 30;

}  // namespace detail

/// MPI for the program's lifetime: MPI_Init_thread (MPI_THREAD_FUNNELED) when it is
/// constructed, MPI_Finalize when it goes. When MPI is already initialised (by another
/// library), it leaves MPI alone both times.
class MpiSession {
  public:
    MpiSession(int* argc, char*** argv) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (inited) return;
        int provided = 0;
        detail::check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                          "MPI_Init_thread");
        owns_ = true;
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    ~MpiSession() {
        int done = 0;
        MPI_Finalized(&done);
        if (owns_ && !done) MPI_Finalize();
    }

    /// Ends every rank of the job now (MPI_Abort): for a failure that only this rank saw
    /// outside a collective step, where the others would otherwise wait for it forever.
    [[noreturn]] static void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::abort();
    }

  private:
    bool owns_ = false;
};

/// A Communicator on a duplicate of an MPI communicator (MPI_COMM_WORLD by default), so
/// that l2rw's collectives never mix with the program's own messages. Sums are MPI_SUM
/// all-reduces, whose result is the same on every rank.
class Mpi final : public Communicator {
  public:
    explicit Mpi(MPI_Comm parent = MPI_COMM_WORLD) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited)
            throw Error("dist::Mpi: MPI is not initialised (construct an MpiSession first)");
        detail::check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
    }
    Mpi(const Mpi&) = delete;
    Mpi& operator=(const Mpi&) = delete;
    ~Mpi() override {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Comm_free(&comm_);
    }

    [[nodiscard]] int rank() const override { return rank_; }
    [[nodiscard]] int size() const override { return size_; }
    [[nodiscard]] std::string name() const override { return "MPI"; }
    [[nodiscard]] MPI_Comm handle() const { return comm_; }

    /// How many ranks share this rank's node (MPI_COMM_TYPE_SHARED): a program can give each
    /// of them its share of the node's cores (l2rw::set_num_threads).
    [[nodiscard]] int ranks_on_this_node() const {
        MPI_Comm node = MPI_COMM_NULL;
        detail::check_mpi(
            MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
        int n = 1;
        MPI_Comm_size(node, &n);
        MPI_Comm_free(&node);
        return n;
    }

    void all_reduce_sum(float* p, std::size_t n) const override { sum(p, n, MPI_FLOAT); }
    void all_reduce_sum(double* p, std::size_t n) const override { sum(p, n, MPI_DOUBLE); }
    void all_reduce_host_sum(double* p, std::size_t n) const override { sum(p, n, MPI_DOUBLE); }
    void broadcast_host(void* p, std::size_t bytes, int root) const override {
        auto* b = static_cast<char*>(p);
        for (std::size_t at = 0; at < bytes; at += detail::mpi_chunk) {
            const auto k = static_cast<int>(std::min(detail::mpi_chunk, bytes - at));
            detail::check_mpi(MPI_Bcast(b + at, k, MPI_BYTE, root, comm_), "MPI_Bcast");
        }
    }
    void barrier() const override { detail::check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

  private:
    template <class T>
    void sum(T* p, std::size_t n, MPI_Datatype type) const {
        for (std::size_t at = 0; at < n; at += detail::mpi_chunk) {
            const auto k = static_cast<int>(std::min(detail::mpi_chunk, n - at));
            detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + at, k, type, MPI_SUM, comm_),
                              "MPI_Allreduce");
        }
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1;
};

}  // namespace l2rw::dist
