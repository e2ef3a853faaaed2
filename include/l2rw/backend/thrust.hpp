// l2rw/backend/thrust.hpp — the Thrust backend, Thrust<System>.
//
// Buffers are Thrust vectors of the chosen system and kernels run through
// thrust::for_each on that system:
//   Thrust<OMP>  host threads through Thrust's OpenMP system (g++ -fopenmp), tested here;
//   Thrust<CPP>  Thrust's serial host system;
//   Thrust<CUDA> the GPU, when compiled by nvcc;
//   Thrust<Device> thrust::device_vector on THRUST_DEVICE_SYSTEM, whatever it is.
// GEMM is the portable one-output-per-thread kernel of kernels.hpp on every system.
#pragma once

#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/system/cpp/execution_policy.h>
#include <thrust/system/cpp/vector.h>

#if defined(_OPENMP)
#include <thrust/system/omp/execution_policy.h>
#include <thrust/system/omp/vector.h>
#endif
#if defined(__CUDACC__)
#include <thrust/system/cuda/execution_policy.h>
#include <thrust/system/cuda/vector.h>
#endif

#include "../config.hpp"
#include "../error.hpp"
#include "concept.hpp"
#include "kernels.hpp"

namespace l2rw {

/// Thrust systems a Thrust backend can run on.
struct CPP {
    template <class T>
    using vector = thrust::cpp::vector<T>;
    static auto policy() { return thrust::cpp::par; }
    static constexpr const char* name() { return "Thrust<CPP>"; }
};
#if defined(_OPENMP)
struct OMP {
    template <class T>
    using vector = thrust::omp::vector<T>;
    static auto policy() { return thrust::omp::par; }
    static constexpr const char* name() { return "Thrust<OMP>"; }
};
#endif
#if defined(__CUDACC__)
struct CUDA {
    template <class T>
    using vector = thrust::cuda::vector<T>;
    static auto policy() { return thrust::cuda::par; }
    static constexpr const char* name() { return "Thrust<CUDA>"; }
};
#endif
struct Device {
    template <class T>
    using vector = thrust::device_vector<T>;
    static auto policy() { return thrust::device; }
    static constexpr const char* name() { return "Thrust<Device>"; }
};

template <class System>
struct Thrust {
    template <class T>
    using buffer = typename System::template vector<T>;

    static constexpr const char* name() { return System::name(); }

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

    template <class T>
    static void gemm(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, const T* b,
                     T* c, bool accumulate) {
        // op(A)[i, p]: stored A is [m, k] (rs = k, cs = 1) or, transposed, [k, m] (rs = 1, cs = m).
        kernel::GemmNaive<T> g{a,          b,          c,          n,          k,
                               ta ? 1 : k, ta ? m : 1, tb ? 1 : n, tb ? k : 1, accumulate};
        for_each(m * n, g);
    }

    template <class T>
    static void to_host(const buffer<T>& b, T* host) {
        thrust::copy(b.begin(), b.end(), host);
    }
    template <class T>
    static void from_host(const T* host, buffer<T>& b) {
        thrust::copy(host, host + b.size(), b.begin());
    }
    template <class T>
    static void copy(const T* src, index_t n, T* dst) {
        thrust::copy(System::policy(), src, src + n, dst);
    }
};

}  // namespace l2rw
