// l2rw/meta/reweighter.hpp — OnlineReweighter<Model>: Algorithm 1 of Ren et al. (2018).
//
// For a training batch and a clean validation batch it returns the example weights
//   u_i = −∂L_v(θ'(ε))/∂ε_i at ε = 0,  w̃ = max(u, 0),  w = w̃ / Σw̃  (Eq. 9, or 0: skipped),
// where θ'(ε) is one lookahead step on L_ε = Σ ε_i f_i(θ). Three strategies:
//   general         — the real lookahead θ' on the tape, the validation forward at θ', and
//                     backward-on-backward to ε; right for any lookahead (Adam included);
//   exact           — for a lookahead affine in the gradient, θ'(ε) = θ − α(s(g + λθ) + c),
//                     the derivative is u_i = αs⟨∇L_v(θ'₀), ∇f_i(θ)⟩ = αs(J_f(θ)·∇L_v)_i
//                     with θ'₀ = θ'(0) (DESIGN.md): one first-order validation backward,
//                     then one training forward whose parameters carry ∇L_v as tangents
//                     (forward mode), which gives f and J_f·∇L_v together. Its tape holds
//                     the training forward only, for the step's first-order backward;
//   double_backward — the same u as exact, got as the official code does: a recorded
//                     (create_graph) training backward and a second backward through it.
//                     It costs about as much as general; it stays for comparison.
// `automatic` picks exact wherever it is exact (every affine rule) and general otherwise.
#pragma once

#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../autodiff/grad.hpp"
#include "../autodiff/jvp.hpp"
#include "../nn/module.hpp"
#include "batch.hpp"
#include "lookahead.hpp"
#include "weighting.hpp"

namespace l2rw::meta {

/// Which lookahead step() takes: plain SGD at the optimizer's learning rate (the paper), or
/// the optimizer's own next step (momentum, Nesterov, weight decay; Adam).
enum class LookaheadRule { sgd, optimizer };

struct ReweightOptions {
    /// Strategy; automatic takes exact for affine lookaheads and general otherwise.
    Strategy strategy = Strategy::automatic;
    /// The lookahead of step().
    LookaheadRule lookahead = LookaheadRule::sgd;
    /// Normalise the weights to sum 1 (Eq. 9); off: w = max(u, 0) as is.
    bool normalize = true;
    /// Add (λ/2)‖θ'‖² to the validation loss, λ the lookahead's weight decay.
    bool validation_weight_decay = false;
    /// How BatchNorm and Dropout behave in the reweighting passes.
    nn::Mode meta_mode = nn::Mode::meta;
    /// step(): take the training forward once, in train mode, and use it both for the
    /// weights and for the reweighted step's gradient (a VJP of the per-example losses with
    /// seed w), instead of a meta-mode forward for the weights and a second, train-mode
    /// forward and backward for the step. BatchNorm gives the same numbers either way (batch
    /// statistics; the running statistics are updated once, and restored when the batch is
    /// skipped); Dropout, if the model has any, is then active in the weights' pass too.
    bool fused_step = true;
};

template <class Model>
class OnlineReweighter {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;

    explicit OnlineReweighter(Model& model, ReweightOptions opt = {},
                              LossFn<T, B> loss = default_loss<T, B>)
        : model_(model), opt_(opt), loss_(std::move(loss)) {}

    const ReweightOptions& options() const { return opt_; }
    ReweightOptions& options() { return opt_; }

    /// The strategy that `weights` will use for `la`.
    [[nodiscard]] Strategy resolve(const Lookahead<T, B>& la) const {
        return resolve(la, opt_.strategy);
    }

    /// Algorithm 1, lines 1–10: the example weights of `train` measured against `val`, for
    /// the lookahead `la`. The weights do not depend on la's learning rate α (u scales with
    /// it, and the normalisation takes the scale out), but `raw` does: without `la` it is u
    /// at α = 1 (pass the step's lookahead for the u of the step).
    StepReport<T> weights(const Batch<T, B>& train, const Batch<T, B>& val,
                          const Lookahead<T, B>& la = Lookahead<T, B>::sgd(T(1))) {
        StepReport<T> r;
        r.raw = meta_gradient(train, val, la, std::nullopt, &r);
        detail::finish_report(r, train, opt_.normalize, who);
        return r;
    }

