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
// Oversubscription: parallel regions are coarse (a threshold on the work of a loop, one
// region per batch of images in a convolution), threads take chunks dynamically, and the
// team shrinks while other processes hold the cores (team_size()), so that a 2-thread run
// on a busy machine is not slower than a 1-thread one; see the README's performance section.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "../config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__linux__)
#include <dirent.h>
#endif

namespace l2rw {

namespace detail {

/// The thread settings of the process: the count the user asked for, and the team that
/// parallel regions use now (fewer when other processes hold cores; see team_size()).
struct ThreadSettings {
    std::atomic<int> requested{0};  // 0: not read yet
    std::atomic<int> team{0};
    std::atomic<bool> adaptive{true};
    std::atomic<std::int64_t> next_sample_ns{0};
    std::mutex sampling;
    int last_free = -1;  // the previous sample's free cores (under `sampling`)
    ThreadSettings() {
        const char* e = std::getenv("L2RW_ADAPTIVE_THREADS");
        if (e && std::strcmp(e, "0") == 0) adaptive = false;
    }
};
inline ThreadSettings& thread_settings() {
    static ThreadSettings s;
    return s;
}

#if defined(__linux__)
/// Runnable threads on the machine (/proc/loadavg's "R/T" field), or -1.
inline int runnable_threads() {
    std::FILE* f = std::fopen("/proc/loadavg", "r");
    if (!f) return -1;
    double a, b, c;
    int r = -1, t = 0;
    if (std::fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &r, &t) != 5) r = -1;
    std::fclose(f);
    return r;
}
/// Runnable threads of this process (state R in /proc/self/task/*/stat), or -1.
inline int own_runnable_threads() {
    DIR* d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    char path[64], buf[512];
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        std::FILE* f = std::fopen(path, "r");
        if (!f) continue;
        const std::size_t len = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[len] = '\0';
        const char* close = std::strrchr(buf, ')');  // the name may hold spaces
        if (close && close[1] == ' ' && close[2] == 'R') ++n;
    }
    closedir(d);
    return n;
}
#endif

}  // namespace detail

/// Threads the Cpu backend uses for its parallel loops (1 without OpenMP). Follows
/// OMP_NUM_THREADS until set_num_threads is called.
inline int num_threads() {
#if defined(_OPENMP)
    auto& s = detail::thread_settings();
    int n = s.requested.load(std::memory_order_relaxed);
    if (n == 0) {
        int expected = 0;
        n = omp_get_max_threads();
        if (!s.requested.compare_exchange_strong(expected, n)) n = expected;
    }
    return n;
#else
    return 1;
#endif
}

