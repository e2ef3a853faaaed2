// l2rw/meta/policies.hpp — example-weighting policies: the paper's baselines and the
// reweighter, behind one interface so that one training loop (meta/train.hpp) serves them all.
//
//   uniform      plain training: w_i = 1/n
//   proportion   w_i ∝ 1 / (count of class y_i in the training set)          (§4.1 "Proportion")
//   resample     class-balanced minibatches, uniform weights                (§4.1 "Resample")
//   hard_mining  every minority-class example plus the highest-loss examples of the
//                majority class, uniform over those kept                    (§4.1 "Hard Mining")
//   random       rectified Gaussian weights w_i = max(z_i, 0) / Σ_j max(z_j, 0), z ~ N(0, 1)
//                                                                           (Eq. 18, "Random")
//   reed_soft    Reed et al. (2015) soft bootstrapping, β = 0.95            (§4.2 "Reed")
//   reed_hard    Reed et al. (2015) hard bootstrapping, β = 0.8
//   l2rw         OnlineReweighter (Algorithm 1)
//
// A policy sees the model, the training batch (and for l2rw the clean validation batch, the
// optimizer's learning rate and next step) and returns a StepReport: the weights of the step
// Σ_i w_i f_i(θ), how many are zero, whether the batch is skipped, and the weight mass on
// examples known to be noisy. It may also pick the batch itself (resample) and replace the
// per-example loss f_i (reed). Every random draw of a policy is seeded from (seed, step)
// alone, so a run resumed from a checkpoint at step k continues exactly as an
// uninterrupted one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../data/dataset.hpp"
#include "../data/sampler.hpp"
#include "../eager.hpp"
#include "reweighter.hpp"

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

// ---- Reed et al. (2015) bootstrapping ----------------------------------------------------------

enum class Bootstrap { soft, hard };

inline const char* to_string(Bootstrap k) { return k == Bootstrap::soft ? "soft" : "hard"; }

/// The β of Reed et al. (2015) used by the paper: 0.95 for soft, 0.8 for hard bootstrapping.
inline double default_beta(Bootstrap k) { return k == Bootstrap::soft ? 0.95 : 0.8; }

/// Per-example cross-entropy against soft targets: out[i] = −Σ_c t[i, c] log softmax(z)[i, c]
/// for logits z [n, c] and targets t [n, c] (a constant: no gradient flows into it).
template <class T, Backend B>
Var<T, B> soft_target_cross_entropy(const Var<T, B>& logits, const Tensor<T, B>& targets) {
    if (logits.rank() != 2 || !(targets.shape() == logits.shape()))
        throw ShapeError("soft_target_cross_entropy: logits " + logits.shape().str() +
                         " and targets " + targets.shape().str() + " must be one [n, c] shape");
    return -sum(Var<T, B>(targets) * log_softmax(logits), 1);
}

