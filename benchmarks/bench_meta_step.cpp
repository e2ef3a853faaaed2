// benchmarks/bench_meta_step.cpp — the cost of one reweighted training step (Algorithm 1 of
// Ren et al., 2018) against one plain step, float on the Cpu backend.
//
// Models: MLP 784-256-256-10 (inputs [n, 784]), LeNet (1x28x28, 10 outputs), ResNet-32
// (3x32x32, 10 classes) at training batch 100, and WRN-28-10 (3x32x32) at batch 16 (plain
// and exact meta only: its cost on record). Per model:
//
//   <model>/plain/train:100                   forward + backward + SGD-momentum step, uniform
//                                             weights (weighted_gradient + opt.step)
//   <model>/meta/<strategy>/train:100/val:V   OnlineReweighter::step with SGD momentum: the
//                                             example weights (lookahead + backward-on-backward
//                                             for `general`; a validation backward and one
//                                             forward-mode training pass for `exact`; a
//                                             double-backward VJP for `double_backward`) and
//                                             then the reweighted step; V = 100, 10
//
// Every case runs once per thread count of --threads=1,2 (default: 1 and 2), named
// `thr:N/<case>`. Each reports examples/s (training examples per second), peak_MB (the
// peak resident memory the case added, bench_common.hpp) and, for meta steps, the share of
// steps skipped because every weight was zero (Eq. 9). GEMM alone: bench_gemm.cpp. After the runs a
// table of meta/plain time ratios per model, validation batch and strategy is printed (the paper
// reports about 3x); it uses the median over repetitions when --benchmark_repetitions > 1.
//
// This file has its own main(): BENCHMARK_MAIN()'s, with the console reporter of
// ratio_reporter.hpp that also collects the times for that table. Typical use:
//
//   bench_meta_step                                  # all, at 1 and 2 threads (minutes)
//   bench_meta_step --threads=2 --benchmark_filter='/(lenet|resnet32)/'
//   bench_meta_step --benchmark_filter='/(mlp|lenet)/' --benchmark_repetitions=5
//
// ResNet-32 cases run a fixed 2 iterations and WRN-28-10 cases 1 (a repetition each
// unless --benchmark_repetitions says more).
// Every case takes one untimed warm-up step first (page faults of the host memory pool,
// momentum buffers).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>
#include <l2rw/l2rw.hpp>
#include <l2rw/meta.hpp>
#include <l2rw/optim.hpp>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_models.hpp"
#include "ratio_reporter.hpp"

namespace {

using namespace l2rw_bench;
using Reweighter = meta::OnlineReweighter<Model>;

void set_examples_per_second(benchmark::State& st, index_t n) {
    st.counters["examples/s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

/// Starts a case: its thread count, and the peak-memory window (cached blocks given back).
l2rw_bench::PeakRss begin_case(int threads) {
    set_num_threads(threads);
    HostPool::instance().release();
    return {};
}

/// Forward + backward + SGD-momentum step with uniform weights 1/n.
void plain_step(benchmark::State& st, int threads, Arch a, index_t n) {
    const auto peak = begin_case(threads);
    try {
        auto model = make_model(a);
        const auto tb = make_batch(a, n, 11);
        auto opt = make_optimizer();
        Reweighter rw(*model);
        const std::vector<T> w(static_cast<std::size_t>(n), T(1) / static_cast<T>(n));
        Rng rng(7);  // Dropout's masks (WRN-28-10)
        opt.step(nn::named_parameters(*model), rw.weighted_gradient(tb, w, &rng));  // warm-up
        for (auto _ : st) opt.step(nn::named_parameters(*model), rw.weighted_gradient(tb, w, &rng));
        set_examples_per_second(st, n);
        st.counters["peak_MB"] = peak.mib();
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

/// OnlineReweighter::step: the weights by `strategy`, then the reweighted SGD-momentum step.
void meta_step(benchmark::State& st, int threads, Arch a, meta::Strategy strategy, index_t n,
               index_t m) {
    const auto peak = begin_case(threads);
    try {
        auto model = make_model(a);
        const auto tb = make_batch(a, n, 11);
        const auto vb = make_batch(a, m, 22);
        auto opt = make_optimizer();
        meta::ReweightOptions ro;
        ro.strategy = strategy;
        Reweighter rw(*model, ro);
        Rng rng(7);                        // Dropout's masks (WRN-28-10)
        (void)rw.step(tb, vb, opt, &rng);  // warm-up
        double skipped = 0;
        for (auto _ : st) skipped += rw.step(tb, vb, opt, &rng).skipped ? 1.0 : 0.0;
        set_examples_per_second(st, n);
        st.counters["skipped"] = benchmark::Counter(skipped, benchmark::Counter::kAvgIterations);
        st.counters["peak_MB"] = peak.mib();
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

void tune(benchmark::internal::Benchmark* b, Arch a) {
    b->Unit(benchmark::kMillisecond)->UseRealTime();
    if (a == Arch::resnet32)
        b->Iterations(2);
    else if (a == Arch::wrn28_10)
        b->Iterations(1);
    else
        b->MinTime(1.0);
}

void register_all(const std::vector<int>& thread_counts) {
    for (int t : thread_counts) {
        const std::string thr = "thr:" + std::to_string(t) + "/";
        for (Arch a : {Arch::mlp, Arch::lenet, Arch::resnet32, Arch::wrn28_10}) {
            const bool wide = a == Arch::wrn28_10;
            const index_t n = wide ? 16 : train_batch;
            const std::string model = thr + arch_name(a);
            const std::string train = "train:" + std::to_string(n);
            tune(benchmark::RegisterBenchmark(
                     (model + "/plain/" + train).c_str(),
                     [t, a, n](benchmark::State& st) { plain_step(st, t, a, n); }),
                 a);
            for (meta::Strategy s : {meta::Strategy::general, meta::Strategy::exact,
                                     meta::Strategy::double_backward}) {
                if (wide && s != meta::Strategy::exact) continue;
                for (index_t m : {index_t{100}, index_t{10}}) {
                    if (wide && m != 10) continue;
                    const std::string name = model + "/meta/" + meta::to_string(s) + "/" + train +
                                             "/val:" + std::to_string(m);
                    tune(benchmark::RegisterBenchmark(name.c_str(),
                                                      [t, a, s, n, m](benchmark::State& st) {
                                                          meta_step(st, t, a, s, n, m);
                                                      }),
                         a);
                }
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<int> threads =
        l2rw_bench::thread_counts_or_exit(argc, argv, "bench_meta_step", "threads");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all(threads);
    benchmark::AddCustomContext("threads", [&] {
        std::string s;
        for (int t : threads) {  // (not "," + to_string: GCC 12 warns -Wrestrict at -O3)
            if (!s.empty()) s += ',';
            s += std::to_string(t);
        }
        return s;
    }());
    l2rw_bench::RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return reporter.failures() ? 1 : 0;
}
