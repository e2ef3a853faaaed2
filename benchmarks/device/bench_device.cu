// benchmarks/device/bench_device.cu — plain and reweighted (exact) training steps of LeNet and
// ResNet-32 on Thrust<CUDA>: float, training batch 100, validation batch 100, the models and
// batches of bench_models.hpp. Built by nvcc (tests/CMakeLists.txt, nvcc_bench_device) and
// run by tests/device/check.sh on a GPU.
//
// Each iteration ends with cudaDeviceSynchronize, so that real time is the device's time for
// the step. Counters: examples/s, and device_MB, the bytes the CUDA memory pool holds after
// the case (what the steps' peak took from the driver, as the pool keeps its memory).
// Without a CUDA device it prints so and exits with 0, or with 1 when L2RW_REQUIRE_DEVICE is
// set (the device check sets it).
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <l2rw/backend/thrust.hpp>
#include <string>
#include <vector>

#define L2RW_BENCH_BACKEND l2rw::Thrust<l2rw::CUDA>
#include <l2rw/meta.hpp>
#include <l2rw/optim.hpp>

#include "../bench_models.hpp"

namespace {

using namespace l2rw_bench;
using Reweighter = meta::OnlineReweighter<Model>;

void sync() { l2rw::gpu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void finish(benchmark::State& st, index_t n) {
    st.counters["examples/s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["device_MB"] =
        static_cast<double>(l2rw::gpu::DevicePool::instance().reserved_bytes()) / (1 << 20);
}

void plain_step(benchmark::State& st, Arch a) {
    try {
        l2rw::gpu::DevicePool::instance().release();
        auto model = make_model(a);
        const auto tb = make_batch(a, train_batch, 11);
        auto opt = make_optimizer();
        Reweighter rw(*model);
        const std::vector<T> w(static_cast<std::size_t>(train_batch), T(1) / T(train_batch));
        opt.step(nn::named_parameters(*model), rw.weighted_gradient(tb, w));  // warm-up
        sync();
        for (auto _ : st) {
            opt.step(nn::named_parameters(*model), rw.weighted_gradient(tb, w));
            sync();
        }
        finish(st, train_batch);
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

void meta_step(benchmark::State& st, Arch a) {
    try {
        l2rw::gpu::DevicePool::instance().release();
        auto model = make_model(a);
        const auto tb = make_batch(a, train_batch, 11);
        const auto vb = make_batch(a, 100, 22);
        auto opt = make_optimizer();
        meta::ReweightOptions ro;
        ro.strategy = meta::Strategy::exact;
        Reweighter rw(*model, ro);
        (void)rw.step(tb, vb, opt);  // warm-up
        sync();
        for (auto _ : st) {
            (void)rw.step(tb, vb, opt);
            sync();
        }
        finish(st, train_batch);
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

}  // namespace

int main(int argc, char** argv) {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("bench_device: no CUDA device found (%s)\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return std::getenv("L2RW_REQUIRE_DEVICE") ? 1 : 0;
    }
    for (Arch a : {Arch::lenet, Arch::resnet32}) {
        const std::string name = std::string(arch_name(a)) + "/";
        benchmark::RegisterBenchmark((name + "plain/train:100").c_str(),
                                     [a](benchmark::State& st) { plain_step(st, a); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(2.0);
        benchmark::RegisterBenchmark((name + "meta/exact/train:100/val:100").c_str(),
                                     [a](benchmark::State& st) { meta_step(st, a); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(2.0);
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    const auto ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return ran > 0 ? 0 : 1;
}
