// benchmarks/bench_distributed.cpp — the data-parallel step over MPI ranks against one
// process. Run it twice, in one sitting on one machine:
//
//   bench_distributed --threads=1,2                     # 1 process, the whole batch
//   mpiexec -n 2 bench_distributed --threads=1          # 2 ranks, half the batch each
//
// (as root, OpenMPI also needs --allow-run-as-root). Cases, named after bench_meta_step's
// with the number of ranks in front, `ranks:P/thr:N/<model>/<step>/train:100[/val:100]`:
// LeNet and ResNet-32, the plain step (uniform weights, weighted_gradient + SGD momentum)
// and the exact meta step (OnlineReweighter::step), training batch 100 and validation batch
// 100 split over the ranks. Counters: examples/s (of the whole batch), bytes/step (what each
// rank all-reduces per step, dist::Counting) and peak_MB (per rank). The scaling
// efficiency is t(1 process, 1 thread) / (P · t(P ranks)).
//
// Every case runs a fixed number of iterations, so that all ranks run the same steps in
// step; only rank 0 reports (console and --benchmark_out).
#include <benchmark/benchmark.h>

#include <cstring>
#include <exception>
#include <l2rw/dist/mpi.hpp>
#include <l2rw/l2rw.hpp>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_models.hpp"

namespace {

using namespace l2rw_bench;
using Reweighter = meta::OnlineReweighter<Model>;

const dist::Communicator* world = nullptr;

/// A reporter that shows nothing (ranks other than 0).
class Silent : public benchmark::BenchmarkReporter {
  public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
};

void step_case(benchmark::State& st, int threads, Arch a, bool meta_step) {
    set_num_threads(threads);
    HostPool::instance().release();
    const PeakRss peak;
    try {
        dist::Counting counted(*world);
        auto model = make_model(a);
        const auto whole = make_batch(a, train_batch, 11),
                   whole_val = make_batch(a, train_batch, 22);
        const auto part = data::shard_of(train_batch, world->rank(), world->size());
        const auto tb = data::slice(whole, part.begin, part.end);
        const auto vb = data::slice(whole_val, part.begin, part.end);
        auto opt = make_optimizer();
        Reweighter rw(*model, {}, meta::default_loss<T, B>, &counted);
        const std::vector<T> w(static_cast<std::size_t>(tb.size()), T(1) / T(train_batch));
        auto once = [&] {
            if (meta_step)
                (void)rw.step(tb, vb, opt);
            else
                opt.step(nn::named_parameters(*model), rw.weighted_gradient(tb, w));
        };
        once();  // warm-up
        counted.reset();
        world->barrier();
        for (auto _ : st) once();
        st.counters["examples/s"] = benchmark::Counter(
            static_cast<double>(train_batch), benchmark::Counter::kIsIterationInvariantRate);
        st.counters["bytes/step"] = benchmark::Counter(static_cast<double>(counted.bytes()),
                                                       benchmark::Counter::kAvgIterations);
        st.counters["peak_MB"] = peak.mib();
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

void register_all(const std::vector<int>& thread_counts) {
    const std::string ranks = "ranks:" + std::to_string(world->size()) + "/";
    for (int t : thread_counts)
        for (Arch a : {Arch::lenet, Arch::resnet32})
            for (bool meta_step : {false, true}) {
                const std::string name =
                    ranks + "thr:" + std::to_string(t) + "/" + arch_name(a) +
                    (meta_step ? "/meta/exact/train:100/val:100" : "/plain/train:100");
                benchmark::RegisterBenchmark(
                    name.c_str(),
                    [t, a, meta_step](benchmark::State& st) { step_case(st, t, a, meta_step); })
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime()
                    ->Iterations(a == Arch::resnet32 ? 3 : 200);
            }
}

}  // namespace

int main(int argc, char** argv) {
    dist::MpiSession session(&argc, &argv);
    dist::Mpi comm;
    world = &comm;
    const std::vector<int> threads =
        thread_counts_or_exit(argc, argv, "bench_distributed", "threads");
    bool to_file = false;
    for (int i = 1; i < argc; ++i)
        to_file = to_file || std::strncmp(argv[i], "--benchmark_out=", 16) == 0;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all(threads);
    benchmark::AddCustomContext("ranks", std::to_string(comm.size()));
    if (comm.rank() == 0) {
        benchmark::RunSpecifiedBenchmarks();
    } else {
        Silent quiet, quiet_file;
        benchmark::RunSpecifiedBenchmarks(&quiet, to_file ? &quiet_file : nullptr);
    }
    benchmark::Shutdown();
    return 0;
}
