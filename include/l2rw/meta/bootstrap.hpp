// l2rw/meta/bootstrap.hpp — the bootstrapping loss of Reed et al. (2015), the "Reed"
// baselines of §4.2 (meta/policies.hpp): the cross-entropy against targets that mix the
// observed label with the model's own prediction.
#pragma once

#include <string>
#include <vector>

#include "../autodiff/ops.hpp"
#include "../eager.hpp"
#include "../error.hpp"

namespace l2rw::meta {

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

}  // namespace l2rw::meta