    /// The raw meta-gradient u = −∂L_v/∂ε (before clipping) for the lookahead `la`, by the
    /// strategy `s` (default: the options' strategy); the same checks and the same path as
    /// weights(), whose `raw` it is. `report`, when given, receives the strategy and L_v.
    std::vector<T> meta_gradient(const Batch<T, B>& train, const Batch<T, B>& val,
                                 const Lookahead<T, B>& la,
                                 std::optional<Strategy> s = std::nullopt,
                                 StepReport<T>* report = nullptr) {
        check_batches(train, val);
        StepReport<T> local;
        StepReport<T>& r = report ? *report : local;
        r.strategy = resolve(la, s.value_or(opt_.strategy));
        Tape<T, B> tape;
        return meta_u(tape, train, val, la, opt_.meta_mode, nullptr, r).u;
    }

    /// Algorithm 1 in full: the weights of `train` against `val` (lookahead as in options),
    /// then the reweighted step Σ_i w_i f_i(θ) with `opt` (SGD or Adam) in train mode. A
    /// skipped batch (all weights zero) changes no parameter, state or buffer but counts as a
    /// step of `opt` (its step count goes up, so Adam's bias correction counts it, as in
    /// meta::train). See ReweightOptions::fused_step.
    ///
    /// Strong exception guarantee: a step that throws (a NumericError for a non-finite
    /// meta-gradient, loss or gradient — its message then names the first example with a
    /// non-finite input, if any) leaves the model's parameters and buffers and the
    /// optimizer exactly as they were.
    template <class Opt>
    StepReport<T> step(const Batch<T, B>& train, const Batch<T, B>& val, Opt& opt,
                       Rng* rng = nullptr) {
        const optim::ParamList<T, B> params(nn::named_parameters(model_));
        const Lookahead<T, B> la = opt_.lookahead == LookaheadRule::sgd
                                       ? Lookahead<T, B>::sgd(static_cast<T>(opt.lr()))
                                       : lookahead_from(opt, params);
        // Its own snapshot: weigh_step restores the buffers when it throws, but opt.step may
        // still throw (a non-finite gradient) after weigh_step has updated them.
        const detail::BufferSnapshot<T, B> snap(model_);
        return detail::guarded_step(snap, std::string(who) + "::step: ", train, &val, [&] {
            auto ws = weigh_step(train, val, la, rng);
            if (!ws.report.skipped)
                opt.step(params, ws.gradient);
            else
                opt.set_step_count(opt.step_count() + 1);
            return ws.report;
        });
    }

    /// step() without the optimizer step: the weights of `train` against `val` for the
    /// lookahead `la`, and (unless the batch is skipped) the gradient of Σ_i w_i f_i(θ) in
    /// train mode, to give to an optimizer. With ReweightOptions::fused_step both come from
    /// one train-mode training forward; BatchNorm's running statistics are then updated
    /// once, and put back when the batch is skipped.
    WeightedStep<T, B> weigh_step(const Batch<T, B>& train, const Batch<T, B>& val,
                                  const Lookahead<T, B>& la, Rng* rng = nullptr) {
        // The buffers are put back when the batch is skipped or anything throws.
        const detail::BufferSnapshot<T, B> saved(model_);
        try {
            auto ws = opt_.fused_step ? fused_weigh_step(train, val, la, rng)
                                      : separate_weigh_step(train, val, la, rng);
            if (ws.report.skipped) saved.restore();
            return ws;
        } catch (...) {
            saved.restore();
            throw;
        }
    }

    /// Gradients of Σ_i w_i f_i(θ) in train mode (BatchNorm running statistics updated),
    /// in named_parameters order: the reweighted step's gradient (meta::weighted_gradient).
    std::vector<Tensor<T, B>> weighted_gradient(const Batch<T, B>& train, const std::vector<T>& w,
                                                Rng* rng = nullptr, T* loss_out = nullptr) {
        double loss = 0;
        auto g = meta::weighted_gradient(model_, train, w, loss_, rng, &loss);
        if (loss_out) *loss_out = static_cast<T>(loss);
        return g;
    }

  private:
    static constexpr const char* who = "OnlineReweighter";

