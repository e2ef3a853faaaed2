// l2rw/backend/cuda.hpp — namespace l2rw::gpu: what Thrust<CUDA> takes from the CUDA libraries
// beyond Thrust (nvcc only; thrust.hpp includes it):
//
//   DevicePool        device memory from the CUDA runtime's stream-ordered pool
//                     (cudaMallocAsync / cudaFreeAsync), uninitialised, kept for reuse;
//   gemm              row-major GEMM through cuBLAS, one handle per host thread;
//   sum_into,         CUB reductions that leave their result in device memory, so that a
//   reduce_segments   step's sums and per-channel statistics make no host round trip.
//
// Everything runs on the legacy default stream (stream 0), the one that Thrust's kernels
// (thrust::cuda::par) and a fresh cuBLAS handle use: each call is ordered after the ones
// before it, so that a block freed and handed out again is never written while a kernel
// queued earlier still reads it, and nothing here waits for the device.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include <atomic>
#include <cstdint>
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_segmented_reduce.cuh>
#include <new>
#include <string>
#include <type_traits>

#include "../config.hpp"
#include "../error.hpp"
#include "host_pool.hpp"

namespace l2rw::gpu {

inline constexpr cudaStream_t stream = 0;

inline void check(cudaError_t e, const char* call) {
    if (e != cudaSuccess) throw Error(std::string(call) + " failed: " + cudaGetErrorString(e));
}

inline int checked_int(index_t v, const char* what) {
    if (v < 0 || v > 2147483647)
        throw ValueError(std::string(what) + ": " + std::to_string(v) + " does not fit an int");
    return static_cast<int>(v);
}

/// Device memory for PoolBuffer: the current device's default memory pool, with its release
/// threshold raised so that it keeps what a step frees (a steady-state step then makes no
/// cudaMalloc and no implicit synchronisation). `release()` waits for the device and hands
/// the pool's unused memory back.
class DevicePool {
  public:
    static DevicePool& instance() {
        static DevicePool* pool = new DevicePool();  // never destroyed: buffers may outlive it
        return *pool;
    }

    void* allocate(std::size_t bytes) {
        keep_memory(current_device());
        void* p = nullptr;
        cudaError_t e = cudaMallocAsync(&p, bytes, stream);
        if (e == cudaErrorMemoryAllocation) {  // give back what the pool holds, then once more
            (void)cudaGetLastError();
            release();
            e = cudaMallocAsync(&p, bytes, stream);
            if (e == cudaErrorMemoryAllocation) {
                (void)cudaGetLastError();
                throw std::bad_alloc();
            }
        }
        check(e, "cudaMallocAsync");
        return p;
    }
    void deallocate(void* p, std::size_t) noexcept {
        if (p) (void)cudaFreeAsync(p, stream);  // errors here surface at the next call
    }

    /// Waits for the device, then frees the unused memory of the current device's pool.
    void release() {
        check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        check(cudaMemPoolTrimTo(pool_of(current_device()), 0), "cudaMemPoolTrimTo");
    }
    /// Bytes the current device's pool holds from the driver (in use and cached).
    [[nodiscard]] std::size_t reserved_bytes() const {
        std::uint64_t v = 0;
        check(cudaMemPoolGetAttribute(pool_of(current_device()), cudaMemPoolAttrReservedMemCurrent,
                                      &v),
              "cudaMemPoolGetAttribute");
        return static_cast<std::size_t>(v);
    }

