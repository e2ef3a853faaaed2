// l2rw/nn/dropout.hpp — inverted dropout with seeded masks.
//
// In train mode each element is kept with probability 1 - p and scaled by 1 / (1 - p); the
// mask is drawn on the host from the Context's Rng, so a seed gives the same mask on every
// backend. In eval and in meta mode dropout is the identity. Meta passes are deterministic
// on purpose: the reweighting weights compare the training and validation gradients of one
// model, and a fresh random mask in each of those passes would make the weights noisy and
// would break the exact agreement of the two meta-gradient strategies (and their checks).
#pragma once

#include <vector>

#include "../autodiff/ops.hpp"
#include "module.hpp"

namespace l2rw::nn {

template <class T, Backend B>
class Dropout : public Module<T, B> {
  public:
    explicit Dropout(double p) : p_(p) {
        if (!(p >= 0.0 && p < 1.0))
            throw ValueError("Dropout: probability " + std::to_string(p) + " not in [0, 1)");
    }
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        if (ctx.mode != Mode::train || p_ == 0.0) return x;
        if (!ctx.rng)
            throw ValueError("Dropout: train mode needs a Context with an Rng for its masks");
        std::vector<T> m(static_cast<std::size_t>(x.numel()));
        const T keep = static_cast<T>(1.0 / (1.0 - p_));
        for (auto& v : m) v = ctx.rng->uniform() < p_ ? T(0) : keep;
        return x * Var<T, B>(Tensor<T, B>::from_host(x.shape(), m));
    }
    [[nodiscard]] std::string type_name() const override { return "Dropout"; }
    [[nodiscard]] double p() const { return p_; }

  private:
    double p_;
};

}  // namespace l2rw::nn
