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
#include "../nn/loss.hpp"
#include "../nn/module.hpp"
#include "../optim/adam.hpp"
#include "../optim/sgd.hpp"

namespace l2rw::meta {

enum class Strategy { automatic, general, exact, double_backward };

inline const char* to_string(Strategy s) {
    switch (s) {
        case Strategy::automatic:
            return "automatic";
        case Strategy::general:
            return "general";
        case Strategy::exact:
            return "exact";
        case Strategy::double_backward:
            return "double_backward";
    }
    return "?";
}

/// A training or validation batch: inputs, integer labels, and optionally which examples
/// are known to carry a flipped label (for reporting only; never used for the weights).
template <class T, Backend B>
struct Batch {
    Tensor<T, B> x;
    IndexTensor<B> y;
    std::vector<bool> noisy;  // empty when unknown
};

/// The lookahead step θ' = θ'(g) taken on L_ε. Two families:
/// affine — θ' = θ − lr·(scale·(g + λθ) + offset), offset a per-parameter constant (the
///          momentum term), covering plain SGD (scale 1, λ = 0, no offset), momentum,
///          Nesterov (scale 1 + μ) and weight decay;
/// adam   — one Adam step from the optimizer's moments (not affine in g).
template <class T, Backend B>
struct Lookahead {
    enum class Kind { affine, adam } kind = Kind::affine;
    T lr = T(1);
    T scale = T(1);
    T weight_decay = T(0);
    std::vector<Tensor<T, B>> offset;  // empty: none
    // Adam state (kind == adam)
    std::vector<Tensor<T, B>> adam_m, adam_v;
    T beta1 = T(0.9), beta2 = T(0.999), eps = T(1e-8);
    long adam_step = 0;  // steps already taken

    static Lookahead sgd(T lr) {
        Lookahead l;
        l.lr = lr;
        return l;
    }
    [[nodiscard]] bool affine() const { return kind == Kind::affine; }

    /// θ'(g) in Var ops (recorded on the tape when g is).
    std::vector<Var<T, B>> apply(const std::vector<Var<T, B>>& theta,
                                 const std::vector<Var<T, B>>& g) const {
        std::vector<Var<T, B>> out;
        out.reserve(theta.size());
        for (std::size_t k = 0; k < theta.size(); ++k) {
            Var<T, B> gk = weight_decay != T(0) ? g[k] + theta[k] * weight_decay : g[k];
            if (kind == Kind::affine) {
                Var<T, B> d = scale != T(1) ? gk * scale : gk;
                if (!offset.empty()) d = d + Var<T, B>(offset[k]);
                out.push_back(theta[k] - d * lr);
            } else {
                const long t = adam_step + 1;
                const T bc1 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta1),
                                                             static_cast<double>(t)));
                const T bc2 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta2),
                                                             static_cast<double>(t)));
                auto m = Var<T, B>(adam_m[k]) * beta1 + gk * (T(1) - beta1);
                auto v = Var<T, B>(adam_v[k]) * beta2 + gk * gk * (T(1) - beta2);
                out.push_back(theta[k] - (m * (lr / bc1)) / (sqrt(v * (T(1) / bc2)) + eps));
            }
        }
        return out;
    }
};

/// The lookahead that is the next step of `opt` on `params` as a function of the gradient:
/// θ'(g) = θ − lr·d(g), with d the optimizer's own direction (momentum, Nesterov, dampening
/// and weight decay included). d is affine in g: slope direction_gradient_scale(), and
/// offset d(0) − scale·λθ (the momentum term), so the exact strategy applies.
template <class T, Backend B>
Lookahead<T, B> lookahead_from(const optim::SGD<T, B>& opt, const optim::ParamList<T, B>& params) {
    Lookahead<T, B> la;
    la.lr = static_cast<T>(opt.lr());
    la.weight_decay = static_cast<T>(opt.options().weight_decay);
    std::vector<Tensor<T, B>> zeros;
    for (std::size_t i = 0; i < params.size(); ++i)
        zeros.push_back(Tensor<T, B>::zeros(params[i].shape()));
    const auto d0 = opt.direction(params, zeros);
    bool any_offset = false;
    for (std::size_t i = 0; i < params.size(); ++i) {
        // Every parameter has one slope; check it is the one of parameter 0.
        const auto s = static_cast<T>(opt.direction_gradient_scale(i));
        if (i == 0) la.scale = s;
        if (s != la.scale)
            throw ValueError("lookahead_from(SGD): parameters have different gradient slopes (" +
                             std::to_string(static_cast<double>(s)) + " vs " +
                             std::to_string(static_cast<double>(la.scale)) + ")");
        // offset = d(0) − scale·λθ
        auto off = eager::zip(
            d0[i], eager::map(params[i], kernel::MulScalar<T>{la.scale * la.weight_decay}),
            kernel::Sub{}, "lookahead_from");
        any_offset = any_offset || (i < opt.num_params() && opt.momentum_buffer(i).has_value());
        la.offset.push_back(std::move(off));
    }
    if (!any_offset) la.offset.clear();  // no momentum yet: d(0) is exactly scale·λθ
    return la;
}

