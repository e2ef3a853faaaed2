// l2rw/nn/batchnorm.hpp — batch normalisation over features ([N, F]) or channels ([N, C, H, W]).
//
// Modes (see Mode): train normalises with batch statistics and updates the running ones;
// eval normalises with the running statistics; meta normalises with batch statistics and
// leaves the running ones untouched. The batch path is written in Var ops, so its first and
// second derivatives (through the mean and the variance) are exact.
#pragma once

#include "../autodiff/ops.hpp"
#include "../eager.hpp"
#include "module.hpp"

namespace l2rw::nn {

template <class T, Backend B>
class BatchNorm : public Module<T, B> {
  public:
    /// `rank` 2 normalises the features of [N, F]; rank 4 the channels of [N, C, H, W].
    BatchNorm(index_t features, int rank, double momentum = 0.1, double eps = 1e-5)
        : f_(features), rank_(rank), momentum_(momentum), eps_(eps) {
        if (features <= 0 || (rank != 2 && rank != 4))
            throw ValueError("BatchNorm: " + std::to_string(features) + " features over rank " +
                             std::to_string(rank) + " input is not valid (rank 2 or 4)");
        weight = Tensor<T, B>::ones(Shape{features});
        bias = Tensor<T, B>::zeros(Shape{features});
        running_mean = Tensor<T, B>::zeros(Shape{features});
        running_var = Tensor<T, B>::ones(Shape{features});
    }

    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        if (x.rank() != rank_ || x.dim(1) != f_)
            throw ShapeError("BatchNorm(" + std::to_string(f_) + "): want input " +
                             (rank_ == 2 ? "[N, " + std::to_string(f_) + "]"
                                         : "[N, " + std::to_string(f_) + ", H, W]") +
                             ", got " + x.shape().str());
        const Shape ss = rank_ == 2 ? Shape{1, f_} : Shape{1, f_, 1, 1};
        const index_t count = x.numel() / f_;
        const auto gamma = reshape(ctx.param(weight), ss), beta = reshape(ctx.param(bias), ss);
        if (ctx.mode == Mode::eval) {
            const Var<T, B> mu(running_mean.reshape(ss));
            const Var<T, B> inv(
                eager::map(eager::map(running_var, kernel::AddScalar<T>{static_cast<T>(eps_)}),
                           kernel::PowScalar<T>{T(-0.5)})
                    .reshape(ss));
            return (x - mu) * inv * gamma + beta;
        }
        if (count < 2 && ctx.mode == Mode::train)
            throw ValueError(
                "BatchNorm: training needs more than one value per feature, got input " +
                x.shape().str());
        const T inv_n = T(1) / static_cast<T>(count);
        const auto mu = sum_to(x, ss) * inv_n;
        const auto d = x - mu;
        const auto var = sum_to(d * d, ss) * inv_n;
        const auto y = d * pow(var + static_cast<T>(eps_), T(-0.5)) * gamma + beta;
        if (ctx.mode == Mode::train) {
            const T m = static_cast<T>(momentum_);
            const T unbias = static_cast<T>(count) / static_cast<T>(count - 1);
            auto blend = [m](const Tensor<T, B>& run, const Tensor<T, B>& batch) {
                return eager::zip(eager::map(run, kernel::MulScalar<T>{T(1) - m}),
                                  eager::map(batch, kernel::MulScalar<T>{m}), kernel::Add{},
                                  "BatchNorm");
            };
            running_mean = blend(running_mean, mu.value().reshape(Shape{f_}));
            running_var =
                blend(running_var,
                      eager::map(var.value(), kernel::MulScalar<T>{unbias}).reshape(Shape{f_}));
        }
        return y;
    }

    void visit(const std::string& prefix, const Visitor<T, B>& v) override {
        v(join_name(prefix, "weight"), weight, Kind::parameter);
        v(join_name(prefix, "bias"), bias, Kind::parameter);
        v(join_name(prefix, "running_mean"), running_mean, Kind::buffer);
        v(join_name(prefix, "running_var"), running_var, Kind::buffer);
    }
    [[nodiscard]] std::string type_name() const override {
        return rank_ == 2 ? "BatchNorm1d" : "BatchNorm2d";
    }

    Tensor<T, B> weight, bias, running_mean, running_var;

  private:
    index_t f_;
    int rank_;
    double momentum_, eps_;
};

}  // namespace l2rw::nn
