// l2rw/backend/parallel.hpp — host threads for the Cpu backend, opt-in through OpenMP.
//
// Without OpenMP (the default build: the library imposes no flags) everything here runs on
// the calling thread. With it (link l2rw::openmp, or compile with -fopenmp) kernels above a
// size threshold, the convolution family and Eigen's GEMM run on `num_threads()` threads.
//
// Determinism: every parallel loop here writes disjoint outputs, and every reduction is cut
// into blocks whose bounds depend on the problem size only, never on the thread count, and
// the block results are combined in block order. So a run is bitwise reproducible at any
// fixed thread count, and elementwise work and these reductions are bitwise independent of
// it; only Eigen's GEMM blocking (and so the last bits of a product) may change with it.
//
// Oversubscription: parallel regions are few and coarse (a threshold on the work of a loop,
// one region per image batch in a convolution), so that OpenMP's spinning threads, when
// another process holds a core, cost little; see the README's performance section.
#pragma once

#include <algorithm>

#include "../config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace l2rw {

/// Threads the Cpu backend uses for its parallel loops (1 without OpenMP). Follows
/// OMP_NUM_THREADS until set_num_threads is called.
inline int num_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the threads of later parallel loops (and Eigen's GEMM); n < 1 means 1. Without
/// OpenMP this does nothing and num_threads() stays 1.
inline void set_num_threads(int n) {
#if defined(_OPENMP)
    omp_set_num_threads(std::max(n, 1));
#else
    (void)n;
#endif
}

/// True when the caller is inside one of the Cpu backend's parallel regions (nested loops
/// then run serially on the calling thread).
inline bool in_parallel() {
#if defined(_OPENMP)
    return omp_in_parallel() != 0;
#else
    return false;
#endif
}

/// The calling thread's index in the current parallel region (0 outside one).
inline int thread_index() {
#if defined(_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
}

namespace parallel {

/// Below this many element operations a loop runs on one thread: a parallel region costs a
/// few microseconds, and on a busy machine much more.
inline constexpr index_t min_parallel_work = index_t(1) << 15;

/// Calls f(i) for i in [0, n), split into contiguous static blocks over the threads when
/// `n * cost` (cost: element operations per call) reaches min_parallel_work.
template <class F>
void for_range(index_t n, index_t cost, const F& f) {
#if defined(_OPENMP)
    if (n > 1 && n * std::max<index_t>(cost, 1) >= min_parallel_work && !in_parallel() &&
        num_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (index_t i = 0; i < n; ++i) f(i);
        return;
    }
#else
    (void)cost;
#endif
    for (index_t i = 0; i < n; ++i) f(i);
}

/// Calls f(task) for every task in [0, n) with each task on one thread, when their total
/// `work` (element operations) reaches min_parallel_work: for coarse tasks (an image of a
/// convolution) that may themselves call Cpu kernels, which then run serially. `f` must
/// not throw.
template <class F>
void for_tasks(index_t n, index_t work, const F& f) {
#if defined(_OPENMP)
    if (n > 1 && work >= min_parallel_work && !in_parallel() && num_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (index_t i = 0; i < n; ++i) f(i);
        return;
    }
#else
    (void)work;
#endif
    for (index_t i = 0; i < n; ++i) f(i);
}

/// Workers a for_tasks loop can run on at once: buffers indexed by thread_index() need this
/// many slots.
inline int max_workers() { return in_parallel() ? 1 : num_threads(); }

}  // namespace parallel
}  // namespace l2rw
