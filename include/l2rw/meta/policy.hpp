// l2rw/meta/policy.hpp — the interface of an example-weighting policy (what one step shows
// it, what it returns), which meta::train drives; the policies are in meta/policies.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../data/dataset.hpp"
#include "../data/sampler.hpp"
#include "../dist/communicator.hpp"
#include "lookahead.hpp"
#include "weighting.hpp"

namespace l2rw::meta {

namespace detail {

/// A seed for draw `step` of random stream `stream` of a run seeded `seed` (SplitMix64 over
/// the three): draws of different steps and streams are decorrelated, and any one of them can
/// be made again without replaying the ones before it.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream, std::int64_t step) {
    auto mix = [](std::uint64_t z) {
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    return mix(mix(mix(seed) ^ stream) ^ static_cast<std::uint64_t>(step));
}

template <class T>
std::vector<T> uniform_weights(index_t n) {
    return std::vector<T>(static_cast<std::size_t>(n), T(1) / static_cast<T>(n));
}

}  // namespace detail

/// The per-example losses f_i(θ) of `b` as host values: a forward pass without recording,
/// in `mode` (meta by default: batch statistics, BatchNorm running statistics untouched,
/// dropout off).
template <class Model>
std::vector<typename Model::value_type> per_example_losses(
    Model& model, const Batch<typename Model::value_type, typename Model::backend>& b,
    const LossFn<typename Model::value_type, typename Model::backend>& loss,
    nn::Mode mode = nn::Mode::meta) {
    using T = typename Model::value_type;
    using B = typename Model::backend;
    NoGradGuard ng;
    nn::Context<T, B> ctx{mode, nullptr, nullptr};
    auto f = loss(model.forward(Var<T, B>(b.x), ctx), b.y);
    if (f.rank() != 1 || f.numel() != b.y.numel())
        throw ShapeError("per_example_losses: the loss has shape " + f.shape().str() +
                         ", want one value per example [" + std::to_string(b.y.numel()) + "]");
    return f.to_host();
}

/// What a policy sees at one step.
template <class Model>
struct PolicyInput {
    using T = typename Model::value_type;
    using B = typename Model::backend;

    Model& model;
    const Batch<T, B>& train;
    /// The clean validation batch; null unless the policy uses_validation().
    const Batch<T, B>* validation = nullptr;
    /// The (0-based) step of the training loop.
    std::int64_t step = 0;
    /// The optimizer's learning rate at this step.
    double lr = 1.0;
    /// The optimizer's next step as a lookahead (lookahead_from); empty when the optimizer
    /// has none.
    std::function<Lookahead<T, B>()> optimizer_lookahead{};
    /// Data-parallel steps (a communicator of P > 1 ranks): `train` and `validation` are the
    /// whole batches (the same on every rank), `local_train` and `local_validation` this
    /// rank's parts of them, `shard` where its training part sits in the whole batch. Null
    /// parts stand for the whole batches (one process).
    const dist::Communicator* comm = nullptr;
    const Batch<T, B>* local_train = nullptr;
    const Batch<T, B>* local_validation = nullptr;
    data::Shard shard{};

    [[nodiscard]] bool distributed() const { return comm && comm->size() > 1; }
    [[nodiscard]] const Batch<T, B>& own_train() const {
        return local_train ? *local_train : train;
    }
    [[nodiscard]] const Batch<T, B>* own_validation() const {
        return local_validation ? local_validation : validation;
    }
};

/// A way of weighting the examples of a training batch. Runtime-polymorphic, so that a
/// program can pick the method by name (make_policy) and hand it to meta::train.
template <class Model>
class WeightingPolicy {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;
    using Input = PolicyInput<Model>;

    virtual ~WeightingPolicy() = default;

    /// The method's name ("uniform", "proportion", ..., as make_policy takes it).
    [[nodiscard]] virtual std::string name() const = 0;

    /// Called by train() once, before the first step, with the training set (class counts).
    virtual void prepare(const data::Dataset& train) { (void)train; }

    /// The training set rows of batch `step`, or nullopt to take the loop's shuffled batch.
    [[nodiscard]] virtual std::optional<std::vector<index_t>> select(const data::Dataset& train,
                                                                     index_t batch_size,
                                                                     std::int64_t step) {
        (void)train, (void)batch_size, (void)step;
        return std::nullopt;
    }

    /// Whether weigh() needs the clean validation batch.
    [[nodiscard]] virtual bool uses_validation() const { return false; }

    /// The per-example loss f_i the step minimises as Σ_i w_i f_i (default_loss unless replaced).
    [[nodiscard]] virtual Var<T, B> loss(const Var<T, B>& outputs,
                                         const IndexTensor<B>& labels) const {
        return default_loss<T, B>(outputs, labels);
    }
    /// loss() as a LossFn (it refers to this policy, which must outlive it).
    [[nodiscard]] LossFn<T, B> loss_fn() const {
        return [this](const Var<T, B>& o, const IndexTensor<B>& y) { return loss(o, y); };
    }

    /// The weights of `in.train` at this step (summing to 1, or all zero: skipped).
    virtual StepReport<T> weigh(const Input& in) = 0;

    /// The weights and, unless the batch is skipped, the gradient of Σ_i w_i f_i(θ) in train
    /// mode (dropout masks from `rng`) that meta::train steps with. By default weigh() and
    /// then a train-mode forward and backward; the l2rw policy takes both from one training
    /// forward (ReweightOptions::fused_step). Data-parallel, by default every rank weighs the
    /// whole batch (the same weights everywhere) and takes the gradient of its own part, the
    /// parts summed over ranks; the l2rw policy weighs data-parallel too.
    virtual WeightedStep<T, B> weigh_step(const Input& in, Rng* rng) {
        WeightedStep<T, B> ws;
        ws.report = weigh(in);
        if (ws.report.weights.size() != static_cast<std::size_t>(in.train.y.numel()))
            throw ShapeError("policy '" + name() + "' gave " +
                             std::to_string(ws.report.weights.size()) + " weights for " +
                             std::to_string(in.train.y.numel()) + " examples");
        if (ws.report.skipped) return ws;
        if (!in.distributed()) {
            ws.gradient =
                weighted_gradient(in.model, in.train, ws.report.weights, loss_fn(), rng, &ws.loss);
        } else {
            ws.gradient =
                weighted_gradient(in.model, in.own_train(), data::take(ws.report.weights, in.shard),
                                  loss_fn(), rng, &ws.loss, in.comm);
        }
        return ws;
    }

  protected:
    static StepReport<T> report(std::vector<T> weights, std::vector<T> raw, const Batch<T, B>& b) {
        StepReport<T> r;
        r.weights = std::move(weights);
        r.raw = std::move(raw);
        detail::summarise_report(r, b.noisy);
        return r;
    }
};

}  // namespace l2rw::meta
