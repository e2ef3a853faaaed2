// l2rw/nn/pool.hpp — max, average and global average pooling layers.
#pragma once

#include "functional.hpp"
#include "module.hpp"

namespace l2rw::nn {

template <class T, Backend B>
class MaxPool2d : public Module<T, B> {
  public:
    explicit MaxPool2d(index_t k, index_t stride = 0, index_t pad = 0)
        : k_(k), s_(stride ? stride : k), p_(pad) {}
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override {
        return functional::max_pool2d(x, k_, s_, p_);
    }
    [[nodiscard]] std::string type_name() const override { return "MaxPool2d"; }

  private:
    index_t k_, s_, p_;
};

template <class T, Backend B>
class AvgPool2d : public Module<T, B> {
  public:
    explicit AvgPool2d(index_t k, index_t stride = 0) : k_(k), s_(stride ? stride : k) {}
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override {
        return functional::avg_pool2d(x, k_, s_);
    }
    [[nodiscard]] std::string type_name() const override { return "AvgPool2d"; }

  private:
    index_t k_, s_;
};

/// [N, C, H, W] -> [N, C]
template <class T, Backend B>
class GlobalAvgPool : public Module<T, B> {
  public:
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>&) override {
        return functional::global_avg_pool(x);
    }
    [[nodiscard]] std::string type_name() const override { return "GlobalAvgPool"; }
};

}  // namespace l2rw::nn