    WeightedStep<T, B> separate_weigh_step(const Batch<T, B>& train, const Batch<T, B>& val,
                                           const Lookahead<T, B>& la, Rng* rng) {
        WeightedStep<T, B> ws;
        ws.report = weights(train, val, la);
        if (!ws.report.skipped)
            ws.gradient =
                meta::weighted_gradient(model_, train, ws.report.weights, loss_, rng, &ws.loss);
        return ws;
    }

    WeightedStep<T, B> fused_weigh_step(const Batch<T, B>& train, const Batch<T, B>& val,
                                        const Lookahead<T, B>& la, Rng* rng) {
        WeightedStep<T, B> ws;
        check_batches(train, val);
        auto& r = ws.report;
        r.strategy = resolve(la);
        Tape<T, B> tape;
        auto m = meta_u(tape, train, val, la, nn::Mode::train, rng, r);
        r.raw = std::move(m.u);
        detail::finish_report(r, train, opt_.normalize, who);
        if (r.skipped) return ws;
        const auto f = m.pass.f.value().to_host();
        for (std::size_t i = 0; i < f.size(); ++i)
            ws.loss += static_cast<double>(r.weights[i]) * static_cast<double>(f[i]);
        if (!std::isfinite(ws.loss))
            throw NumericError("the training loss is not finite (" + std::to_string(ws.loss) + ")");
        const auto w = Var<T, B>(
            Tensor<T, B>::from_host(Shape{static_cast<index_t>(r.weights.size())}, r.weights));
        for (auto& g : vjp(m.pass.f, m.pass.bind.vars(), w, GradOptions{.allow_unused = true}))
            ws.gradient.push_back(g.value());
        return ws;
    }

    static void check_batches(const Batch<T, B>& train, const Batch<T, B>& val) {
        detail::check_batch(train, who, "training");
        detail::check_batch(val, who, "validation");
    }

    Var<T, B> per_example(const Batch<T, B>& b, const nn::Context<T, B>& ctx, const char* what) {
        return detail::per_example(model_, b, loss_, ctx,
                                   std::string(who) + ": the " + what + " batch");
    }

    Var<T, B> validation_loss(const Batch<T, B>& val, const nn::ParamBinding<T, B>& bind,
                              const Lookahead<T, B>& la) {
        nn::Context<T, B> ctx{opt_.meta_mode, &bind, nullptr};
        auto Lv = mean(per_example(val, ctx, "validation"));
        if (opt_.validation_weight_decay && la.weight_decay != T(0)) {
            Var<T, B> reg;
            for (const auto& p : bind.vars()) {
                auto s = sum(p * p);
                reg = reg.defined() ? reg + s : s;
            }
            Lv = Lv + reg * (la.weight_decay / T(2));
        }
        const double lv = static_cast<double>(Lv.item());
        if (!std::isfinite(lv))
            throw NumericError("OnlineReweighter: the validation loss is not finite (" +
                               std::to_string(lv) + ")");
        return Lv;
    }

    static Strategy resolve(const Lookahead<T, B>& la, Strategy s) {
        if ((s == Strategy::exact || s == Strategy::double_backward) && !la.affine())
            throw ValueError(std::string("OnlineReweighter: the ") + to_string(s) +
                             " strategy needs a lookahead affine in the gradient; an Adam "
                             "lookahead needs the general strategy");
        if (s == Strategy::automatic) return la.affine() ? Strategy::exact : Strategy::general;
        return s;
    }

    /// The training forward of a meta pass: parameters and ε as leaves, per-example losses.
    /// With `tangents` the parameters carry them (forward mode), and f carries J_f·tangents.
    struct TrainPass {
        nn::ParamBinding<T, B> bind;
        Var<T, B> eps;
        Var<T, B> f;
    };
    TrainPass train_pass(Tape<T, B>& tape, const Batch<T, B>& train, nn::Mode mode, Rng* rng,
                         const std::vector<Var<T, B>>* tangents = nullptr) {
        TrainPass p;
        p.bind = nn::ParamBinding<T, B>::leaves(model_, tape);
        if (tangents) {
            std::vector<Var<T, B>> duals;
            for (std::size_t k = 0; k < p.bind.size(); ++k)
                duals.push_back(make_dual(p.bind[k], (*tangents)[k]));
            p.bind = p.bind.substitute(std::move(duals));
        } else {
            p.eps = tape.leaf(Tensor<T, B>::zeros(Shape{train.y.numel()}));
        }
        nn::Context<T, B> ctx{mode, &p.bind, rng};
        p.f = per_example(train, ctx, "training");
        return p;
    }

