// l2rw/nn/linear.hpp — fully connected layer: y = x Wᵀ + b, W of shape [out, in].
#pragma once

#include "../autodiff/ops.hpp"
#include "init.hpp"
#include "module.hpp"

namespace l2rw::nn {

template <class T, Backend B>
class Linear : public Module<T, B> {
  public:
    Linear(index_t in, index_t out, Rng& rng, bool bias = true,
           init::Scheme scheme = init::Scheme::he)
        : in_(in), out_(out), has_bias_(bias) {
        if (in <= 0 || out <= 0)
            throw ValueError("Linear: sizes " + std::to_string(in) + " -> " + std::to_string(out) +
                             " are not valid");
        weight = scheme == init::Scheme::he
                     ? init::he_normal<T, B>(Shape{out, in}, in, rng)
                     : init::glorot_uniform<T, B>(Shape{out, in}, in, out, rng);
        if (bias) this->bias = Tensor<T, B>::zeros(Shape{out});
    }

    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        if (x.rank() != 2 || x.dim(1) != in_)
            throw ShapeError("Linear(" + std::to_string(in_) + " -> " + std::to_string(out_) +
                             "): want input [N, " + std::to_string(in_) + "], got " +
                             x.shape().str());
        auto y = matmul(x, ctx.param(weight), false, true);
        return has_bias_ ? y + ctx.param(bias) : y;
    }
    void visit(const std::string& prefix, const Visitor<T, B>& v) override {
        v(join_name(prefix, "weight"), weight, Kind::parameter);
        if (has_bias_) v(join_name(prefix, "bias"), bias, Kind::parameter);
    }
    [[nodiscard]] std::string type_name() const override { return "Linear"; }

    Tensor<T, B> weight, bias;

  private:
    index_t in_, out_;
    bool has_bias_;
};

}  // namespace l2rw::nn