/// The bootstrapping targets of Reed et al. (2015), computed from the logits' values (the
/// model prediction inside the target is a constant):
///   soft: t = β·onehot(y) + (1 − β)·softmax(z)
///   hard: t = β·onehot(y) + (1 − β)·onehot(argmax z)     (ties: the lowest class)
/// For logits [n, c] the result is [n, c]. For a one-output sigmoid head (logits [n] or
/// [n, 1], labels in {0, 1}) it is [n]: t = β·y + (1 − β)·σ(z), or (1 − β)·[z > 0].
template <class T, Backend B>
Tensor<T, B> bootstrap_targets(const Var<T, B>& logits, const IndexTensor<B>& y, Bootstrap kind,
                               double beta) {
    if (!(beta >= 0.0 && beta <= 1.0))
        throw ValueError("bootstrap_targets: beta " + std::to_string(beta) + " is not in [0, 1]");
    const index_t n = y.numel();
    const T b = static_cast<T>(beta), rest = static_cast<T>(1.0 - beta);
    const bool binary = (logits.rank() == 1 || (logits.rank() == 2 && logits.dim(1) == 1));
    if (y.rank() != 1 || logits.rank() < 1 || logits.rank() > 2 || logits.dim(0) != n)
        throw ShapeError("bootstrap_targets: logits " + logits.shape().str() + " and labels " +
                         y.shape().str() + " do not match (want [n, c], [n, 1] or [n] and [n])");
    const auto z =
        (binary || kind == Bootstrap::hard) ? logits.value().to_host() : std::vector<T>{};
    if (binary) {
        const auto yh = y.to_host();
        std::vector<T> t(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < t.size(); ++i) {
            if (yh[i] != 0 && yh[i] != 1)
                throw ValueError("bootstrap_targets: label[" + std::to_string(i) + "] = " +
                                 std::to_string(yh[i]) + " is not 0 or 1 (one-output head)");
            const T pred = kind == Bootstrap::soft ? T(1) / (T(1) + std::exp(-z[i]))
                                                   : (z[i] > T(0) ? T(1) : T(0));
            t[i] = b * static_cast<T>(yh[i]) + rest * pred;
        }
        return Tensor<T, B>::from_host(Shape{n}, t);
    }
    const index_t c = logits.dim(1);
    eager::detail::check_indices(y, c, "bootstrap_targets", "label");
    // β·onehot(y) and (1 − β)·prediction, built on the backend (hard: the argmax on the host).
    const auto label_part = eager::unpick(Tensor<T, B>::full(Shape{n}, b), y, c);
    Tensor<T, B> pred_part;
    if (kind == Bootstrap::soft) {
        pred_part = eager::map(eager::map(eager::log_softmax_rows(logits.value()), kernel::Exp{}),
                               kernel::MulScalar<T>{rest});
    } else {
        std::vector<index_t> best(static_cast<std::size_t>(n), 0);
        for (index_t i = 0; i < n; ++i) {
            const auto row = static_cast<std::size_t>(i * c);
            auto& k = best[static_cast<std::size_t>(i)];
            for (index_t j = 1; j < c; ++j)
                if (z[row + static_cast<std::size_t>(j)] > z[row + static_cast<std::size_t>(k)])
                    k = j;
        }
        pred_part = eager::unpick(Tensor<T, B>::full(Shape{n}, rest),
                                  IndexTensor<B>::from_host(Shape{n}, best), c);
    }
    return eager::zip(label_part, pred_part, kernel::Add{}, "bootstrap_targets");
}

/// Reed et al. (2015) bootstrapping loss per example: the cross-entropy of the model against
/// bootstrap_targets (soft or hard), the targets held constant. Softmax heads [n, c]:
/// −Σ_c t_c log softmax(z)_c; a one-output sigmoid head: binary cross-entropy with target t.
template <class T, Backend B>
Var<T, B> reed_loss(const Var<T, B>& logits, const IndexTensor<B>& y, Bootstrap kind, double beta) {
    const auto t = bootstrap_targets(logits, y, kind, beta);
    if (t.rank() == 1)
        return binary_cross_entropy_with_logits(reshape(logits, Shape{y.numel()}), Var<T, B>(t));
    return soft_target_cross_entropy(logits, t);
}

// ---- the interface -----------------------------------------------------------------------------

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
            ws.gradient = weighted_gradient(in.model, in.own_train(),
                                            data::take(ws.report.weights, in.shard), loss_fn(), rng,
                                            &ws.loss, in.comm);
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

// ---- the baselines
// -------------------------------------------------------------------------------

/// Plain training: w_i = 1/n.
template <class Model>
class Uniform : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;
    [[nodiscard]] std::string name() const override { return "uniform"; }
    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        detail::check_batch(in.train, "Uniform", "training");
        auto w = detail::uniform_weights<T>(in.train.y.numel());
        return this->report(w, w, in.train);
    }
};

