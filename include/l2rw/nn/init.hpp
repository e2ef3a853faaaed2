// l2rw/nn/init.hpp — seeded He and Glorot initialisation. The numbers are drawn on the
// host from l2rw::Rng, so one seed gives the same model on every backend.
#pragma once

#include <cmath>
#include <vector>

#include "../random.hpp"
#include "../tensor.hpp"

namespace l2rw::nn::init {

/// He (Kaiming) normal: N(0, 2 / fan_in), for layers followed by ReLU.
template <class T, Backend B>
Tensor<T, B> he_normal(const Shape& s, index_t fan_in, Rng& rng) {
    const double sd = std::sqrt(2.0 / static_cast<double>(fan_in));
    std::vector<T> h(static_cast<std::size_t>(s.numel()));
    for (auto& v : h) v = static_cast<T>(rng.normal(0.0, sd));
    return Tensor<T, B>::from_host(s, h);
}

/// Glorot (Xavier) uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
template <class T, Backend B>
Tensor<T, B> glorot_uniform(const Shape& s, index_t fan_in, index_t fan_out, Rng& rng) {
    const double a = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    std::vector<T> h(static_cast<std::size_t>(s.numel()));
    for (auto& v : h) v = static_cast<T>(rng.uniform(-a, a));
    return Tensor<T, B>::from_host(s, h);
}

/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for biases.
template <class T, Backend B>
Tensor<T, B> fan_in_uniform(const Shape& s, index_t fan_in, Rng& rng) {
    const double a = 1.0 / std::sqrt(static_cast<double>(fan_in));
    std::vector<T> h(static_cast<std::size_t>(s.numel()));
    for (auto& v : h) v = static_cast<T>(rng.uniform(-a, a));
    return Tensor<T, B>::from_host(s, h);
}

enum class Scheme { he, glorot };

}  // namespace l2rw::nn::init