    /// The training pass (on `tape`, for the step's backward) and u by strategy r.strategy.
    struct MetaPass {
        TrainPass pass;
        std::vector<T> u;
    };
    MetaPass meta_u(Tape<T, B>& tape, const Batch<T, B>& train, const Batch<T, B>& val,
                    const Lookahead<T, B>& la, nn::Mode mode, Rng* rng, StepReport<T>& r) {
        MetaPass m;
        if (r.strategy == Strategy::exact) {
            const auto gv = validation_gradient(val, la, r);
            m.pass = train_pass(tape, train, mode, rng, &gv);
            m.u.assign(static_cast<std::size_t>(train.y.numel()), T(0));
            if (!m.pass.f.has_tangent()) return m;  // f does not depend on the parameters
            const auto jf = m.pass.f.tangent().to_host();
            const T c = la.lr * la.scale;
            for (std::size_t i = 0; i < m.u.size(); ++i) m.u[i] = c * jf[i];
            return m;
        }
        m.pass = train_pass(tape, train, mode, rng);
        m.u = r.strategy == Strategy::general ? general_u(m.pass, val, la, r)
                                              : double_backward_u(m.pass, val, la, r);
        return m;
    }

    std::vector<T> general_u(const TrainPass& p, const Batch<T, B>& val, const Lookahead<T, B>& la,
                             StepReport<T>& r) {
        auto g = grad(sum(p.f * p.eps), p.bind.vars(),
                      GradOptions{.create_graph = true, .allow_unused = true});
        auto bind1 = p.bind.substitute(la.apply(p.bind.vars(), g));
        auto Lv = validation_loss(val, bind1, la);
        r.validation_loss = static_cast<double>(Lv.item());
        auto u = grad(Lv, p.eps, GradOptions{.allow_unused = true}).to_host();
        for (auto& v : u) v = -v;
        return u;
    }

    /// ∇L_v at θ'₀ = θ'(g = 0) by one first-order backward on a tape of its own.
    std::vector<Var<T, B>> validation_gradient(const Batch<T, B>& val, const Lookahead<T, B>& la,
                                               StepReport<T>& r) {
        Tape<T, B> tape;
        const auto bind = nn::ParamBinding<T, B>::constants(model_);
        std::vector<Var<T, B>> zeros, theta0;
        for (const auto& v : bind.vars())
            zeros.push_back(Var<T, B>(Tensor<T, B>::zeros(v.shape())));
        {
            NoGradGuard ng;
            for (auto& v : la.apply(bind.vars(), zeros)) theta0.push_back(tape.leaf(v.value()));
        }
        auto Lv = validation_loss(val, bind.substitute(theta0), la);
        r.validation_loss = static_cast<double>(Lv.item());
        return grad(Lv, theta0, GradOptions{.allow_unused = true});
    }

    std::vector<T> double_backward_u(const TrainPass& p, const Batch<T, B>& val,
                                     const Lookahead<T, B>& la, StepReport<T>& r) {
        const auto gv = validation_gradient(val, la, r);
        // u = αs · J_f(θ) ∇L_v: the double-backward VJP of the training gradient.
        auto gt = grad(sum(p.f * p.eps), p.bind.vars(),
                       GradOptions{.create_graph = true, .allow_unused = true});
        Var<T, B> dot;
        for (std::size_t k = 0; k < gt.size(); ++k) {
            if (!gt[k].requires_grad()) continue;  // a parameter the loss does not reach
            auto s = sum(gt[k] * gv[k]);
            dot = dot.defined() ? dot + s : s;
        }
        std::vector<T> u(static_cast<std::size_t>(p.eps.numel()), T(0));
        if (!dot.defined()) return u;
        auto du = grad(dot, p.eps, GradOptions{.allow_unused = true}).to_host();
        const T c = la.lr * la.scale;
        for (std::size_t i = 0; i < u.size(); ++i) u[i] = c * du[i];
        return u;
    }

    Model& model_;
    ReweightOptions opt_;
    LossFn<T, B> loss_;
};

}  // namespace l2rw::meta