/// Inverse class frequency (§4.1 "Proportion"): w_i ∝ 1 / N_{y_i}, N_k the number of training
/// examples of class k, normalised to sum 1 over the batch. `raw` holds 1 / N_{y_i}.
template <class Model>
class Proportion : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;

    /// Class counts of the training set; empty: taken from the training set by prepare().
    explicit Proportion(std::vector<index_t> class_counts = {})
        : counts_(std::move(class_counts)) {}

    [[nodiscard]] std::string name() const override { return "proportion"; }
    void prepare(const data::Dataset& train) override {
        if (counts_.empty()) counts_ = train.class_counts();
    }
    [[nodiscard]] const std::vector<index_t>& class_counts() const { return counts_; }

    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        detail::check_batch(in.train, "Proportion", "training");
        if (counts_.empty())
            throw ValueError(
                "Proportion: no class counts (give them to the constructor, or call prepare())");
        const auto y = in.train.y.to_host();
        std::vector<T> raw(y.size());
        T total = T(0);
        for (std::size_t i = 0; i < y.size(); ++i) {
            if (y[i] < 0 || y[i] >= static_cast<index_t>(counts_.size()) ||
                counts_[static_cast<std::size_t>(y[i])] <= 0)
                throw ValueError("Proportion: example " + std::to_string(i) + " has label " +
                                 std::to_string(y[i]) +
                                 ", a class with no training examples among the " +
                                 std::to_string(counts_.size()) + " counted");
            raw[i] = T(1) / static_cast<T>(counts_[static_cast<std::size_t>(y[i])]);
            total += raw[i];
        }
        std::vector<T> w(raw.size());
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = raw[i] / total;
        return this->report(std::move(w), std::move(raw), in.train);
    }

  private:
    std::vector<index_t> counts_;
};

/// Class-balanced minibatches (§4.1 "Resample"): every batch holds batch_size / classes
/// examples of each class, drawn with replacement (data::BalancedSampler seeded from
/// (seed, step)); uniform weights. The batch size must be a multiple of the class count.
template <class Model>
class Resample : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;

    explicit Resample(std::uint64_t seed = 0) : seed_(seed) {}

    [[nodiscard]] std::string name() const override { return "resample"; }
    [[nodiscard]] std::optional<std::vector<index_t>> select(const data::Dataset& train,
                                                             index_t batch_size,
                                                             std::int64_t step) override {
        return data::BalancedSampler(train, batch_size, detail::stream_seed(seed_, 0x5e5a, step))
            .next();
    }
    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        detail::check_batch(in.train, "Resample", "training");
        auto w = detail::uniform_weights<T>(in.train.y.numel());
        return this->report(w, w, in.train);
    }

  private:
    std::uint64_t seed_;
};

/// Hard mining (§4.1: "selects the highest loss examples from the majority class"). The
/// majority class is the most frequent class of the training set (ties: the lowest label),
/// unless given. In each batch every example of another class is kept, and of the majority
/// class the m highest-loss examples, m = max(number of minority examples in the batch, 1)
/// (all of them when the batch has fewer): the kept set is as balanced as the batch allows,
/// and a batch of the majority class alone still trains on its hardest example. Ties in the
/// loss go to the earlier example. Weights are uniform over the kept examples, zero elsewhere;
/// `raw` holds the per-example losses (a forward pass in meta mode, not recorded).
template <class Model>
class HardMining : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;

    /// The majority class; −1: the most frequent class of the training set (prepare()).
    explicit HardMining(index_t majority_class = -1, LossFn<T, B> loss = default_loss<T, B>)
        : majority_(majority_class), loss_(std::move(loss)) {}

    [[nodiscard]] std::string name() const override { return "hard_mining"; }
    void prepare(const data::Dataset& train) override {
        if (majority_ >= 0) return;
        const auto counts = train.class_counts();
        if (counts.empty()) throw ValueError("HardMining: the training set has no classes");
        majority_ =
            static_cast<index_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
    }
    [[nodiscard]] index_t majority_class() const { return majority_; }
    [[nodiscard]] Var<T, B> loss(const Var<T, B>& o, const IndexTensor<B>& y) const override {
        return loss_(o, y);
    }

    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        detail::check_batch(in.train, "HardMining", "training");
        if (majority_ < 0)
            throw ValueError("HardMining: no majority class (give it, or call prepare())");
        const auto f = per_example_losses(in.model, in.train, loss_);
        for (std::size_t i = 0; i < f.size(); ++i)
            if (!std::isfinite(static_cast<double>(f[i])))
                throw NumericError("HardMining: the loss of example " + std::to_string(i) +
                                   " is not finite");
        const auto y = in.train.y.to_host();
        std::vector<std::size_t> major;
        std::vector<bool> keep(y.size(), false);
        std::size_t minority = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
            if (y[i] == majority_) {
                major.push_back(i);
            } else {
                keep[i] = true;
                ++minority;
            }
        }
        std::stable_sort(major.begin(), major.end(),
                         [&](std::size_t a, std::size_t b) { return f[a] > f[b]; });
        const std::size_t k = std::min(major.size(), std::max<std::size_t>(minority, 1));
        for (std::size_t j = 0; j < k; ++j) keep[major[j]] = true;
        const auto kept = static_cast<T>(minority + k);
        std::vector<T> w(y.size(), T(0));
        for (std::size_t i = 0; i < w.size(); ++i)
            if (keep[i]) w[i] = T(1) / kept;
        return this->report(std::move(w), f, in.train);
    }

  private:
    index_t majority_;
    LossFn<T, B> loss_;
};

