// l2rw/meta/batch.hpp — the batches the reweighting step takes (data::Batch, the library's
// one batch type) and the checks every entry point runs on them.
#pragma once

#include <string>

#include "../data/dataset.hpp"
#include "../error.hpp"

namespace l2rw::meta {

/// A training or validation batch: inputs, integer labels, and optionally which examples are
/// known to carry a flipped label (for reporting only; never used for the weights).
template <class T, Backend B>
using Batch = data::Batch<T, B>;

namespace detail {

/// Throws ShapeError, naming `who` and `what` ("training", "validation"), unless the batch
/// holds N > 0 examples with one label each (and, when it has them, one noise flag each).
template <class T, Backend B>
void check_batch(const Batch<T, B>& b, const std::string& who, const char* what) {
    if (b.x.rank() < 1 || b.y.rank() != 1 || b.x.dim(0) != b.y.numel() || b.y.numel() == 0)
        throw ShapeError(who + ": the " + what + " batch has inputs " + b.x.shape().str() +
                         " and labels " + b.y.shape().str() + " (want N > 0 examples in both)");
    if (!b.noisy.empty() && static_cast<index_t>(b.noisy.size()) != b.y.numel())
        throw ShapeError(who + ": the " + what + " batch has " + std::to_string(b.noisy.size()) +
                         " noise flags for " + std::to_string(b.y.numel()) + " examples");
}

}  // namespace detail
}  // namespace l2rw::meta
