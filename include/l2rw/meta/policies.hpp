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
#include "bootstrap.hpp"
#include "policy.hpp"
#include "reweighter.hpp"

namespace l2rw::meta {

// ---- the baselines -----------------------------------------------------------------------------

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

// ---- selection by name -------------------------------------------------------------------------

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