/// Random weights (Eq. 18): w_i = max(z_i, 0) / Σ_j max(z_j, 0), z_i ~ N(0, 1) drawn from a
/// generator seeded by (seed, step). All z ≤ 0: zero weights, the batch is skipped. `raw` holds z.
template <class Model>
class RandomWeights : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;

    explicit RandomWeights(std::uint64_t seed = 0) : seed_(seed) {}

    [[nodiscard]] std::string name() const override { return "random"; }
    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        detail::check_batch(in.train, "RandomWeights", "training");
        Rng rng(detail::stream_seed(seed_, 0x7a4d, in.step));
        const auto n = static_cast<std::size_t>(in.train.y.numel());
        std::vector<T> z(n), w(n);
        T total = T(0);
        for (std::size_t i = 0; i < n; ++i) {
            z[i] = static_cast<T>(rng.normal());
            w[i] = z[i] > T(0) ? z[i] : T(0);
            total += w[i];
        }
        if (total > T(0))
            for (auto& v : w) v /= total;
        return this->report(std::move(w), std::move(z), in.train);
    }

  private:
    std::uint64_t seed_;
};

/// Reed et al. (2015) bootstrapping (§4.2 "Reed"): uniform weights, and the per-example loss
/// replaced by reed_loss (soft, β = 0.95, or hard, β = 0.8, by default).
template <class Model>
class Reed : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;

    /// beta < 0: default_beta(kind).
    explicit Reed(Bootstrap kind = Bootstrap::soft, double beta = -1.0)
        : kind_(kind), beta_(beta < 0 ? default_beta(kind) : beta) {
        if (!(beta_ >= 0.0 && beta_ <= 1.0))
            throw ValueError("Reed: beta " + std::to_string(beta_) + " is not in [0, 1]");
    }

    [[nodiscard]] std::string name() const override {
        return kind_ == Bootstrap::soft ? "reed_soft" : "reed_hard";
    }
    [[nodiscard]] Bootstrap kind() const { return kind_; }
    [[nodiscard]] double beta() const { return beta_; }

    [[nodiscard]] Var<T, B> loss(const Var<T, B>& o, const IndexTensor<B>& y) const override {
        return reed_loss(o, y, kind_, beta_);
    }
    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        detail::check_batch(in.train, "Reed", "training");
        auto w = detail::uniform_weights<T>(in.train.y.numel());
        return this->report(w, w, in.train);
    }

  private:
    Bootstrap kind_;
    double beta_;
};

