// l2rw/optim/sgd.hpp — stochastic gradient descent with momentum, Nesterov momentum,
// dampening and L2 weight decay, exactly as torch.optim.SGD:
//
//     g ← g + λθ                                   (weight_decay λ)
//     b ← g                  on the first step      (momentum μ > 0)
//     b ← μb + (1 − τ)g      afterwards             (dampening τ)
//     d ← g + μb  (nesterov)   or   d ← b          (or d ← g without momentum)
//     θ ← θ − α d                                  (lr α)
//
// `direction(params, grads)` gives d without applying it or touching the state, so a
// lookahead θ' = θ − α d can be formed; `step` runs the very same kernel and then writes θ
// and b, so θ_after == θ_before − α · direction(...) bit for bit. The direction is affine
// in g with slope `direction_gradient_scale()` (1, (1 − τ), 1 + μ(1 − τ) or 1 + μ),
// which is what the affine-lookahead identity of DESIGN.md needs.
//
// The rule itself is written once, in optim/rules.hpp: the kernel runs it per element, and
// direction() runs it on Vars for a reweighter's lookahead.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../autodiff/ops.hpp"
#include "../autodiff/var.hpp"
#include "../backend/kernels.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "lists.hpp"
#include "rules.hpp"

namespace l2rw::optim {

// ---- the kernel --------------------------------------------------------------------------------

namespace kernel {

/// One SGD update of element i by rule::Sgd. Reads θ, g and (unless null) the old buffer b;
/// writes the new buffer to b_out, the direction to d_out and θ − lr·d to p_out (each unless
/// null). In-place use (b_out == b, p_out == p) is fine: every read happens before the writes.
template <class T>
struct SgdUpdate {
    const T* p;
    const T* g;
    const T* b;
    T* b_out;
    T* d_out;
    T* p_out;
    T lr;
    rule::Sgd<T> rule;
    L2RW_HD void operator()(index_t i) const {
        const T pi = p[i];
        const T bi = b ? b[i] : T(0);
        T bn = T(0);
        const T d = rule.direction(pi, g[i], b ? &bi : nullptr, &bn);
        if (b_out) b_out[i] = bn;
        if (d_out) d_out[i] = d;
        if (p_out) p_out[i] = pi - lr * d;
    }
};

}  // namespace kernel

// ---- SGD ---------------------------------------------------------------------------------------

struct SGDOptions {
    double lr = 0.1;
    double momentum = 0.0;
    bool nesterov = false;
    double weight_decay = 0.0;
    double dampening = 0.0;
};

template <class T, Backend B>
class SGD {
  public:
    using tensor_type = Tensor<T, B>;
    using var_type = Var<T, B>;
    using Options = SGDOptions;

    /// Checkpoint interface: the optimizer's name and its per-parameter state slots.
    static constexpr std::string_view type_name() { return "SGD"; }
    static constexpr std::array<std::string_view, 1> state_slots() { return {"momentum_buffer"}; }

    explicit SGD(const SGDOptions& o) : opt_(o) {
        detail::require_nonnegative("SGD", "lr", o.lr);
        detail::require_nonnegative("SGD", "momentum", o.momentum);
        detail::require_nonnegative("SGD", "weight_decay", o.weight_decay);
        if (!std::isfinite(o.dampening) || o.dampening < 0 || o.dampening > 1)
            throw ValueError("SGD: dampening must be in [0, 1], got " +
                             std::to_string(o.dampening));
        if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
            throw ValueError(
                "SGD: Nesterov momentum requires momentum > 0 and dampening = 0 (got momentum " +
                std::to_string(o.momentum) + ", dampening " + std::to_string(o.dampening) + ")");
    }

    [[nodiscard]] const SGDOptions& options() const { return opt_; }
    [[nodiscard]] double lr() const { return opt_.lr; }
    /// Changes the learning rate (an LR schedule calls this before each step).
    void set_lr(double lr) {
        detail::require_nonnegative("SGD::set_lr", "lr", lr);
        opt_.lr = lr;
    }

    /// θ ← θ − lr·d for every parameter, updating the momentum buffers. All checks run
    /// before anything is written: on a throw, parameters and state are unchanged.
    void step(const ParamList<T, B>& params, const GradList<T, B>& grads) {
        check(params, grads, "SGD::step");
        detail::check_finite("SGD::step", params, grads);
        ensure_size(params.size());
        names_ = params.names();
        const bool mom = opt_.momentum != 0;
        for (std::size_t i = 0; i < params.size(); ++i) {
            tensor_type p = params[i];
            const tensor_type& g = grads[i];
            auto& buf = buffers_[i];
            const T* bold = nullptr;
            T* bout = nullptr;
            if (mom) {
                if (buf) {
                    bold = buf->data();
                } else {
                    buf = tensor_type(p.shape());
                }
                bout = buf->data();
            }
            B::for_each(p.numel(), make_kernel(p.data(), g.data(), bold, bout, nullptr, p.data()));
        }
        ++step_;
    }

    /// The direction d of the next step (θ ← θ − lr·d) without applying it: neither the
    /// parameters nor the state change.
    [[nodiscard]] std::vector<tensor_type> direction(const ParamList<T, B>& params,
                                                     const GradList<T, B>& grads) const {
        check(params, grads, "SGD::direction");
        const bool mom = opt_.momentum != 0;
        std::vector<tensor_type> out;
        out.reserve(params.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            const tensor_type& p = params[i];
            tensor_type d(p.shape());
            const T* bold =
                (mom && i < buffers_.size() && buffers_[i]) ? buffers_[i]->data() : nullptr;
            B::for_each(p.numel(),
                        make_kernel(p.data(), grads[i].data(), bold, nullptr, d.data(), nullptr));
            out.push_back(std::move(d));
        }
        return out;
    }