/// The lookahead that is the next Adam step of `opt` (not affine in the gradient).
template <class T, Backend B>
Lookahead<T, B> lookahead_from(const optim::Adam<T, B>& opt, const optim::ParamList<T, B>& params) {
    Lookahead<T, B> la;
    la.kind = Lookahead<T, B>::Kind::adam;
    const auto& o = opt.options();
    la.lr = static_cast<T>(o.lr);
    la.beta1 = static_cast<T>(o.beta1);
    la.beta2 = static_cast<T>(o.beta2);
    la.eps = static_cast<T>(o.eps);
    la.weight_decay = static_cast<T>(o.weight_decay);
    la.adam_step = static_cast<long>(opt.step_count());
    for (std::size_t i = 0; i < params.size(); ++i) {
        const bool has = i < opt.num_params() && opt.exp_avg(i).has_value();
        la.adam_m.push_back(has ? *opt.exp_avg(i) : Tensor<T, B>::zeros(params[i].shape()));
        la.adam_v.push_back(has ? *opt.exp_avg_sq(i) : Tensor<T, B>::zeros(params[i].shape()));
    }
    return la;
}

template <class T, Backend B>
using LossFn = std::function<Var<T, B>(const Var<T, B>& outputs, const IndexTensor<B>& labels)>;

/// Per-example loss matching the head: binary cross-entropy for one output, else softmax CE.
template <class T, Backend B>
Var<T, B> default_loss(const Var<T, B>& out, const IndexTensor<B>& y) {
    if (out.rank() == 2 && out.dim(1) == 1)
        return nn::binary_cross_entropy(out, y, nn::Reduction::none);
    return nn::cross_entropy(out, y, nn::Reduction::none);
}

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

template <class T>
struct StepReport {
    std::vector<T> weights;      // w
    std::vector<T> raw;          // u (before clipping and normalisation)
    index_t zero_count = 0;      // examples with w == 0
    double validation_loss = 0;  // L_v at θ'₀ (exact) or θ' (general), ε = 0
    bool skipped = false;        // all weights zero: the batch gives no step
    Strategy strategy = Strategy::general;
    std::optional<double> noisy_mass;  // Σ w over flagged-noisy examples / Σ w
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

    /// Algorithm 1, lines 1–10: the example weights of `train` measured against `val`.
    StepReport<T> weights(const Batch<T, B>& train, const Batch<T, B>& val,
                          const Lookahead<T, B>& la = Lookahead<T, B>::sgd(T(1))) {
        check_batch(train, "training");
        check_batch(val, "validation");
        StepReport<T> r;
        r.strategy = resolve(la);
        Tape<T, B> tape;
        finish(meta_u(tape, train, val, la, opt_.meta_mode, nullptr, r).u, train, r);
        return r;
    }

    /// The raw meta-gradient u = −∂L_v/∂ε (before clipping), by the given strategy.
    std::vector<T> meta_gradient(const Batch<T, B>& train, const Batch<T, B>& val,
                                 const Lookahead<T, B>& la, Strategy s) {
        StepReport<T> r;
        r.strategy = resolve(la, s);
        Tape<T, B> tape;
        return meta_u(tape, train, val, la, opt_.meta_mode, nullptr, r).u;
    }