/// Learning to reweight (Algorithm 1): OnlineReweighter with the given options. The lookahead
/// is plain SGD at the optimizer's rate (LookaheadRule::sgd, the paper) or the optimizer's
/// own next step (LookaheadRule::optimizer).
template <class Model>
class L2RW : public WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;

    explicit L2RW(ReweightOptions opt = {}, LossFn<T, B> loss = default_loss<T, B>)
        : opt_(opt), loss_(std::move(loss)) {}

    [[nodiscard]] std::string name() const override { return "l2rw"; }
    [[nodiscard]] bool uses_validation() const override { return true; }
    [[nodiscard]] const ReweightOptions& options() const { return opt_; }
    ReweightOptions& options() { return opt_; }
    [[nodiscard]] Var<T, B> loss(const Var<T, B>& o, const IndexTensor<B>& y) const override {
        return loss_(o, y);
    }

    /// The weights of the whole batch; data-parallel, each rank measures its own part
    /// (OnlineReweighter with in.comm).
    StepReport<T> weigh(const PolicyInput<Model>& in) override {
        OnlineReweighter<Model> rw(in.model, opt_, loss_, in.comm);
        return rw.weights(in.own_train(), validation(in), lookahead(in));
    }
    /// OnlineReweighter::weigh_step: with fused_step (the default) the weights and the
    /// step's gradient from one training forward.
    WeightedStep<T, B> weigh_step(const PolicyInput<Model>& in, Rng* rng) override {
        OnlineReweighter<Model> rw(in.model, opt_, loss_, in.comm);
        return rw.weigh_step(in.own_train(), validation(in), lookahead(in), rng);
    }

  private:
    static const Batch<T, B>& validation(const PolicyInput<Model>& in) {
        const auto* v = in.own_validation();
        if (!v) throw ValueError("L2RW: no clean validation batch was given");
        return *v;
    }
    Lookahead<T, B> lookahead(const PolicyInput<Model>& in) const {
        if (opt_.lookahead == LookaheadRule::sgd)
            return Lookahead<T, B>::sgd(static_cast<T>(in.lr));
        if (!in.optimizer_lookahead)
            throw ValueError(
                "L2RW: LookaheadRule::optimizer, but the optimizer offers no lookahead");
        return in.optimizer_lookahead();
    }

    ReweightOptions opt_;
    LossFn<T, B> loss_;
};

// ---- selection by name
// ---------------------------------------------------------------------------

/// Settings make_policy passes on; each policy reads the ones it has.
struct PolicyConfig {
    std::uint64_t seed = 0;               ///< resample, random
    std::vector<index_t> class_counts{};  ///< proportion (empty: from the training set)
    index_t majority_class = -1;          ///< hard_mining (−1: the most frequent training class)
    double beta = -1.0;                   ///< reed_* (< 0: 0.95 soft, 0.8 hard)
    ReweightOptions reweight{};           ///< l2rw
};

/// The names make_policy knows.
inline const std::vector<std::string_view>& policy_names() {
    static const std::vector<std::string_view> names = {"uniform",     "proportion", "resample",
                                                        "hard_mining", "random",     "reed_soft",
                                                        "reed_hard",   "l2rw"};
    return names;
}

/// The policy called `name` (one of policy_names(); '-' may stand for '_'). Throws ValueError
/// for an unknown name, listing the known ones.
template <class Model>
std::unique_ptr<WeightingPolicy<Model>> make_policy(std::string_view name,
                                                    const PolicyConfig& c = {}) {
    std::string n(name);
    std::replace(n.begin(), n.end(), '-', '_');
    if (n == "uniform") return std::make_unique<Uniform<Model>>();
    if (n == "proportion") return std::make_unique<Proportion<Model>>(c.class_counts);
    if (n == "resample") return std::make_unique<Resample<Model>>(c.seed);
    if (n == "hard_mining") return std::make_unique<HardMining<Model>>(c.majority_class);
    if (n == "random") return std::make_unique<RandomWeights<Model>>(c.seed);
    if (n == "reed_soft") return std::make_unique<Reed<Model>>(Bootstrap::soft, c.beta);
    if (n == "reed_hard") return std::make_unique<Reed<Model>>(Bootstrap::hard, c.beta);
    if (n == "l2rw") return std::make_unique<L2RW<Model>>(c.reweight);
    std::string known;
    for (auto k : policy_names()) known += (known.empty() ? "" : ", ") + std::string(k);
    throw ValueError("make_policy: unknown weighting policy '" + std::string(name) +
                     "' (known: " + known + ")");
}

}  // namespace l2rw::meta