  private:
    DevicePool() = default;
    static int current_device() {
        int d = 0;
        check(cudaGetDevice(&d), "cudaGetDevice");
        return d;
    }
    static cudaMemPool_t pool_of(int device) {
        cudaMemPool_t pool;
        check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
        return pool;
    }
    void keep_memory(int device) {
        const std::uint64_t bit = device < 64 ? std::uint64_t(1) << device : 0;
        if (bit && (kept_.load(std::memory_order_acquire) & bit)) return;
        std::uint64_t unbounded = UINT64_MAX;
        check(cudaMemPoolSetAttribute(pool_of(device), cudaMemPoolAttrReleaseThreshold, &unbounded),
              "cudaMemPoolSetAttribute");
        kept_.fetch_or(bit, std::memory_order_release);
    }
    std::atomic<std::uint64_t> kept_{0};  // devices whose pool keeps its memory
};

template <class T>
using DeviceBuffer = PoolBuffer<T, DevicePool>;

inline void to_host(const void* device, std::size_t bytes, void* host) {
    if (bytes) check(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}
inline void from_host(const void* host, std::size_t bytes, void* device) {
    if (bytes)
        check(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

// ---- cuBLAS ---------------------------------------------------------------------------------

inline void check_cublas(cublasStatus_t s, const char* call) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw Error(std::string(call) + " failed: " + cublasGetStatusString(s));
}

/// This host thread's cuBLAS handle (made on first use, destroyed when the thread ends).
inline cublasHandle_t cublas_handle() {
    struct Handle {
        cublasHandle_t h = nullptr;
        Handle() { check_cublas(cublasCreate(&h), "cublasCreate"); }
        ~Handle() { cublasDestroy(h); }
    };
    thread_local Handle handle;
    return handle.h;
}

/// Row-major C[m, n] (+)= op(A) op(B) through column-major cuBLAS: Cᵀ = op(B)ᵀ op(A)ᵀ, so B
/// comes first and the stored row-major matrices are read as their transposes. k > 0.
template <class T>
void gemm(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, const T* b, T* c,
          bool accumulate) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    const T one = T(1), beta = accumulate ? T(1) : T(0);
    const auto opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int M = checked_int(m, "cuBLAS gemm: m"), N = checked_int(n, "cuBLAS gemm: n"),
              K = checked_int(k, "cuBLAS gemm: k");
    const int lda = ta ? M : K, ldb = tb ? K : N;
    if constexpr (std::is_same_v<T, float>)
        check_cublas(
            cublasSgemm(cublas_handle(), opb, opa, N, M, K, &one, b, ldb, a, lda, &beta, c, N),
            "cublasSgemm");
    else
        check_cublas(
            cublasDgemm(cublas_handle(), opb, opa, N, M, K, &one, b, ldb, a, lda, &beta, c, N),
            "cublasDgemm");
}

// ---- CUB reductions ---------------------------------------------------------------------------

/// Runs a CUB device algorithm: once to size its scratch space, once with scratch from the
/// pool (freed in stream order behind it).
template <class F>
void with_scratch(const F& run, const char* call) {
    std::size_t bytes = 0;
    check(run(nullptr, bytes), call);
    DeviceBuffer<unsigned char> scratch(bytes ? bytes : 1);
    check(run(scratch.data(), bytes), call);
}

/// *out = Σ p[0, n), in device memory.
template <class T>
void sum_into(const T* p, index_t n, T* out) {
    with_scratch(
        [&](void* tmp, std::size_t& bytes) {
            return cub::DeviceReduce::Sum(tmp, bytes, p, out, static_cast<std::int64_t>(n), stream);
        },
        "cub::DeviceReduce::Sum");
}

struct SegmentStart {
    index_t len;
    L2RW_HD index_t operator()(index_t s) const { return s * len; }
};

/// out[s] = init op value(s·len) op … op value(s·len + len − 1) for s in [0, segments), one
/// CUB segmented reduction over value's flat index.
template <class R, class V, class Op>
void reduce_segments(index_t segments, index_t len, const V& value, Op op, R init, R* out) {
    const auto in = thrust::make_transform_iterator(thrust::counting_iterator<index_t>(0), value);
    const auto starts =
        thrust::make_transform_iterator(thrust::counting_iterator<index_t>(0), SegmentStart{len});
    with_scratch(
        [&](void* tmp, std::size_t& bytes) {
            return cub::DeviceSegmentedReduce::Reduce(tmp, bytes, in, out,
                                                      static_cast<std::int64_t>(segments), starts,
                                                      starts + 1, op, init, stream);
        },
        "cub::DeviceSegmentedReduce::Reduce");
}

}  // namespace l2rw::gpu
