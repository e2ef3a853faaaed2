// l2rw/nn/loss.hpp — per-example losses and their reductions (none, mean, sum, weighted).
#pragma once

#include <string>

#include "../autodiff/ops.hpp"

namespace l2rw::nn {

enum class Reduction { none, mean, sum };

/// Reduces per-example losses [n].
template <class T, Backend B>
Var<T, B> reduce(const Var<T, B>& per_example, Reduction r) {
    switch (r) {
        case Reduction::none:
            return per_example;
        case Reduction::mean:
            return mean(per_example);
        case Reduction::sum:
            return sum(per_example);
    }
    return per_example;
}

/// Σ_i w_i ℓ_i for per-example losses ℓ [n] and example weights w [n] (a Var, so the
/// reweighting can differentiate through it).
template <class T, Backend B>
Var<T, B> weighted_sum(const Var<T, B>& per_example, const Var<T, B>& weights) {
    if (per_example.rank() != 1 || !(weights.shape() == per_example.shape()))
        throw ShapeError("weighted_sum: losses " + per_example.shape().str() + " and weights " +
                         weights.shape().str() + " must be vectors of one length");
    return sum(per_example * weights);
}

/// Per-example softmax cross-entropy of logits [n, c] against labels [n].
template <class T, Backend B>
Var<T, B> cross_entropy(const Var<T, B>& logits, const IndexTensor<B>& labels,
                        Reduction r = Reduction::mean) {
    return reduce(softmax_cross_entropy(logits, labels), r);
}

/// Per-example binary cross-entropy of logits [n] or [n, 1] against labels in {0, 1} [n].
template <class T, Backend B>
Var<T, B> binary_cross_entropy(const Var<T, B>& logits, const IndexTensor<B>& labels,
                               Reduction r = Reduction::mean) {
    const index_t n = labels.numel();
    if (labels.rank() != 1 || logits.numel() != n || (logits.rank() == 2 && logits.dim(1) != 1) ||
        logits.rank() > 2)
        throw ShapeError("binary_cross_entropy: logits " + logits.shape().str() + " and labels " +
                         labels.shape().str() + " do not match (want [n] or [n, 1] and [n])");
    const auto h = labels.to_host();
    std::vector<T> t(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) {
        if (h[i] != 0 && h[i] != 1)
            throw ValueError("binary_cross_entropy: label[" + std::to_string(i) +
                             "] = " + std::to_string(h[i]) + " is not 0 or 1");
        t[i] = static_cast<T>(h[i]);
    }
    const auto z = reshape(logits, Shape{n});
    return reduce(
        binary_cross_entropy_with_logits(z, Var<T, B>(Tensor<T, B>::from_host(Shape{n}, t))), r);
}

}  // namespace l2rw::nn
