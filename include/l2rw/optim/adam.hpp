// l2rw/optim/adam.hpp — Adam (Kingma & Ba, 2015) as torch.optim.Adam (amsgrad off):
//
//     t ← t + 1
//     g ← g + λθ                                   (weight_decay λ: L2, added to the gradient)
//     m ← β₁m + (1 − β₁)g
//     v ← β₂v + (1 − β₂)g²
//     θ ← θ − (α / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//
// m and v start at zero. Every step updates every parameter, so one step count t serves
// them all. The rule is written once (optim/rules.hpp): the kernel runs it per element, and
// direction() on Vars runs it for a reweighter's lookahead, which is not affine in the
// gradient (DESIGN.md): a reweighter needs the general strategy with it.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../autodiff/ops.hpp"
#include "../backend/kernels.hpp"
#include "lists.hpp"
#include "rules.hpp"

namespace l2rw::optim {

namespace kernel {

/// One Adam update of element i: reads θ, g, m, v; writes m and v to m_out / v_out, the
/// direction m̂ / (√v̂ + ε) to d_out and the new θ to p_out (each unless null).
template <class T>
struct AdamUpdate {
    const T* p;
    const T* g;
    const T* m;
    const T* v;
    T* m_out;
    T* v_out;
    T* d_out;
    T* p_out;
    rule::Adam<T> rule;
    T bias1, step_size;  // 1 − β₁ᵗ, α / (1 − β₁ᵗ)
    L2RW_HD void operator()(index_t i) const {
        const T pi = p[i];
        T mi = T(0), vi = T(0);
        const T q = rule.direction(pi, g[i], m[i], v[i], &mi, &vi);
        if (m_out) m_out[i] = mi;
        if (v_out) v_out[i] = vi;
        if (d_out) d_out[i] = q / bias1;
        if (p_out) p_out[i] = pi - step_size * q;
    }
};

}  // namespace kernel

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
};

template <class T, Backend B>
class Adam {
  public:
    using tensor_type = Tensor<T, B>;
    using Options = AdamOptions;

    /// Checkpoint interface: the optimizer's name and its per-parameter state slots.
    static constexpr std::string_view type_name() { return "Adam"; }
    static constexpr std::array<std::string_view, 2> state_slots() {
        return {"exp_avg", "exp_avg_sq"};
    }

    explicit Adam(const AdamOptions& o) : opt_(o) {
        detail::require_nonnegative("Adam", "lr", o.lr);
        detail::require_nonnegative("Adam", "eps", o.eps);
        detail::require_nonnegative("Adam", "weight_decay", o.weight_decay);
        for (auto [what, b] : {std::pair{"beta1", o.beta1}, std::pair{"beta2", o.beta2}})
            if (!std::isfinite(b) || b < 0 || b >= 1)
                throw ValueError(std::string("Adam: ") + what + " must be in [0, 1), got " +
                                 std::to_string(b));
    }

    [[nodiscard]] const AdamOptions& options() const { return opt_; }
    [[nodiscard]] double lr() const { return opt_.lr; }
    void set_lr(double lr) {
        detail::require_nonnegative("Adam::set_lr", "lr", lr);
        opt_.lr = lr;
    }

    /// One Adam step on every parameter. All checks run first: on a throw nothing changes.
    void step(const ParamList<T, B>& params, const GradList<T, B>& grads) {
        check(params, grads, "Adam::step");
        detail::check_finite("Adam::step", params, grads);
        if (m_.size() < params.size()) {
            m_.resize(params.size());
            v_.resize(params.size());
        }
        names_ = params.names();
        const auto k = make_kernel(step_ + 1);
        for (std::size_t i = 0; i < params.size(); ++i) {
            tensor_type p = params[i];
            if (!m_[i]) m_[i] = tensor_type::zeros(p.shape());
            if (!v_[i]) v_[i] = tensor_type::zeros(p.shape());
            auto ki = k;
            ki.p = p.data();
            ki.g = grads[i].data();
            ki.m = m_[i]->data();
            ki.v = v_[i]->data();
            ki.m_out = m_[i]->data();
            ki.v_out = v_[i]->data();
            ki.p_out = p.data();
            B::for_each(p.numel(), ki);
        }
        ++step_;
    }

    /// The bias-corrected direction m̂ / (√v̂ + ε) of the next step, without applying it.
    /// step() computes θ − (α/(1 − β₁ᵗ))·(m / denom) as PyTorch does, which equals
    /// θ − α·direction up to rounding (not bit for bit).
    [[nodiscard]] std::vector<tensor_type> direction(const ParamList<T, B>& params,
                                                     const GradList<T, B>& grads) const {
        check(params, grads, "Adam::direction");
        const auto k = make_kernel(step_ + 1);
        std::vector<tensor_type> out;
        for (std::size_t i = 0; i < params.size(); ++i) {
            const tensor_type& p = params[i];
            tensor_type d(p.shape());
            const bool has = i < m_.size() && m_[i] && v_[i];
            const tensor_type zero = has ? tensor_type() : tensor_type::zeros(p.shape());
            auto ki = k;
            ki.p = p.data();
            ki.g = grads[i].data();
            ki.m = has ? m_[i]->data() : zero.data();
            ki.v = has ? v_[i]->data() : zero.data();
            ki.d_out = d.data();
            B::for_each(p.numel(), ki);
            out.push_back(std::move(d));
        }
        return out;
    }

