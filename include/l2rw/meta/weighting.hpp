// l2rw/meta/weighting.hpp — what every way of weighting a batch shares (OnlineReweighter,
// the policies of policies.hpp, meta::train): the per-example loss, the step's report and
// how it is finished, and the gradient of the weighted loss Σ_i w_i f_i(θ).
#pragma once

#include <cmath>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "../autodiff/grad.hpp"
#include "../dist/collective.hpp"
#include "../nn/loss.hpp"
#include "../nn/module.hpp"
#include "../optim/lists.hpp"
#include "batch.hpp"

namespace l2rw::meta {

/// How OnlineReweighter computes the meta-gradient u (reweighter.hpp).
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

template <class T, Backend B>
using LossFn = std::function<Var<T, B>(const Var<T, B>& outputs, const IndexTensor<B>& labels)>;

/// Per-example loss matching the head: binary cross-entropy for one output, else softmax CE.
template <class T, Backend B>
Var<T, B> default_loss(const Var<T, B>& out, const IndexTensor<B>& y) {
    if (out.rank() == 2 && out.dim(1) == 1)
        return nn::binary_cross_entropy(out, y, nn::Reduction::none);
    return nn::cross_entropy(out, y, nn::Reduction::none);
}

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

/// A step's weights and the gradient of Σ_i w_i f_i(θ) to take it with.
template <class T, Backend B>
struct WeightedStep {
    StepReport<T> report;
    std::vector<Tensor<T, B>> gradient;  // named_parameters order; empty when skipped
    double loss = 0;                     // Σ_i w_i f_i(θ) (0 when skipped)
};

namespace detail {

/// Throws NumericError, naming `who` and the example (`first` + its position), for the first
/// non-finite value of `raw` (the meta-gradients u of a batch, or of a rank's part of one).
template <class T>
void check_finite_raw(const std::vector<T>& raw, const std::string& who, index_t first = 0) {
    for (std::size_t i = 0; i < raw.size(); ++i)
        if (!std::isfinite(static_cast<double>(raw[i])))
            throw NumericError(who + ": the meta-gradient (raw weight) of example " +
                               std::to_string(first + static_cast<index_t>(i)) +
                               " is not finite (" + std::to_string(static_cast<double>(raw[i])) +
                               ")");
}

/// zero_count, skipped (Σw = 0: the batch gives no step; summed in double) and the weight
/// mass on the examples that `noisy` flags (a batch's noise flags, or empty), of a report
/// whose weights are set.
template <class T>
void summarise_report(StepReport<T>& r, const std::vector<bool>& noisy) {
    double total = 0;
    r.zero_count = 0;
    for (T w : r.weights) {
        total += static_cast<double>(w);
        r.zero_count += w == T(0);
    }
    r.skipped = !(total > 0);
    r.noisy_mass.reset();
    if (!noisy.empty()) {
        double mass = 0;
        for (std::size_t i = 0; i < r.weights.size(); ++i)
            if (noisy[i]) mass += static_cast<double>(r.weights[i]);
        r.noisy_mass = total > 0 ? mass / total : 0.0;
    }
}

/// Finishes a report from its raw values u: w̃ = max(u, 0) and, with `normalize`, w = w̃/Σw̃
/// (Eq. 9; all zero when Σw̃ is 0, summed in double), then summarise_report with the
/// batch's noise flags `noisy`. Throws NumericError, naming `who` and the example, for a
/// non-finite u.
template <class T>
void finish_report(StepReport<T>& r, const std::vector<bool>& noisy, bool normalize,
                   const std::string& who) {
    check_finite_raw(r.raw, who);
    r.weights.resize(r.raw.size());
    double total = 0;
    for (std::size_t i = 0; i < r.raw.size(); ++i) {
        const T u = r.raw[i];
        r.weights[i] = u > T(0) ? u : T(0);
        total += static_cast<double>(r.weights[i]);
    }
    if (normalize)
        for (auto& w : r.weights)
            w = total > 0 ? static_cast<T>(static_cast<double>(w) / total) : T(0);
    summarise_report(r, noisy);
}

/// A copy of a model's buffers (BatchNorm's running statistics) to put back: a step that
/// throws, or a skipped batch, must leave the model as it was. Deep copies, so that a layer
/// that wrote a buffer in place is undone too (buffers are small: one value per channel).
template <class T, Backend B>
class BufferSnapshot {
  public:
    explicit BufferSnapshot(nn::Module<T, B>& m) {
        for (auto& [name, t, kind] : nn::named_tensors(m))
            if (kind == nn::Kind::buffer) saved_.emplace_back(t, t->clone());
    }
    void restore() const {
        for (const auto& [t, old] : saved_) *t = old.clone();
    }

