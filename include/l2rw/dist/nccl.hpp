// l2rw/dist/nccl.hpp — the Communicator over NCCL, for Thrust<CUDA>: one rank per GPU.
// Needs the CUDA toolkit's NCCL (nccl.h, -lnccl) and nvcc; CI compiles it (tests/nccl_check.cu)
// on machines without a GPU, so it is built but not run there.
//
//   ncclUniqueId id;
//   if (rank == 0) id = l2rw::dist::Nccl::unique_id();
//   MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);   // or any other way to share it
//   cudaSetDevice(local_rank);
//   l2rw::dist::Nccl comm(id, rank, size);
//
// all_reduce_sum takes device memory and is enqueued on the communicator's stream (the
// legacy default stream unless one is given, which orders it with the backend's kernels), so
// the host does not wait for it. The host-memory collectives of dist::agree (flags, counts,
// scalars) go through a small device buffer and wait for their result: the algorithm needs
// those values on the host.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstddef>
#include <string>

#include "../error.hpp"
#include "communicator.hpp"

namespace l2rw::dist {

namespace detail {

inline void check_nccl(ncclResult_t r, const char* call) {
    if (r != ncclSuccess) throw Error(std::string(call) + " failed: " + ncclGetErrorString(r));
}
inline void check_cuda(cudaError_t e, const char* call) {
    if (e != cudaSuccess) throw Error(std::string(call) + " failed: " + cudaGetErrorString(e));
}

}  // namespace detail

class Nccl final : public Communicator {
  public:
    /// A new id for the ranks of one communicator (made on one rank, given to all).
    static ncclUniqueId unique_id() {
        ncclUniqueId id;
        detail::check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    /// Rank `rank` of `size`, on the current CUDA device, joining the ranks given `id`.
    Nccl(const ncclUniqueId& id, int rank, int size, cudaStream_t stream = nullptr)
        : rank_(rank), size_(size), stream_(stream) {
        if (size <= 0 || rank < 0 || rank >= size)
            throw ValueError("dist::Nccl: rank " + std::to_string(rank) + " of " +
                             std::to_string(size));
        detail::check_nccl(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
    }
    Nccl(const Nccl&) = delete;
    Nccl& operator=(const Nccl&) = delete;
    ~Nccl() override {
        if (scratch_) cudaFree(scratch_);
        ncclCommDestroy(comm_);
    }

    [[nodiscard]] int rank() const override { return rank_; }
    [[nodiscard]] int size() const override { return size_; }
    [[nodiscard]] std::string name() const override { return "NCCL"; }
    [[nodiscard]] ncclComm_t handle() const { return comm_; }
    [[nodiscard]] cudaStream_t stream() const { return stream_; }

    void all_reduce_sum(float* p, std::size_t n) const override {
        detail::check_nccl(ncclAllReduce(p, p, n, ncclFloat, ncclSum, comm_, stream_),
                           "ncclAllReduce");
    }
    void all_reduce_sum(double* p, std::size_t n) const override {
        detail::check_nccl(ncclAllReduce(p, p, n, ncclDouble, ncclSum, comm_, stream_),
                           "ncclAllReduce");
    }
    void all_reduce_host_sum(double* p, std::size_t n) const override {
        auto* d = static_cast<double*>(scratch(n * sizeof(double)));
        to_device(d, p, n * sizeof(double));
        detail::check_nccl(ncclAllReduce(d, d, n, ncclDouble, ncclSum, comm_, stream_),
                           "ncclAllReduce");
        to_host(p, d, n * sizeof(double));
    }
    void broadcast_host(void* p, std::size_t bytes, int root) const override {
        void* d = scratch(bytes);
        to_device(d, p, bytes);
        detail::check_nccl(ncclBroadcast(d, d, bytes, ncclChar, root, comm_, stream_),
                           "ncclBroadcast");
        to_host(p, d, bytes);
    }
    void barrier() const override {
        double one = 1;
        all_reduce_host_sum(&one, 1);
    }

  private:
    void* scratch(std::size_t bytes) const {
        if (bytes > scratch_bytes_) {
            if (scratch_) detail::check_cuda(cudaFree(scratch_), "cudaFree");
            scratch_ = nullptr;
            detail::check_cuda(cudaMalloc(&scratch_, bytes), "cudaMalloc");
            scratch_bytes_ = bytes;
        }
        return scratch_;
    }
    void to_device(void* d, const void* h, std::size_t bytes) const {
        detail::check_cuda(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, stream_),
                           "cudaMemcpyAsync");
    }
    void to_host(void* h, const void* d, std::size_t bytes) const {
        detail::check_cuda(cudaMemcpyAsync(h, d, bytes, cudaMemcpyDeviceToHost, stream_),
                           "cudaMemcpyAsync");
        detail::check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    }

    ncclComm_t comm_ = nullptr;
    int rank_ = 0, size_ = 1;
    cudaStream_t stream_ = nullptr;
    mutable void* scratch_ = nullptr;
    mutable std::size_t scratch_bytes_ = 0;
};

}  // namespace l2rw::dist
