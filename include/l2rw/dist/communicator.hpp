// l2rw/dist/communicator.hpp — what a data-parallel step needs of a communication engine.
//
// A Communicator joins `size()` processes (ranks). Every rank calls the same collectives in
// the same order; each is blocking and returns when the local result is ready.
//
//   all_reduce_sum(p, n)       the element-wise sum over ranks, in place, of n values at p in
//                              the memory the backend's kernels use (host memory for Cpu and
//                              Thrust<OMP/CPP>; device memory for the NCCL communicator);
//   all_reduce_host_sum(p, n)  the same for n doubles in host memory (flags, counts, scalars);
//   broadcast_host(p, bytes, root)  root's bytes to every rank;
//   barrier()
//
// The results must be bitwise identical on every rank (MPI's and NCCL's sums are: each
// element is reduced once and the result sent to all), so that ranks that start from the
// same parameters take the same steps. SingleProcess — one rank, every collective a no-op —
// is what the library uses when it is given no communicator: nothing changes for a program
// that never mentions one. MPI (dist/mpi.hpp, CMake target l2rw::mpi) and NCCL
// (dist/nccl.hpp, for Thrust<CUDA>) are opt-in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace l2rw::dist {

class Communicator {
  public:
    virtual ~Communicator() = default;

    [[nodiscard]] virtual int rank() const = 0;
    [[nodiscard]] virtual int size() const = 0;
    /// What the engine is ("single process", "MPI", "NCCL"), for messages.
    [[nodiscard]] virtual std::string name() const = 0;

    virtual void all_reduce_sum(float* data, std::size_t n) const = 0;
    virtual void all_reduce_sum(double* data, std::size_t n) const = 0;
    virtual void all_reduce_host_sum(double* data, std::size_t n) const = 0;
    virtual void broadcast_host(void* data, std::size_t bytes, int root) const = 0;
    virtual void barrier() const = 0;
};

/// One rank: every collective leaves its data as it is.
class SingleProcess final : public Communicator {
  public:
    [[nodiscard]] int rank() const override { return 0; }
    [[nodiscard]] int size() const override { return 1; }
    [[nodiscard]] std::string name() const override { return "single process"; }
    void all_reduce_sum(float*, std::size_t) const override {}
    void all_reduce_sum(double*, std::size_t) const override {}
    void all_reduce_host_sum(double*, std::size_t) const override {}
    void broadcast_host(void*, std::size_t, int) const override {}
    void barrier() const override {}
};

/// The communicator of a program that names none.
inline const Communicator& single_process() {
    static const SingleProcess one;
    return one;
}

/// `c`, or single_process() when it is null.
inline const Communicator& or_single(const Communicator* c) { return c ? *c : single_process(); }

/// A communicator that counts what goes through another one (bytes summed per call of
/// all_reduce_sum and all_reduce_host_sum, and the number of calls): what a step costs on
/// the wire, for benchmarks and tests.
class Counting final : public Communicator {
  public:
    explicit Counting(const Communicator& inner) : inner_(inner) {}

    [[nodiscard]] int rank() const override { return inner_.rank(); }
    [[nodiscard]] int size() const override { return inner_.size(); }
    [[nodiscard]] std::string name() const override { return inner_.name() + " (counted)"; }
    void all_reduce_sum(float* p, std::size_t n) const override {
        count(n * sizeof(float));
        inner_.all_reduce_sum(p, n);
    }
    void all_reduce_sum(double* p, std::size_t n) const override {
        count(n * sizeof(double));
        inner_.all_reduce_sum(p, n);
    }
    void all_reduce_host_sum(double* p, std::size_t n) const override {
        count(n * sizeof(double));
        inner_.all_reduce_host_sum(p, n);
    }
    void broadcast_host(void* p, std::size_t bytes, int root) const override {
        inner_.broadcast_host(p, bytes, root);
    }
    void barrier() const override { inner_.barrier(); }

    /// Bytes all-reduced (each rank's buffer size, summed over calls) and calls since reset().
    [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
    [[nodiscard]] std::uint64_t calls() const { return calls_; }
    void reset() { bytes_ = calls_ = 0; }

  private:
    void count(std::size_t b) const {
        bytes_ += b;
        ++calls_;
    }
    const Communicator& inner_;
    mutable std::uint64_t bytes_ = 0, calls_ = 0;
};

}  // namespace l2rw::dist
