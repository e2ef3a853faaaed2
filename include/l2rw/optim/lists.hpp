// l2rw/optim/lists.hpp — what every optimizer shares: ParamList (parameter Tensors, named or
// not), GradList (gradients as Vars or Tensors) and the checks each step runs first.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../autodiff/var.hpp"
#include "../error.hpp"
#include "../tensor.hpp"

namespace l2rw::optim {

// ---- parameter and gradient lists ------------------------------------------------------------

/// The parameters an optimizer updates, in a fixed order: from nn::named_parameters(model)
/// (names kept) or from plain Tensors (named by position). The Tensors are shallow copies
/// sharing the parameters' buffers, so writing through them updates the parameters in place.
template <class T, Backend B>
class ParamList {
  public:
    ParamList() = default;
    /// From nn::named_parameters(model).
    ParamList(const std::vector<std::pair<std::string, Tensor<T, B>*>>&
                  named) {  // NOLINT: implicit by design
        for (const auto& [n, t] : named) {
            if (!t) throw ValueError("optimizer: parameter '" + n + "' is a null pointer");
            names_.push_back(n);
            tensors_.push_back(*t);
        }
    }
    /// From Tensors (they share their buffers with the parameters).
    ParamList(const std::vector<Tensor<T, B>>& tensors)
        : tensors_(tensors) {  // NOLINT: implicit by design
        for (std::size_t i = 0; i < tensors_.size(); ++i) names_.push_back(std::to_string(i));
    }

    [[nodiscard]] std::size_t size() const { return tensors_.size(); }
    [[nodiscard]] const std::string& name(std::size_t i) const { return names_[i]; }
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
    [[nodiscard]] Tensor<T, B>& operator[](std::size_t i) { return tensors_[i]; }
    [[nodiscard]] const Tensor<T, B>& operator[](std::size_t i) const { return tensors_[i]; }

  private:
    std::vector<std::string> names_;
    std::vector<Tensor<T, B>> tensors_;
};

/// Gradients, one per parameter in the same order: Vars (as grad() returns them) or Tensors.
template <class T, Backend B>
class GradList {
  public:
    GradList() = default;
    GradList(const std::vector<Var<T, B>>& vars) {  // NOLINT: implicit by design
        for (const auto& v : vars) {
            defined_.push_back(v.defined());
            tensors_.push_back(v.value());
        }
    }
    GradList(const std::vector<Tensor<T, B>>& tensors)  // NOLINT: implicit by design
        : tensors_(tensors), defined_(tensors.size(), true) {}

    [[nodiscard]] std::size_t size() const { return tensors_.size(); }
    [[nodiscard]] bool defined(std::size_t i) const { return defined_[i]; }
    [[nodiscard]] const Tensor<T, B>& operator[](std::size_t i) const { return tensors_[i]; }

  private:
    std::vector<Tensor<T, B>> tensors_;
    std::vector<bool> defined_;
};

namespace detail {

/// Throws unless `v` is finite and >= 0.
inline void require_nonnegative(const char* opt, const char* what, double v) {
    if (!std::isfinite(v) || v < 0)
        throw ValueError(std::string(opt) + ": " + what + " must be finite and >= 0, got " +
                         std::to_string(v));
}

/// The checks every optimizer runs before it changes anything: as many gradients as
/// parameters, as many as the state was built for, and one shape per parameter.
template <class T, Backend B>
void check_lists(const char* op, const ParamList<T, B>& params, const GradList<T, B>& grads,
                 std::size_t bound) {
    if (grads.size() != params.size())
        throw ShapeError(std::string(op) + ": " + std::to_string(grads.size()) + " gradients for " +
                         std::to_string(params.size()) + " parameters");
    if (bound != 0 && params.size() != bound)
        throw ShapeError(std::string(op) + ": " + std::to_string(params.size()) +
                         " parameters, but the optimizer state was built for " +
                         std::to_string(bound));
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (!grads.defined(i))
            throw ValueError(std::string(op) + ": the gradient of parameter '" + params.name(i) +
                             "' is undefined");
        if (!(grads[i].shape() == params[i].shape()))
            throw ShapeError(std::string(op) + ": parameter '" + params.name(i) + "' has shape " +
                             params[i].shape().str() + " but its gradient has shape " +
                             grads[i].shape().str());
    }
}

/// Throws NumericError, naming the parameter and the element, unless every gradient is
/// finite; an optimizer calls it before it writes anything, so that a NaN (a NaN pixel that
/// relu hides from the loss, say) never reaches the parameters. One parallel sum per
/// gradient, kept in backend memory, and one read of all the sums on the host: a non-finite
/// element makes its sum non-finite; only then are the elements read.
template <class T, Backend B>
void check_finite(const char* op, const ParamList<T, B>& params, const GradList<T, B>& grads) {
    const auto count = static_cast<index_t>(grads.size());
    if (count == 0) return;
    Tensor<T, B> sums(Shape{count});
    T* out = sums.data();
    for (index_t i = 0; i < count; ++i) {
        const auto& g = grads[static_cast<std::size_t>(i)];
        B::sum_into(g.data(), g.numel(), out + i);
    }
    const auto s = sums.to_host();
    for (std::size_t i = 0; i < grads.size(); ++i) {
        if (std::isfinite(static_cast<double>(s[i]))) continue;
        const auto& g = grads[i];
        const auto h = g.to_host();
        for (std::size_t e = 0; e < h.size(); ++e)
            if (!std::isfinite(static_cast<double>(h[e])))
                throw NumericError(std::string(op) + ": the gradient of parameter '" +
                                   params.name(i) + "' " + params[i].shape().str() +
                                   " is not finite (" + std::to_string(static_cast<double>(h[e])) +
                                   " at element " + std::to_string(e) + "); nothing was updated");
        // Finite elements whose sum overflowed: nothing wrong.
    }
}

/// Throws unless the state tensor `s` of parameter i (if any) has the parameter's shape.
template <class T, Backend B>
void check_state_shape(const char* op, const char* slot, const ParamList<T, B>& params,
                       std::size_t i, const std::optional<Tensor<T, B>>& s) {
    if (s && !(s->shape() == params[i].shape()))
        throw ShapeError(std::string(op) + ": parameter '" + params.name(i) + "' has shape " +
                         params[i].shape().str() + " but its " + slot + " has shape " +
                         s->shape().str());
}

}  // namespace detail

}  // namespace l2rw::optim
