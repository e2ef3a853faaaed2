// l2rw/backend/thrust.hpp — the Thrust backend, Thrust<System>.
//
// Kernels run through thrust::for_each on the chosen system:
//   Thrust<OMP>  host threads through Thrust's OpenMP system (g++ -fopenmp), tested here;
//   Thrust<CPP>  Thrust's serial host system;
//   Thrust<CUDA> the GPU, when compiled by nvcc;
//   Thrust<Device> thrust::device_vector on THRUST_DEVICE_SYSTEM, whatever it is.
// Buffers are uninitialised: the host pool's (host_pool.hpp) on CPP and OMP, the CUDA
// runtime's stream-ordered pool on CUDA (cuda.hpp), so that a steady-state step allocates
// nothing; Thrust<Device> keeps device_vector's. GEMM is Eigen's (Cpu::gemm) on the host
// systems, cuBLAS's on CUDA (link -lcublas), the portable one-output-per-thread kernel of
// kernels.hpp only on Thrust<Device> of another system. Sums and reductions over an axis
// leave their results in backend memory (CUB on CUDA): within a step, the host waits for the
// device only where it reads a value (item(), to_host()).
#pragma once

#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/system/cpp/execution_policy.h>

#if defined(_OPENMP)
#include <thrust/system/omp/execution_policy.h>
#endif
#if defined(__CUDACC__)
#include <thrust/system/cuda/execution_policy.h>

#include "cuda.hpp"
#endif

#include <string>
#include <type_traits>

#include "../config.hpp"
#include "../error.hpp"
#include "concept.hpp"
#include "cpu.hpp"
#include "host_pool.hpp"
#include "kernels.hpp"

namespace l2rw {

/// Thrust systems a Thrust backend can run on.
struct CPP {
    template <class T>
    using buffer = HostBuffer<T>;
    static auto policy() { return thrust::cpp::par; }
    static constexpr const char* name() { return "Thrust<CPP>"; }
};
#if defined(_OPENMP)
struct OMP {
    template <class T>
    using buffer = HostBuffer<T>;
    static auto policy() { return thrust::omp::par; }
    static constexpr const char* name() { return "Thrust<OMP>"; }
};
#endif
#if defined(__CUDACC__)
struct CUDA {
    template <class T>
    using buffer = gpu::DeviceBuffer<T>;
    static auto policy() { return thrust::cuda::par; }
    static constexpr const char* name() { return "Thrust<CUDA>"; }
};
#endif
struct Device {
    template <class T>
    using buffer = thrust::device_vector<T>;
    static auto policy() { return thrust::device; }
    static constexpr const char* name() { return "Thrust<Device>"; }
};

namespace detail {

/// Whether a system's vectors live in host memory, where Eigen's GEMM can read them.
template <class System>
inline constexpr bool host_memory_system = std::is_same_v<System, CPP>
#if defined(_OPENMP)
                                           || std::is_same_v<System, OMP>
#endif
                                           || (std::is_same_v<System, Device> &&
                                               (THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP ||
                                                THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CPP));

}  // namespace detail

template <class System>
struct Thrust {
    template <class T>
    using buffer = typename System::template buffer<T>;

    static constexpr const char* name() { return System::name(); }

    /// Whether the device is CUDA's (Thrust<CUDA>, or Thrust<Device> on CUDA, under nvcc):
    /// GEMM through cuBLAS, sums through CUB.
    static constexpr bool cuda_system =
#if defined(__CUDACC__)
        std::is_same_v<System, CUDA> ||
        (std::is_same_v<System, Device> && THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA);
#else
        false;
#endif

    /// n elements; a byte count that overflows std::size_t is a ValueError (Thrust's own
    /// allocation multiplies unchecked).
    template <class T>
    static buffer<T> allocate(index_t n) {
        const auto count = static_cast<std::size_t>(n);
        (void)checked_mul<ValueError>(count, sizeof(T), "Thrust::allocate: elements * bytes");
        return buffer<T>(count);
    }
    template <class T>
    static T* data(buffer<T>& b) {
        return thrust::raw_pointer_cast(b.data());
    }
    template <class T>
    static const T* data(const buffer<T>& b) {
        return thrust::raw_pointer_cast(b.data());
    }

