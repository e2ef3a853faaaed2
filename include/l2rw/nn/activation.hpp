// l2rw/nn/activation.hpp — parameter-free layers: ReLU, Sigmoid, Tanh, Flatten.
#pragma once

#include "../autodiff/ops.hpp"
#include "module.hpp"

namespace l2rw::nn {

template <class T, Backend B>
class ReLU : public Module<T, B> {
  public:
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override { return relu(x); }
    [[nodiscard]] std::string type_name() const override { return "ReLU"; }
};

template <class T, Backend B>
class Sigmoid : public Module<T, B> {
  public:
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override { return sigmoid(x); }
    [[nodiscard]] std::string type_name() const override { return "Sigmoid"; }
};

template <class T, Backend B>
class Tanh : public Module<T, B> {
  public:
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override { return tanh(x); }
    [[nodiscard]] std::string type_name() const override { return "Tanh"; }
};

/// [N, ...] -> [N, prod(...)]
template <class T, Backend B>
class Flatten : public Module<T, B> {
  public:
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override {
        if (x.rank() < 1)
            throw ShapeError("Flatten: want at least one axis, got " + x.shape().str());
        const index_t n = x.dim(0);
        return reshape(x, Shape{n, n ? x.numel() / n : 0});
    }
    [[nodiscard]] std::string type_name() const override { return "Flatten"; }
};

}  // namespace l2rw::nn