    /// The next step on Vars, by the same rule (the moments enter as constants, zero before
    /// the first step), for a lookahead θ' = θ − step_size()·q recorded on the tape.
    [[nodiscard]] std::vector<Var<T, B>> direction(const std::vector<Var<T, B>>& params,
                                                   const std::vector<Var<T, B>>& grads) const {
        std::vector<tensor_type> pv;
        for (const auto& p : params) pv.push_back(p.value());
        check(ParamList<T, B>(pv), GradList<T, B>(grads), "Adam::direction");
        const auto r = make_kernel(step_ + 1).rule;
        std::vector<Var<T, B>> out;
        for (std::size_t i = 0; i < params.size(); ++i) {
            const bool has = i < m_.size() && m_[i] && v_[i];
            const Var<T, B> m(has ? *m_[i] : tensor_type::zeros(pv[i].shape()));
            const Var<T, B> v(has ? *v_[i] : tensor_type::zeros(pv[i].shape()));
            out.push_back(r.direction(params[i], grads[i], m, v, static_cast<Var<T, B>*>(nullptr),
                                      static_cast<Var<T, B>*>(nullptr)));
        }
        return out;
    }
    /// α / (1 − β₁ᵗ) of the next step: θ ← θ − step_size()·q, q as direction() on Vars.
    [[nodiscard]] T step_size() const { return make_kernel(step_ + 1).step_size; }

    // ---- visible state -----------------------------------------------------------------------

    [[nodiscard]] std::int64_t step_count() const { return step_; }
    void set_step_count(std::int64_t s) {
        if (s < 0) throw ValueError("Adam::set_step_count: negative step " + std::to_string(s));
        step_ = s;
    }
    [[nodiscard]] std::size_t num_params() const { return m_.size(); }
    [[nodiscard]] const std::vector<std::string>& param_names() const { return names_; }

    /// First moment m of parameter i (empty before its first step).
    [[nodiscard]] const std::optional<tensor_type>& exp_avg(std::size_t i) const {
        return state(0, i);
    }
    /// Second moment v of parameter i (empty before its first step).
    [[nodiscard]] const std::optional<tensor_type>& exp_avg_sq(std::size_t i) const {
        return state(1, i);
    }
    /// Sets m and v of parameter i (both or neither); the state grows to i + 1 parameters.
    void set_moments(std::size_t i, std::optional<tensor_type> m, std::optional<tensor_type> v) {
        if (m.has_value() != v.has_value())
            throw ValueError("Adam::set_moments: give both exp_avg and exp_avg_sq, or neither");
        if (m && !(m->shape() == v->shape()))
            throw ShapeError("Adam::set_moments: exp_avg " + m->shape().str() + " and exp_avg_sq " +
                             v->shape().str() + " differ");
        if (m_.size() < i + 1) {
            m_.resize(i + 1);
            v_.resize(i + 1);
        }
        m_[i] = std::move(m);
        v_[i] = std::move(v);
    }

    /// Checkpoint interface: calls fn(slot, param index, tensor) for every present state tensor.
    template <class F>
    void visit_state(F&& fn) const {
        for (std::size_t i = 0; i < m_.size(); ++i) {
            if (m_[i]) fn(std::size_t{0}, i, *m_[i]);
            if (v_[i]) fn(std::size_t{1}, i, *v_[i]);
        }
    }
    [[nodiscard]] const std::optional<tensor_type>& state(std::size_t slot, std::size_t i) const {
        if (slot > 1) throw ValueError("Adam::state: no state slot " + std::to_string(slot));
        if (i >= m_.size())
            throw ValueError("Adam::state: parameter index " + std::to_string(i) +
                             " out of range (" + std::to_string(m_.size()) + " parameters)");
        return slot == 0 ? m_[i] : v_[i];
    }
    /// Checkpoint interface: replaces the whole state; slots[0] holds m, slots[1] v, one
    /// entry per parameter. Validates first; on a throw nothing changes.
    void load_state(std::int64_t step, std::vector<std::vector<std::optional<tensor_type>>> slots) {
        if (step < 0) throw ValueError("Adam::load_state: negative step " + std::to_string(step));
        if (slots.size() != 2 || slots[0].size() != slots[1].size())
            throw ValueError(
                "Adam::load_state: want exp_avg and exp_avg_sq for the same parameters");
        for (std::size_t i = 0; i < slots[0].size(); ++i) {
            const auto &m = slots[0][i], &v = slots[1][i];
            if (m.has_value() != v.has_value())
                throw ValueError("Adam::load_state: parameter " + std::to_string(i) +
                                 " has only one of exp_avg and exp_avg_sq");
            if (m && !(m->shape() == v->shape()))
                throw ShapeError("Adam::load_state: parameter " + std::to_string(i) + ": exp_avg " +
                                 m->shape().str() + " and exp_avg_sq " + v->shape().str() +
                                 " differ");
        }
        m_ = std::move(slots[0]);
        v_ = std::move(slots[1]);
        step_ = step;
    }

  private:
    kernel::AdamUpdate<T> make_kernel(std::int64_t t) const {
        const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(t));
        const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(t));
        kernel::AdamUpdate<T> k{};
        k.rule = {static_cast<T>(opt_.beta1), static_cast<T>(opt_.beta2), static_cast<T>(opt_.eps),
                  static_cast<T>(opt_.weight_decay), static_cast<T>(std::sqrt(bc2))};
        k.bias1 = static_cast<T>(bc1);
        k.step_size = static_cast<T>(opt_.lr / bc1);
        return k;
    }
    void check(const ParamList<T, B>& params, const GradList<T, B>& grads, const char* op) const {
        detail::check_lists(op, params, grads, m_.size());
        for (std::size_t i = 0; i < m_.size(); ++i) {
            detail::check_state_shape(op, "exp_avg", params, i, m_[i]);
            detail::check_state_shape(op, "exp_avg_sq", params, i, v_[i]);
        }
    }

    AdamOptions opt_;
    std::vector<std::optional<tensor_type>> m_, v_;
    std::vector<std::string> names_;
    std::int64_t step_ = 0;
};

}  // namespace l2rw::optim