    /// The same direction on Vars, by the same rule (the momentum buffers enter as
    /// constants), for a lookahead θ' = θ − lr·d recorded on the tape.
    [[nodiscard]] std::vector<var_type> direction(const std::vector<var_type>& params,
                                                  const std::vector<var_type>& grads) const {
        std::vector<tensor_type> pv;
        for (const auto& p : params) pv.push_back(p.value());
        check(ParamList<T, B>(pv), GradList<T, B>(grads), "SGD::direction");
        const auto r = make_rule();
        std::vector<var_type> out;
        out.reserve(params.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            const bool has = i < buffers_.size() && buffers_[i].has_value();
            const var_type b = has ? var_type(*buffers_[i]) : var_type();
            out.push_back(r.direction(params[i], grads[i], has ? &b : nullptr,
                                      static_cast<var_type*>(nullptr)));
        }
        return out;
    }

    /// ∂d/∂g for parameter i at the next step: d is affine in the gradient, and this is its
    /// slope, read off the rule itself (d(1) − d(0) at θ = 0 and a zero buffer).
    [[nodiscard]] double direction_gradient_scale(std::size_t i = 0) const {
        const bool has = i < buffers_.size() && buffers_[i].has_value();
        const auto r = make_rule();
        const double zero = 0, one = 1;
        return r.template direction<double>(zero, one, has ? &zero : nullptr, nullptr) -
               r.template direction<double>(zero, zero, has ? &zero : nullptr, nullptr);
    }

    // ---- visible state -----------------------------------------------------------------------

    /// Number of step() calls so far (or the value restored from a checkpoint).
    [[nodiscard]] std::int64_t step_count() const { return step_; }
    void set_step_count(std::int64_t s) {
        if (s < 0) throw ValueError("SGD::set_step_count: negative step " + std::to_string(s));
        step_ = s;
    }
    /// How many parameters the state is built for (0 before the first step).
    [[nodiscard]] std::size_t num_params() const { return buffers_.size(); }
    /// The parameter names seen at the last step (positions as names for unnamed lists).
    [[nodiscard]] const std::vector<std::string>& param_names() const { return names_; }

    /// The momentum buffer of parameter i; empty before its first step (or without momentum).
    [[nodiscard]] const std::optional<tensor_type>& momentum_buffer(std::size_t i) const {
        if (i >= buffers_.size())
            throw ValueError("SGD::momentum_buffer: parameter index " + std::to_string(i) +
                             " out of range (" + std::to_string(buffers_.size()) + " parameters)");
        return buffers_[i];
    }
    /// The momentum buffer of the parameter named `name` at the last step; null when absent.
    [[nodiscard]] const tensor_type* momentum_buffer(const std::string& name) const {
        for (std::size_t i = 0; i < names_.size() && i < buffers_.size(); ++i)
            if (names_[i] == name) return buffers_[i] ? &*buffers_[i] : nullptr;
        return nullptr;
    }
    /// Sets (or, with nullopt, clears) the momentum buffer of parameter i; the state grows
    /// to i + 1 parameters if needed. The tensor is stored as given (not copied).
    void set_momentum_buffer(std::size_t i, std::optional<tensor_type> b) {
        ensure_size(i + 1);
        buffers_[i] = std::move(b);
    }

    /// Checkpoint interface: calls fn(slot, param index, tensor) for every present state tensor.
    template <class F>
    void visit_state(F&& fn) const {
        for (std::size_t i = 0; i < buffers_.size(); ++i)
            if (buffers_[i]) fn(std::size_t{0}, i, *buffers_[i]);
    }
    /// Checkpoint interface: the state slot s of parameter i.
    [[nodiscard]] const std::optional<tensor_type>& state(std::size_t slot, std::size_t i) const {
        if (slot != 0) throw ValueError("SGD::state: no state slot " + std::to_string(slot));
        return momentum_buffer(i);
    }
    /// Checkpoint interface: replaces the whole state. `slots[0][i]` is parameter i's
    /// momentum buffer. Validates first; on a throw nothing changes.
    void load_state(std::int64_t step, std::vector<std::vector<std::optional<tensor_type>>> slots) {
        if (step < 0) throw ValueError("SGD::load_state: negative step " + std::to_string(step));
        if (slots.size() != state_slots().size())
            throw ValueError("SGD::load_state: " + std::to_string(slots.size()) +
                             " state slots, want 1");
        buffers_ = std::move(slots[0]);
        step_ = step;
    }

  private:
    rule::Sgd<T> make_rule() const {
        return {static_cast<T>(opt_.momentum), static_cast<T>(opt_.dampening),
                static_cast<T>(opt_.weight_decay), opt_.nesterov};
    }
    kernel::SgdUpdate<T> make_kernel(const T* p, const T* g, const T* b, T* bout, T* d,
                                     T* pout) const {
        return kernel::SgdUpdate<T>{p, g, b, bout, d, pout, static_cast<T>(opt_.lr), make_rule()};
    }
    void check(const ParamList<T, B>& params, const GradList<T, B>& grads, const char* op) const {
        detail::check_lists(op, params, grads, buffers_.size());
        for (std::size_t i = 0; i < buffers_.size(); ++i)
            detail::check_state_shape(op, "momentum buffer", params, i, buffers_[i]);
    }
    void ensure_size(std::size_t n) {
        if (buffers_.size() < n) buffers_.resize(n);
    }

    SGDOptions opt_;
    std::vector<std::optional<tensor_type>> buffers_;
    std::vector<std::string> names_;
    std::int64_t step_ = 0;
};

}  // namespace l2rw::optim
