// tests/small_run.hpp — a short seeded l2rw training run on small images, shared by the
// thread tests (tests/test_kernels.cpp) and the oneDNN tests (tests/onednn).
#pragma once

#include <cstdint>
#include <vector>

#include "testing.hpp"

namespace l2rw::testing {

/// `steps` l2rw steps (SGD momentum, training batch 24, validation batch 12) of a seeded
/// LeNet on [n, 1, 12, 12] or ResNet-8 on [n, 3, 8, 8] images, 3 classes, on Cpu in
/// precision T: the last step's example weights, then the parameters, as doubles.
template <class T>
std::vector<double> small_l2rw_run(bool resnet, int steps) {
    auto m = resnet ? nn::resnet_cifar<T, Cpu>(8, 3, 5) : nn::lenet<T, Cpu>({1, 12, 3}, 5);
    meta::OnlineReweighter<nn::Sequential<T, Cpu>> rw(*m);
    optim::SGD<T, Cpu> opt({.lr = 0.05, .momentum = 0.9});
    auto batch = [&](index_t n, std::uint64_t seed) {
        meta::Batch<T, Cpu> b;
        b.x = resnet ? Tensor<T, Cpu>::randn({n, 3, 8, 8}, seed)
                     : Tensor<T, Cpu>::randn({n, 1, 12, 12}, seed);
        b.y = random_labels<Cpu>(n, 3, seed + 1);
        return b;
    };
    std::vector<double> all;
    for (int step = 0; step < steps; ++step) {
        const auto r = rw.step(batch(24, 100 + step), batch(12, 500 + step), opt);
        if (step + 1 == steps)
            for (auto v : r.weights) all.push_back(static_cast<double>(v));
    }
    for (auto& [name, t] : nn::named_parameters(*m))
        for (auto v : t->to_host()) all.push_back(static_cast<double>(v));
    return all;
}

}  // namespace l2rw::testing