    /// Algorithm 1 in full: the weights of `train` against `val` (lookahead as in options),
    /// then the reweighted step Σ_i w_i f_i(θ) with `opt` (SGD or Adam) in train mode. A
    /// skipped batch (all weights zero) takes no step. See ReweightOptions::fused_step.
    template <class Opt>
    StepReport<T> step(const Batch<T, B>& train, const Batch<T, B>& val, Opt& opt,
                       Rng* rng = nullptr) {
        const optim::ParamList<T, B> params(nn::named_parameters(model_));
        const Lookahead<T, B> la = opt_.lookahead == LookaheadRule::sgd
                                       ? Lookahead<T, B>::sgd(static_cast<T>(opt.lr()))
                                       : lookahead_from(opt, params);
        if (!opt_.fused_step) {
            auto r = weights(train, val, la);
            if (!r.skipped) opt.step(params, weighted_gradient(train, r.weights, rng));
            return r;
        }
        check_batch(train, "training");
        check_batch(val, "validation");
        StepReport<T> r;
        r.strategy = resolve(la);
        // Buffers are replaced, not written, by a train-mode forward: keeping the old
        // Tensors keeps the old statistics, to put back if the batch is skipped.
        std::vector<std::pair<Tensor<T, B>*, Tensor<T, B>>> saved;
        for (auto& [name, t, kind] : nn::named_tensors(model_))
            if (kind == nn::Kind::buffer) saved.emplace_back(t, *t);
        Tape<T, B> tape;
        const auto m = meta_u(tape, train, val, la, nn::Mode::train, rng, r);
        const auto& pass = m.pass;
        finish(m.u, train, r);
        if (r.skipped) {
            for (auto& [t, old] : saved) *t = old;
            return r;
        }
        const auto w = Var<T, B>(
            Tensor<T, B>::from_host(Shape{static_cast<index_t>(r.weights.size())}, r.weights));
        const auto g = vjp(pass.f, pass.bind.vars(), w, GradOptions{.allow_unused = true});
        opt.step(params, g);
        return r;
    }

    /// Gradients of Σ_i w_i f_i(θ) in train mode (BatchNorm running statistics updated),
    /// in named_parameters order: the reweighted step's gradient.
    std::vector<Tensor<T, B>> weighted_gradient(const Batch<T, B>& train, const std::vector<T>& w,
                                                Rng* rng = nullptr, T* loss_out = nullptr) {
        Tape<T, B> tape;
        auto bind = nn::ParamBinding<T, B>::leaves(model_, tape);
        nn::Context<T, B> ctx{nn::Mode::train, &bind, rng};
        auto f = per_example(train, ctx, "training");
        const auto wv =
            Var<T, B>(Tensor<T, B>::from_host(Shape{static_cast<index_t>(w.size())}, w));
        auto L = nn::weighted_sum(f, wv);
        if (loss_out) *loss_out = L.item();
        auto g = grad(L, bind.vars());
        std::vector<Tensor<T, B>> out;
        for (auto& v : g) out.push_back(v.value());
        return out;
    }

  private:
    static void check_batch(const Batch<T, B>& b, const char* what) {
        if (b.x.rank() < 1 || b.y.rank() != 1 || b.x.dim(0) != b.y.numel() || b.y.numel() == 0)
            throw ShapeError(std::string("OnlineReweighter: ") + what + " batch has inputs " +
                             b.x.shape().str() + " and labels " + b.y.shape().str() +
                             " (want N > 0 examples in both)");
        if (!b.noisy.empty() && static_cast<index_t>(b.noisy.size()) != b.y.numel())
            throw ShapeError(std::string("OnlineReweighter: ") + what + " batch has " +
                             std::to_string(b.noisy.size()) + " noise flags for " +
                             std::to_string(b.y.numel()) + " examples");
    }

    Var<T, B> per_example(const Batch<T, B>& b, const nn::Context<T, B>& ctx, const char* what) {
        auto f = loss_(model_.forward(Var<T, B>(b.x), ctx), b.y);
        if (f.rank() != 1 || f.numel() != b.y.numel())
            throw ShapeError(std::string("OnlineReweighter: the loss of the ") + what +
                             " batch has shape " + f.shape().str() +
                             ", want one value per example [" + std::to_string(b.y.numel()) + "]");
        return f;
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

    void finish(const std::vector<T>& u, const Batch<T, B>& train, StepReport<T>& r) const {
        r.raw = u;
        r.weights.resize(u.size());
        T total = T(0);
        for (std::size_t i = 0; i < u.size(); ++i) {
            if (!std::isfinite(static_cast<double>(u[i])))
                throw NumericError("OnlineReweighter: meta-gradient of example " +
                                   std::to_string(i) + " is not finite");
            r.weights[i] = u[i] > T(0) ? u[i] : T(0);
            total += r.weights[i];
        }
        if (opt_.normalize) {
            if (total > T(0)) {
                for (auto& w : r.weights) w /= total;
            } else {
                std::fill(r.weights.begin(), r.weights.end(), T(0));
            }
        }
        r.skipped = !(total > T(0));
        r.zero_count = 0;
        for (auto w : r.weights) r.zero_count += w == T(0);
        if (!train.noisy.empty()) {
            double noisy = 0, all = 0;
            for (std::size_t i = 0; i < r.weights.size(); ++i) {
                all += static_cast<double>(r.weights[i]);
                if (train.noisy[i]) noisy += static_cast<double>(r.weights[i]);
            }
            r.noisy_mass = all > 0 ? noisy / all : 0.0;
        }
    }

    Model& model_;
    ReweightOptions opt_;
    LossFn<T, B> loss_;
};

}  // namespace l2rw::meta
