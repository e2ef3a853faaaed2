// l2rw/nn/batchnorm.hpp — batch normalisation over features ([N, F]) or channels ([N, C, H, W]).
//
// Modes (see Mode): train normalises with batch statistics and updates the running ones;
// eval normalises with the running statistics; meta normalises with batch statistics and
// leaves the running ones untouched. The batch path is one fused op (functional::
// batch_norm): its value and first-order VJP are the fused kernels of
// backend/batchnorm.hpp, and so is its unrecorded JVP; recorded (create_graph) rules are
// written in Var ops, so that the second derivatives through the mean and the variance are
// exact.
#pragma once

#include <utility>

#include "../autodiff/ops.hpp"
#include "../backend/batchnorm.hpp"
#include "../eager.hpp"
#include "module.hpp"

namespace l2rw::nn {

namespace functional {

/// Batch statistics of one batch_norm call, per channel (constants, for running averages).
template <class T, Backend B>
struct BatchStats {
    Tensor<T, B> mean, var;  // var is biased (divided by the count)
};

/// Batch normalisation of x [N, C] or [N, C, H, W] with its own batch statistics:
/// y = (x − mean)/sqrt(var + eps)·γ + β per channel, for γ, β of shape [C]. `stats`, when
/// given, receives the batch mean and biased variance.
template <class T, Backend B>
Var<T, B> batch_norm(const Var<T, B>& x, const Var<T, B>& gamma, const Var<T, B>& beta, T eps,
                     BatchStats<T, B>* stats = nullptr) {
    if ((x.rank() != 2 && x.rank() != 4) || x.dim(0) < 1)
        throw ShapeError("batch_norm: want [N, C] or [N, C, H, W], got " + x.shape().str());
    const index_t N = x.dim(0), C = x.dim(1), S = x.numel() / std::max<index_t>(N * C, 1);
    if (!(gamma.shape() == Shape{C}) || !(beta.shape() == Shape{C}))
        throw ShapeError("batch_norm: scale " + gamma.shape().str() + " and shift " +
                         beta.shape().str() + " for " + std::to_string(C) + " channels");
    Tensor<T, B> y(x.shape()), mean(Shape{C}), var(Shape{C}), inv(Shape{C});
    batchnorm::forward<T, B>(x.value().data(), gamma.value().data(), beta.value().data(), y.data(),
                             mean.data(), var.data(), inv.data(), eps, N, C, S);
    if (stats) *stats = {mean, var};
    const Shape ss = x.rank() == 2 ? Shape{1, C} : Shape{1, C, 1, 1};
    const T inv_m = T(1) / static_cast<T>(N * S);
    // Recorded rules recompute the statistics from x on the tape, so that what they give
    // can be differentiated again: x̂ and 1/sqrt(var + eps) as Var ops.
    auto normalised = [ss, eps, inv_m](const Var<T, B>& X) {
        const auto d = X - sum_to(X, ss) * inv_m;
        const auto iv = pow(sum_to(d * d, ss) * inv_m + eps, T(-0.5));
        return std::pair{d * iv, iv};
    };
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_in0 | l2rw::detail::keep_in1, "batch_norm", std::move(y),
        {&x, &gamma, &beta},
        [mean, inv, ss, inv_m, normalised, N, C, S](l2rw::detail::VjpContext<T, B>& c) {
            const auto &X = c.in[0], &G = c.gout;
            if (!grad_enabled()) {  // first order: the fused kernel
                Tensor<T, B> gx(X.shape()), gg(Shape{C}), gb(Shape{C});
                batchnorm::backward<T, B>(
                    X.value().data(), G.value().data(), c.in[1].value().data(), mean.data(),
                    inv.data(), c.needs[0] ? gx.data() : nullptr, gg.data(), gb.data(), N, C, S);
                if (c.needs[0]) c.gin[0] = Var<T, B>(gx);
                if (c.needs[1]) c.gin[1] = Var<T, B>(gg);
                if (c.needs[2]) c.gin[2] = Var<T, B>(gb);
                return;
            }
            const auto [xhat, iv] = normalised(X);
            const auto sg = sum_to(G, ss), sgx = sum_to(G * xhat, ss);
            if (c.needs[0])
                c.gin[0] = reshape(c.in[1], ss) * iv * (G - sg * inv_m - xhat * (sgx * inv_m));
            if (c.needs[1]) c.gin[1] = reshape(sgx, Shape{C});
            if (c.needs[2]) c.gin[2] = reshape(sg, Shape{C});
        },
        [mean, inv, ss, inv_m, normalised, N, C, S](const l2rw::detail::JvpContext<T, B>& c) {
            const auto &X = c.in[0], &tx = c.tin[0], &tg = c.tin[1], &tb = c.tin[2];
            if (!grad_enabled()) {  // not recorded: the fused kernel
                Tensor<T, B> t(X.shape());
                batchnorm::tangent<T, B>(
                    X.value().data(), tx.defined() ? tx.value().data() : nullptr,
                    c.in[1].value().data(), tg.defined() ? tg.value().data() : nullptr,
                    tb.defined() ? tb.value().data() : nullptr, mean.data(), inv.data(), t.data(),
                    N, C, S);
                return Var<T, B>(t);
            }
            const auto [xhat, iv] = normalised(X);
            Var<T, B> t;
            if (tx.defined())
                t = reshape(c.in[1], ss) * iv *
                    (tx - sum_to(tx, ss) * inv_m - xhat * (sum_to(tx * xhat, ss) * inv_m));
            if (tg.defined()) t = l2rw::detail::tangent_sum(t, xhat * reshape(tg, ss));
            if (tb.defined())
                t = l2rw::detail::tangent_sum(t, broadcast_to(reshape(tb, ss), X.shape()));
            return t;
        });
}

}  // namespace functional

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
        functional::BatchStats<T, B> st;
        const auto y = functional::batch_norm(x, ctx.param(weight), ctx.param(bias),
                                              static_cast<T>(eps_), &st);
        if (ctx.mode == Mode::train) {
            const T m = static_cast<T>(momentum_);
            const T unbias = static_cast<T>(count) / static_cast<T>(count - 1);
            auto blend = [m](const Tensor<T, B>& run, const Tensor<T, B>& batch) {
                return eager::zip(eager::map(run, kernel::MulScalar<T>{T(1) - m}),
                                  eager::map(batch, kernel::MulScalar<T>{m}), kernel::Add{},
                                  "BatchNorm");
            };
            running_mean = blend(running_mean, st.mean);
            running_var = blend(running_var, eager::map(st.var, kernel::MulScalar<T>{unbias}));
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
