// l2rw/nn/conv.hpp — 2-d convolution layer (im2col + GEMM), weights [O, C, K, K].
#pragma once

#include "functional.hpp"
#include "init.hpp"
#include "module.hpp"

namespace l2rw::nn {

template <class T, Backend B>
class Conv2d : public Module<T, B> {
  public:
    Conv2d(index_t in, index_t out, index_t kernel, Rng& rng, index_t stride = 1, index_t pad = 0,
           bool bias = true)
        : in_(in), out_(out), k_(kernel), stride_(stride), pad_(pad), has_bias_(bias) {
        if (in <= 0 || out <= 0 || kernel <= 0 || stride <= 0 || pad < 0)
            throw ValueError("Conv2d: channels " + std::to_string(in) + " -> " +
                             std::to_string(out) + ", kernel " + std::to_string(kernel) +
                             ", stride " + std::to_string(stride) + ", padding " +
                             std::to_string(pad) + " are not valid");
        weight = init::he_normal<T, B>(Shape{out, in, kernel, kernel}, in * kernel * kernel, rng);
        if (bias) this->bias = Tensor<T, B>::zeros(Shape{out});
    }

    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        return functional::conv2d(x, ctx.param(weight), has_bias_ ? ctx.param(bias) : Var<T, B>(),
                                  stride_, pad_);
    }
    void visit(const std::string& prefix, const Visitor<T, B>& v) override {
        v(join_name(prefix, "weight"), weight, Kind::parameter);
        if (has_bias_) v(join_name(prefix, "bias"), bias, Kind::parameter);
    }
    [[nodiscard]] std::string type_name() const override { return "Conv2d"; }

    Tensor<T, B> weight, bias;

  private:
    index_t in_, out_, k_, stride_, pad_;
    bool has_bias_;
};

}  // namespace l2rw::nn
