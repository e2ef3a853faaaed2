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
//
// Data-parallel (given a dist::Communicator of P > 1 ranks): each rank passes its part of the
// training and validation batches (data::shard_of; parts may differ in size), every rank holds
// the same parameters, and the step is that of the whole batch. Exact and double_backward:
// ∇L_v summed over ranks (one parameter-sized all-reduce), each rank's u_i for its own
// examples, the u of the whole batch put together (a batch-sized all-reduce) so that Eq. 9's
// normaliser and the skip are those of all n examples, then the weighted gradient summed
// (one parameter-sized all-reduce) and the same optimizer step everywhere. General: the
// lookahead's gradient goes through dist::all_reduce, a differentiable op whose VJP is an
// all-reduce, so θ' and the derivative to ε are global (one all-reduce per parameter tensor
// each way). BatchNorm normalises with each rank's own part of the batch (as PyTorch's DDP
// without SyncBatchNorm); step() then averages the running statistics over ranks. A rank
// whose part fails (a bad batch, a non-finite loss) makes every rank throw DistributedError
// naming it (dist::agree), never a hang.
#pragma once

#include <cmath>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "../autodiff/grad.hpp"
#include "../dist/collective.hpp"
#include "../nn/module.hpp"
#include "batch.hpp"
#include "lookahead.hpp"
#include "meta_gradient.hpp"
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

    /// With `comm` (which must outlive the reweighter) the steps are data-parallel over its
    /// ranks (see the file comment); without, one process.
    explicit OnlineReweighter(Model& model, ReweightOptions opt = {},
                              LossFn<T, B> loss = default_loss<T, B>,
                              const dist::Communicator* comm = nullptr)
        : model_(model), opt_(opt), loss_(std::move(loss)), comm_(&dist::or_single(comm)) {}

    const ReweightOptions& options() const { return opt_; }
    ReweightOptions& options() { return opt_; }
    const dist::Communicator& communicator() const { return *comm_; }

    /// The strategy that `weights` will use for `la`.
    [[nodiscard]] Strategy resolve(const Lookahead<T, B>& la) const {
        return resolve(la, opt_.strategy);
    }

    /// Algorithm 1, lines 1–10: the example weights of `train` measured against `val`, for
    /// the lookahead `la`. The weights do not depend on la's learning rate α (u scales with
    /// it, and the normalisation takes the scale out), but `raw` does: without `la` it is u
    /// at α = 1 (pass the step's lookahead for the u of the step). Data-parallel, the report
    /// is that of the whole batch (every rank's examples, in rank order), on every rank.
    StepReport<T> weights(const Batch<T, B>& train, const Batch<T, B>& val,
                          const Lookahead<T, B>& la = Lookahead<T, B>::sgd(T(1))) {
        return weights_at(train, val, la, engine().layout(train, val));
    }

    /// The raw meta-gradient u = −∂L_v/∂ε (before clipping) for the lookahead `la`, by the
    /// strategy `s` (default: the options' strategy); the same checks and the same path as
    /// weights(), whose `raw` it is (data-parallel: of the whole batch). `report`, when
    /// given, receives the strategy and L_v.
    std::vector<T> meta_gradient(const Batch<T, B>& train, const Batch<T, B>& val,
                                 const Lookahead<T, B>& la,
                                 std::optional<Strategy> s = std::nullopt,
                                 StepReport<T>* report = nullptr) {
        StepReport<T> local;
        StepReport<T>& r = report ? *report : local;
        const auto l = engine().layout(train, val);
        r.strategy = resolve(la, s.value_or(opt_.strategy));
        Tape<T, B> tape;
        return engine().meta_u(tape, train, val, la, opt_.meta_mode, nullptr, r, l).u;
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
            detail::average_buffers(model_, *comm_);
            return ws.report;
        });
    }

    /// step() without the optimizer step: the weights of `train` against `val` for the
    /// lookahead `la`, and (unless the batch is skipped) the gradient of Σ_i w_i f_i(θ) in
    /// train mode, to give to an optimizer. With ReweightOptions::fused_step both come from
    /// one train-mode training forward; BatchNorm's running statistics are then updated
    /// once, and put back when the batch is skipped. Data-parallel: the report and the
    /// gradient of the whole batch (the running statistics are this rank's own).
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
    /// in named_parameters order: the reweighted step's gradient (meta::weighted_gradient;
    /// data-parallel, `train` and `w` are this rank's part and the gradient the whole one).
    std::vector<Tensor<T, B>> weighted_gradient(const Batch<T, B>& train, const std::vector<T>& w,
                                                Rng* rng = nullptr, T* loss_out = nullptr) {
        double loss = 0;
        auto g = meta::weighted_gradient(model_, train, w, loss_, rng, &loss, comm_);
        if (loss_out) *loss_out = static_cast<T>(loss);
        return g;
    }

  private:
    static constexpr const char* who = "OnlineReweighter";
    using Layout = typename detail::MetaGradient<Model>::Layout;

    detail::MetaGradient<Model> engine() const {
        return {model_, loss_, *comm_, opt_.validation_weight_decay, opt_.meta_mode};
    }

    /// This rank's part of the whole batch's weights.
    static std::vector<T> own(const std::vector<T>& w, const Layout& l) {
        return {w.begin() + l.offset, w.begin() + l.offset + l.local};
    }

    StepReport<T> weights_at(const Batch<T, B>& train, const Batch<T, B>& val,
                             const Lookahead<T, B>& la, const Layout& l) {
        StepReport<T> r;
        r.strategy = resolve(la);
        Tape<T, B> tape;
        auto m = engine().meta_u(tape, train, val, la, opt_.meta_mode, nullptr, r, l);
        r.raw = std::move(m.u);
        detail::finish_report(r, m.noisy, opt_.normalize, who);
        return r;
    }

    WeightedStep<T, B> separate_weigh_step(const Batch<T, B>& train, const Batch<T, B>& val,
                                           const Lookahead<T, B>& la, Rng* rng) {
        WeightedStep<T, B> ws;
        const auto l = engine().layout(train, val);
        ws.report = weights_at(train, val, la, l);
        if (!ws.report.skipped)
            ws.gradient = meta::weighted_gradient(model_, train, own(ws.report.weights, l), loss_,
                                                  rng, &ws.loss, comm_);
        return ws;
    }

    WeightedStep<T, B> fused_weigh_step(const Batch<T, B>& train, const Batch<T, B>& val,
                                        const Lookahead<T, B>& la, Rng* rng) {
        WeightedStep<T, B> ws;
        auto& r = ws.report;
        const auto l = engine().layout(train, val);
        r.strategy = resolve(la);
        Tape<T, B> tape;
        auto m = engine().meta_u(tape, train, val, la, nn::Mode::train, rng, r, l);
        r.raw = std::move(m.u);
        detail::finish_report(r, m.noisy, opt_.normalize, who);
        if (r.skipped) return ws;
        std::vector<Tensor<T, B>> g;
        const auto loss = dist::agree(*comm_, 1, [&](std::span<double> out) {
            const auto w = own(r.weights, l);
            const auto f = m.pass.f.value().to_host();
            for (std::size_t i = 0; i < f.size(); ++i)
                out[0] += static_cast<double>(w[i]) * static_cast<double>(f[i]);
            if (comm_->size() == 1 && !std::isfinite(out[0])) return;
            const auto wv = Var<T, B>(Tensor<T, B>::from_host(Shape{l.local}, w));
            for (auto& gk :
                 vjp(m.pass.f, m.pass.bind.vars(), wv, GradOptions{.allow_unused = true}))
                g.push_back(gk.value());
            detail::check_own_gradient(model_, g, train, *comm_, "the weighted loss", "training");
        });
        ws.loss = loss[0];
        if (!std::isfinite(ws.loss))
            throw NumericError("the training loss is not finite (" + std::to_string(ws.loss) + ")");
        ws.gradient = dist::all_reduce_sum(*comm_, g);
        return ws;
    }

    static Strategy resolve(const Lookahead<T, B>& la, Strategy s) {
        if ((s == Strategy::exact || s == Strategy::double_backward) && !la.affine())
            throw ValueError(std::string("OnlineReweighter: the ") + to_string(s) +
                             " strategy needs a lookahead affine in the gradient; an Adam "
                             "lookahead needs the general strategy");
        if (s == Strategy::automatic) return la.affine() ? Strategy::exact : Strategy::general;
        return s;
    }

    Model& model_;
    ReweightOptions opt_;
    LossFn<T, B> loss_;
    const dist::Communicator* comm_;
};

}  // namespace l2rw::meta