/// Sets the threads of later parallel loops (and Eigen's GEMM); n < 1 means 1. Without
/// OpenMP this does nothing and num_threads() stays 1.
inline void set_num_threads(int n) {
#if defined(_OPENMP)
    n = std::max(n, 1);
    auto& s = detail::thread_settings();
    s.requested = n;
    s.team = n;
    s.next_sample_ns = 0;
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/// Whether parallel regions give up threads while other processes hold the cores (on by
/// default; the environment variable L2RW_ADAPTIVE_THREADS=0 turns it off). Off, a run is
/// bitwise reproducible at its thread count even on a busy machine; on, the team (and so
/// the blocking of a threaded GEMM, whose last bits depend on it) follows the load.
inline void set_adaptive_threads(bool on) {
    detail::thread_settings().adaptive = on;
    set_num_threads(num_threads());
}
[[nodiscard]] inline bool adaptive_threads() { return detail::thread_settings().adaptive; }

/// The threads the next parallel region uses: num_threads(), or fewer when adaptive and
/// the machine's other runnable threads leave fewer cores free (sampled every 50 ms from
/// /proc on Linux). Spinning OpenMP threads that wait at a barrier for a thread the OS has
/// descheduled can make a 2-thread run many times slower than a 1-thread one on a busy
/// 2-core machine; a smaller team avoids that. Eigen's and the BLAS's threads follow it.
inline int team_size() {
    const int want = num_threads();
#if defined(_OPENMP) && defined(__linux__)
    auto& s = detail::thread_settings();
    if (want <= 1 || !s.adaptive.load(std::memory_order_relaxed)) return want;
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    int team = s.team.load(std::memory_order_relaxed);
    if (team < 1 || team > want) team = want;
    if (now < s.next_sample_ns.load(std::memory_order_relaxed)) return team;
    std::unique_lock<std::mutex> lock(s.sampling, std::try_to_lock);
    if (!lock.owns_lock()) return team;
    s.next_sample_ns = now + 50'000'000;
    const int all = detail::runnable_threads(), own = detail::own_runnable_threads();
    if (all < 0 || own < 0) {  // no /proc: keep the requested count
        s.adaptive = false;
        return want;
    }
    // A smaller team only when two samples in a row agree (a short-lived process should
    // not cost 50 ms at half the threads); a larger one at once.
    const int free_cores = omp_get_num_procs() - std::max(all - own, 0);
    const int seen = std::clamp(free_cores, 1, want);
    const int prev = s.last_free < 0 ? want : std::clamp(s.last_free, 1, want);
    // Kept >= 0: more runnable threads than cores (free_cores < 0) must count as a sample
    // with no core free, not as the "no sample yet" -1, or a heavily loaded machine would
    // never shrink the team.
    s.last_free = std::max(free_cores, 0);
    const int next = seen >= team ? seen : std::max(seen, std::min(prev, team));
    if (next != team) {
        s.team = next;
        omp_set_num_threads(next);
    }
    return next;
#else
    return want;
#endif
}

/// Sets the calling thread's OpenMP default team — the one Eigen's GEMM (and a BLAS built
/// with OpenMP) parallelises over — to team_size(). omp_set_num_threads acts on the calling
/// thread alone, so without this a thread other than the one that called set_num_threads
/// would multiply at OMP_NUM_THREADS, and its products' last bits would differ from the same
/// work on the main thread. Cpu::gemm calls it; it does nothing inside a parallel region.
inline void match_library_threads() {
#if defined(_OPENMP)
    if (omp_in_parallel()) return;
    const int t = team_size();
    if (omp_get_max_threads() != t) omp_set_num_threads(t);
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

/// Element operations in one chunk of a parallel loop: threads take chunks as they come
/// (dynamic scheduling), so a thread that the OS has descheduled (another process holds its
/// core) holds up the others by one chunk, not by half the loop.
inline constexpr index_t chunk_work = index_t(1) << 14;

/// Calls f(i) for i in [0, n), over the threads in chunks of about chunk_work element
/// operations when `n * cost` (cost: element operations per call) reaches
/// min_parallel_work. Each f(i) writes its own outputs, so which thread runs it does not
/// change a bit of the result.
template <class F>
void for_range(index_t n, index_t cost, const F& f) {
#if defined(_OPENMP)
    cost = std::max<index_t>(cost, 1);
    if (n > 1 && n * cost >= min_parallel_work && !in_parallel()) {
        const int team = team_size();
        if (team > 1) {
            const index_t chunk = std::max<index_t>(chunk_work / cost, 1);
#pragma omp parallel for num_threads(team) schedule(dynamic, chunk)
            for (index_t i = 0; i < n; ++i) f(i);
            return;
        }
    }
#else
    (void)cost;
#endif
    for (index_t i = 0; i < n; ++i) f(i);
}

/// Threads for `tasks` coarse tasks of total `work` element operations: 1 when they are
/// too small to share or when called inside a parallel region, else at most team_size().
inline int workers_for(index_t tasks, index_t work) {
    if (tasks < 2 || work < min_parallel_work || in_parallel()) return 1;
    return static_cast<int>(std::min<index_t>(team_size(), tasks));
}

/// Calls f(task) for every task in [0, n) on `workers` threads (from workers_for), each task
/// on one thread: for coarse tasks (an image of a convolution) that may themselves call Cpu
/// kernels, which then run serially. thread_index() < workers inside f. `f` must not throw.
template <class F>
void for_tasks(index_t n, int workers, const F& f) {
#if defined(_OPENMP)
    if (workers > 1) {
#pragma omp parallel for num_threads(workers) schedule(dynamic, 1)
        for (index_t i = 0; i < n; ++i) f(i);
        return;
    }
#else
    (void)workers;
#endif
    for (index_t i = 0; i < n; ++i) f(i);
}

}  // namespace parallel
}  // namespace l2rw