    template <class F>
    static void for_each(index_t n, const F& f) {
        if (n <= 0) return;
        thrust::for_each(System::policy(), thrust::counting_iterator<index_t>(0),
                         thrust::counting_iterator<index_t>(n), f);
    }

    template <class T>
    static T sum(const T* p, index_t n) {
        if (n <= 0) return T(0);
        return thrust::reduce(System::policy(), p, p + n, T(0));
    }

    /// out[0] = Σ p[0, n), written in backend memory: no host wait on CUDA.
    template <class T>
    static void sum_into(const T* p, index_t n, T* out) {
#if defined(__CUDACC__)
        if constexpr (cuda_system) {
            if (n > 0) {
                gpu::sum_into(p, n, out);
                return;
            }
        }
#endif
        const T s = sum(p, n);
        for_each(1, kernel::Map<T, kernel::Fill<T>>{out, out, {s}});
    }

    /// out[s] = init op value(s·len) op … op value(s·len + len − 1) for s in [0, segments):
    /// a CUB segmented reduction on CUDA, one task per segment on the other systems. `value`
    /// maps a flat index to an element (kernels.hpp: ReducedElement; batchnorm.hpp).
    template <class R, class V, class Op>
    static void reduce_segments(index_t segments, index_t len, const V& value, Op op, R init,
                                R* out) {
        if (segments <= 0) return;
#if defined(__CUDACC__)
        if constexpr (cuda_system) {
            if (len > 0) {
                gpu::reduce_segments(segments, len, value, op, init, out);
                return;
            }
        }
#endif
        for_each(segments, kernel::SegmentReduce<R, V, Op>{value, op, init, len, out});
    }

    /// C[m, n] (+)= op(A) op(B), row-major as Cpu::gemm (see the file comment for how).
    template <class T>
    static void gemm(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, const T* b,
                     T* c, bool accumulate) {
        if (m <= 0 || n <= 0) return;
        if constexpr (detail::host_memory_system<System>) {
            Cpu::gemm(ta, tb, m, n, k, a, b, c, accumulate);
        } else if constexpr (cuda_system &&
                             (std::is_same_v<T, float> || std::is_same_v<T, double>)) {
#if defined(__CUDACC__)
            if (k == 0) {
                if (!accumulate) for_each(m * n, kernel::Map<T, kernel::Fill<T>>{c, c, {T(0)}});
                return;
            }
            gpu::gemm(ta, tb, m, n, k, a, b, c, accumulate);
#endif
        } else {
            // op(A)[i, p]: stored A is [m, k] (rs = k, cs = 1) or, transposed, [k, m] (rs = 1,
            // cs = m).
            kernel::GemmNaive<T> g{a,          b,          c,          n,          k,
                                   ta ? 1 : k, ta ? m : 1, tb ? 1 : n, tb ? k : 1, accumulate};
            for_each(m * n, g);
        }
    }

    template <class T>
    static void to_host(const buffer<T>& b, T* host) {
#if defined(__CUDACC__)
        if constexpr (std::is_same_v<System, CUDA>) {
            gpu::to_host(b.data(), b.size() * sizeof(T), host);
            return;
        }
#endif
        thrust::copy(b.begin(), b.end(), host);
    }
    template <class T>
    static void from_host(const T* host, buffer<T>& b) {
#if defined(__CUDACC__)
        if constexpr (std::is_same_v<System, CUDA>) {
            gpu::from_host(host, b.size() * sizeof(T), b.data());
            return;
        }
#endif
        thrust::copy(host, host + b.size(), b.begin());
    }
    template <class T>
    static void copy(const T* src, index_t n, T* dst) {
        if (n <= 0) return;
        thrust::copy(System::policy(), src, src + n, dst);
    }
};

}  // namespace l2rw
