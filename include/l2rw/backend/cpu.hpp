// l2rw/backend/cpu.hpp — the CPU backend: host buffers, Eigen GEMM and reductions, on the
// threads of parallel.hpp when OpenMP is on (l2rw::openmp), on the calling thread otherwise.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "../config.hpp"
#include "concept.hpp"
#include "host_pool.hpp"
#include "parallel.hpp"

namespace l2rw {

struct Cpu {
    /// Uninitialised, 64-byte aligned host memory; large blocks are reused (host_pool.hpp).
    template <class T>
    using buffer = HostBuffer<T>;

    static constexpr const char* name() { return "Cpu"; }
    /// Coarse host tasks (the images of a convolution) may run on threads (parallel.hpp).
    static constexpr bool host_tasks = true;

    template <class T>
    static buffer<T> allocate(index_t n) {
        return buffer<T>(static_cast<std::size_t>(n));
    }
    template <class T>
    static T* data(buffer<T>& b) {
        return b.data();
    }
    template <class T>
    static const T* data(const buffer<T>& b) {
        return b.data();
    }

    /// f(i) for i in [0, n); over threads when n times the kernel's cost() is large.
    template <class F>
    static void for_each(index_t n, const F& f) {
        index_t cost = 1;
        if constexpr (requires { f.cost(); }) cost = f.cost();
        parallel::for_range(n, cost, f);
    }

    /// Elements per block of a sum: the blocks depend on n only, so the result is the same
    /// bits at every thread count.
    static constexpr index_t sum_block = index_t(1) << 14;

    template <class T>
    static T sum(const T* p, index_t n) {
        using Arr = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
        if (n <= 0) return T(0);
        if (n <= sum_block) return Arr(p, n).sum();
        const index_t blocks = (n + sum_block - 1) / sum_block;
        std::vector<T> part(static_cast<std::size_t>(blocks));
        parallel::for_range(blocks, sum_block, [&](index_t b) {
            const index_t lo = b * sum_block, len = std::min(sum_block, n - lo);
            part[static_cast<std::size_t>(b)] = Arr(p + lo, len).sum();
        });
        T s = T(0);
        for (T v : part) s += v;
        return s;
    }

    /// out[0] = sum(p, n) (as Thrust's, which keeps the result on its device).
    template <class T>
    static void sum_into(const T* p, index_t n, T* out) {
        *out = sum(p, n);
    }

    /// C[m, n] (+)= op(A) op(B) with op(A) of shape [m, k] and op(B) of shape [k, n];
    /// A and B are row-major as stored (ta: A is stored [k, m]; tb: B is stored [n, k]).
    template <class T>
    static void gemm(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, const T* b,
                     T* c, bool accumulate) {
        gemm_ld(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c, n, accumulate);
    }

    /// gemm on sub-matrices: lda, ldb and ldc are the row strides of A, B and C as stored
    /// (the convolution family multiplies blocks of an image's rows in place).
    template <class T>
    static void gemm_ld(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, index_t lda,
                        const T* b, index_t ldb, T* c, index_t ldc, bool accumulate) {
        using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        using Stride = Eigen::OuterStride<>;
        using CMap = Eigen::Map<const Mat, 0, Stride>;
        match_library_threads();
        Eigen::Map<Mat, 0, Stride> C(c, m, n, Stride(ldc));
        if (k == 0) {
            if (!accumulate) C.setZero();
            return;
        }
        CMap A(a, ta ? k : m, ta ? m : k, Stride(lda));
        CMap B(b, tb ? n : k, tb ? k : n, Stride(ldb));
        auto run = [&](const auto& prod) {
            if (accumulate)
                C.noalias() += prod;
            else
                C.noalias() = prod;
        };
        if (!ta && !tb)
            run(A * B);
        else if (ta && !tb)
            run(A.transpose() * B);
        else if (!ta && tb)
            run(A * B.transpose());
        else
            run(A.transpose() * B.transpose());
    }

    template <class T>
    static void to_host(const buffer<T>& b, T* host) {
        std::copy(b.begin(), b.end(), host);
    }
    template <class T>
    static void from_host(const T* host, buffer<T>& b) {
        std::copy(host, host + b.size(), b.begin());
    }
    template <class T>
    static void copy(const T* src, index_t n, T* dst) {
        std::copy(src, src + n, dst);
    }
};

static_assert(Backend<Cpu>);

}  // namespace l2rw
