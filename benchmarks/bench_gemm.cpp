// benchmarks/bench_gemm.cpp — FP32 GEMM, C = A·B at 1024x1024x1024, in GFLOP/s, at each
// thread count of --threads=1,2 (default 1 and 2):
//
//   thr:N/gemm/cpu/1024       Cpu::gemm: Eigen's own product, or, built with l2rw::blas,
//                             Eigen routing it to the BLAS (EIGEN_USE_BLAS)
//   thr:N/gemm/openblas/1024  (BLAS build only) sgemm_ called directly: the BLAS's own speed
//
// CMake builds this file twice: bench_gemm with the opt-ins (l2rw::openmp and l2rw::blas,
// when found) and bench_gemm_eigen with l2rw::openmp only, so one pair of runs sets Eigen,
// Eigen-through-BLAS and the BLAS itself side by side.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>
#include <l2rw/backend/cpu.hpp>
#include <l2rw/tensor.hpp>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace {

using namespace l2rw;
using T = float;
constexpr index_t n = 1024;

void set_gflops(benchmark::State& st) {
    st.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void cpu_gemm(benchmark::State& st, int threads) {
    set_num_threads(threads);
    const auto a = Tensor<T, Cpu>::randn(Shape{n, n}, 1), b = Tensor<T, Cpu>::randn(Shape{n, n}, 2);
    Tensor<T, Cpu> c(Shape{n, n});
    Cpu::gemm(false, false, n, n, n, a.data(), b.data(), c.data(), false);  // warm-up
    for (auto _ : st) {
        Cpu::gemm(false, false, n, n, n, a.data(), b.data(), c.data(), false);
        benchmark::DoNotOptimize(c.data());
    }
    set_gflops(st);
}

#if defined(EIGEN_USE_BLAS)
void blas_gemm(benchmark::State& st, int threads) {
    set_num_threads(threads);
    const auto a = Tensor<T, Cpu>::randn(Shape{n, n}, 1), b = Tensor<T, Cpu>::randn(Shape{n, n}, 2);
    Tensor<T, Cpu> c(Shape{n, n});
    const int m = static_cast<int>(n);
    const float one = 1, zero = 0;
    auto run = [&] {  // column-major BLAS: Cᵀ = Bᵀ·Aᵀ is the row-major C = A·B
        sgemm_("N", "N", &m, &m, &m, &one, b.data(), &m, a.data(), &m, &zero, c.data(), &m);
    };
    run();
    for (auto _ : st) {
        run();
        benchmark::DoNotOptimize(c.data());
    }
    set_gflops(st);
}
#endif

}  // namespace

int main(int argc, char** argv) {
    const std::vector<int> threads =
        l2rw_bench::thread_counts_or_exit(argc, argv, "bench_gemm", "threads");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
#if defined(EIGEN_USE_BLAS)
    const std::string cpu = "gemm/cpu(eigen->blas)/1024";
#else
    const std::string cpu = "gemm/cpu(eigen)/1024";
#endif
    for (int t : threads) {
        const std::string thr = "thr:" + std::to_string(t) + "/";
        benchmark::RegisterBenchmark((thr + cpu).c_str(),
                                     [t](benchmark::State& st) { cpu_gemm(st, t); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(1.0);
#if defined(EIGEN_USE_BLAS)
        benchmark::RegisterBenchmark((thr + "gemm/openblas/1024").c_str(),
                                     [t](benchmark::State& st) { blas_gemm(st, t); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(1.0);
#endif
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
