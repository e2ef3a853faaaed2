// benchmarks/bench_models.hpp — the models and batches the step benchmarks time (float, Cpu
// unless L2RW_BENCH_BACKEND names another backend):
// MLP 784-256-256-10, LeNet (1x28x28), ResNet-32 and WRN-28-10 (3x32x32), 10 classes, seeded
// random inputs and labels, SGD with momentum. bench_meta_step.cpp and bench_distributed.cpp
// take them from here, so that their cases time the same steps.
#pragma once

#include <l2rw/l2rw.hpp>
#include <memory>
#include <vector>

namespace l2rw_bench {

using namespace l2rw;
using T = float;
// The backend: Cpu, unless a translation unit defines L2RW_BENCH_BACKEND before including
// this header (benchmarks/device/bench_device.cu: Thrust<CUDA>).
#if defined(L2RW_BENCH_BACKEND)
using B = L2RW_BENCH_BACKEND;
#else
using B = Cpu;
#endif
using Model = nn::Sequential<T, B>;

constexpr index_t classes = 10;
constexpr index_t train_batch = 100;
// Small enough that thousands of steps on one fixed batch stay finite; the cost of a step
// does not depend on it.
constexpr double learning_rate = 0.01;
constexpr double momentum = 0.9;

enum class Arch { mlp, lenet, resnet32, wrn28_10 };

inline const char* arch_name(Arch a) {
    switch (a) {
        case Arch::mlp:
            return "mlp";
        case Arch::lenet:
            return "lenet";
        case Arch::resnet32:
            return "resnet32";
        case Arch::wrn28_10:
            return "wrn28_10";
    }
    return "?";
}

inline std::shared_ptr<Model> make_model(Arch a) {
    switch (a) {
        case Arch::mlp:
            return nn::mlp<T, B>({784, 256, 256, classes}, 1);
        case Arch::lenet:
            return nn::lenet<T, B>(
                nn::LeNetOptions{.in_channels = 1, .image_size = 28, .outputs = classes}, 1);
        case Arch::resnet32:
            return nn::resnet32<T, B>(classes, 1);
        case Arch::wrn28_10:
            return nn::wrn_28_10<T, B>(classes, 1);
    }
    return nullptr;
}

inline Shape input_shape(Arch a, index_t n) {
    switch (a) {
        case Arch::mlp:
            return Shape{n, 784};
        case Arch::lenet:
            return Shape{n, 1, 28, 28};
        case Arch::resnet32:
        case Arch::wrn28_10:
            return Shape{n, 3, 32, 32};
    }
    return Shape{n};
}

inline meta::Batch<T, B> make_batch(Arch a, index_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<index_t> y(static_cast<std::size_t>(n));
    for (auto& v : y) v = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(classes)));
    return {Tensor<T, B>::randn(input_shape(a, n), seed + 1000),
            IndexTensor<B>::from_host(Shape{n}, y),
            {}};
}

inline optim::SGD<T, B> make_optimizer() {
    return optim::SGD<T, B>({.lr = learning_rate, .momentum = momentum});
}

}  // namespace l2rw_bench