  private:
    std::vector<std::pair<Tensor<T, B>*, Tensor<T, B>>> saved_;
};

/// "; example i (row r) of the <what> batch has a non-finite input (nan)" for the first
/// such example of `b`, or "" when every input is finite: what a NumericError of a step
/// adds, so that the message names the example that caused it.
template <class T, Backend B>
std::string nonfinite_input(const Batch<T, B>& b, const char* what) {
    const auto n = static_cast<std::size_t>(b.y.numel());
    if (n == 0 || std::isfinite(static_cast<double>(B::sum(b.x.data(), b.x.numel())))) return "";
    const auto x = b.x.to_host();
    const std::size_t per = x.size() / n;
    for (std::size_t e = 0; e < x.size(); ++e) {
        if (std::isfinite(static_cast<double>(x[e]))) continue;
        const std::size_t i = e / per;
        std::string row = i < b.indices.size()
                              ? " (row " + std::to_string(b.indices[i]) + " of its dataset)"
                              : "";
        return "; example " + std::to_string(i) + row + " of the " + what +
               " batch has a non-finite input (" + std::to_string(static_cast<double>(x[e])) +
               " at element " + std::to_string(e % per) + ")";
    }
    return "";
}

/// With P > 1 ranks, throws NumericError (naming `loss`, the parameter, and the first
/// non-finite input of `b`, the `what` batch) unless this rank's gradient `g` is finite: a NaN
/// that only this rank's part of a batch produced (a NaN pixel that relu hid from the loss,
/// say) is then that rank's failure, before an all-reduce spreads it to every rank. One
/// process: nothing (the optimizer checks the gradient it is given).
template <class T, Backend B>
void check_own_gradient(nn::Module<T, B>& model, const std::vector<Tensor<T, B>>& g,
                        const Batch<T, B>& b, const dist::Communicator& c, const char* loss,
                        const char* what) {
    if (c.size() == 1) return;
    const optim::ParamList<T, B> params(nn::named_parameters(model));
    try {
        optim::detail::check_finite(loss, params, optim::GradList<T, B>(g));
    } catch (const NumericError& e) {
        throw NumericError(e.what() + nonfinite_input(b, what));
    }
}

/// Runs `f`; when it throws NumericError, rethrows it as `prefix` + its message + the first
/// non-finite input of `train` or `val` (if any), and a DistributedError with `prefix` too.
/// Any exception first restores `snap`.
template <class T, Backend B, class F>
auto guarded_step(const BufferSnapshot<T, B>& snap, const std::string& prefix,
                  const Batch<T, B>& train, const Batch<T, B>* val, F&& f) {
    try {
        return f();
    } catch (const NumericError& e) {
        snap.restore();
        std::string where = nonfinite_input(train, "training");
        if (where.empty() && val) where = nonfinite_input(*val, "validation");
        throw NumericError(prefix + e.what() + where);
    } catch (const DistributedError& e) {
        snap.restore();
        throw DistributedError(e.failed_rank(), prefix + e.what());
    } catch (...) {
        snap.restore();
        throw;
    }
}

/// f = loss(model(b.x)), checked to hold one value per example.
template <class Model>
Var<typename Model::value_type, typename Model::backend> per_example(
    Model& model, const Batch<typename Model::value_type, typename Model::backend>& b,
    const LossFn<typename Model::value_type, typename Model::backend>& loss,
    const nn::Context<typename Model::value_type, typename Model::backend>& ctx,
    const std::string& who) {
    auto f = loss(model.forward(Var<typename Model::value_type, typename Model::backend>(b.x), ctx),
                  b.y);
    if (f.rank() != 1 || f.numel() != b.y.numel())
        throw ShapeError(who + ": the loss has shape " + f.shape().str() +
                         ", want one value per example [" + std::to_string(b.y.numel()) + "]");
    return f;
}

}  // namespace detail

/// Gradients (named_parameters order) of Σ_i w_i f_i(θ), f = `loss`, in train mode: BatchNorm
/// running statistics are updated and dropout draws its masks from `rng`. The loss value goes
/// to *loss_out when given; a non-finite one is a NumericError. With a communicator of P > 1
/// ranks, `b` and `w` are this rank's part of the batch and its weights, and the loss and
/// the gradient are those of the whole batch (summed over ranks, the same on every rank).
template <class Model>
std::vector<Tensor<typename Model::value_type, typename Model::backend>> weighted_gradient(
    Model& model, const Batch<typename Model::value_type, typename Model::backend>& b,
    const std::vector<typename Model::value_type>& w,
    const LossFn<typename Model::value_type, typename Model::backend>& loss, Rng* rng = nullptr,
    double* loss_out = nullptr, const dist::Communicator* comm = nullptr) {
    using T = typename Model::value_type;
    using B = typename Model::backend;
    const auto& c = dist::or_single(comm);
    std::vector<Tensor<T, B>> out;
    const auto sum = dist::agree(c, 1, [&](std::span<double> local) {
        if (static_cast<index_t>(w.size()) != b.y.numel())
            throw ShapeError("weighted_gradient: " + std::to_string(w.size()) + " weights for " +
                             std::to_string(b.y.numel()) + " examples");
        Tape<T, B> tape;
        auto bind = nn::ParamBinding<T, B>::leaves(model, tape);
        nn::Context<T, B> ctx{nn::Mode::train, &bind, rng};
        auto f = detail::per_example(model, b, loss, ctx, "weighted_gradient");
        auto L = nn::weighted_sum(f, Var<T, B>(Tensor<T, B>::from_host(Shape{b.y.numel()}, w)));
        local[0] = static_cast<double>(L.item());
        // One rank stops at a non-finite loss before its backward; with more, every rank
        // sees the sum first, and all of them throw alike below.
        if (c.size() == 1 && !std::isfinite(local[0])) return;
        auto g = grad(L, bind.vars(), GradOptions{.allow_unused = true});
        out.reserve(g.size());
        for (auto& v : g) out.push_back(v.value());
        detail::check_own_gradient(model, out, b, c, "the weighted loss", "training");
    });
    if (loss_out) *loss_out = sum[0];
    if (!std::isfinite(sum[0]))
        throw NumericError("the training loss is not finite (" + std::to_string(sum[0]) + ")");
    return dist::all_reduce_sum(c, out);
}

namespace detail {

/// Every rank's BatchNorm running statistics replaced by their mean over ranks (after a
/// data-parallel step, in which each rank normalised with its own part of the batch): ranks
/// stay identical, and with equal parts the running means are those of one process.
template <class T, Backend B>
void average_buffers(nn::Module<T, B>& m, const dist::Communicator& c) {
    if (c.size() == 1) return;
    std::vector<Tensor<T, B>*> where;
    std::vector<Tensor<T, B>> values;
    for (auto& [name, t, kind] : nn::named_tensors(m))
        if (kind == nn::Kind::buffer) {
            where.push_back(t);
            values.push_back(*t);
        }
    if (values.empty()) return;
    auto mean = dist::all_reduce_sum(c, values, T(1) / static_cast<T>(c.size()));
    for (std::size_t k = 0; k < where.size(); ++k) *where[k] = std::move(mean[k]);
}

}  // namespace detail

}  // namespace l2rw::meta
