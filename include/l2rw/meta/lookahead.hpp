// l2rw/meta/lookahead.hpp — the lookahead step θ'(g) of Algorithm 1, line 5.
//
// A Lookahead is θ' = θ − lr·d(θ, g) with d an optimizer's own direction, run on Vars so
// that it is recorded on the tape (optim/rules.hpp: the rule the optimizer's step runs too).
// Lookahead::sgd(α) is the paper's plain SGD step, d = g; lookahead_from(opt, params) is the
// next step of `opt` (SGD with momentum, Nesterov, dampening and weight decay; Adam).
// SGD's direction is affine in g, d = s·g + c(θ, state), and that is what the exact
// strategy needs: it uses only lr·s and θ'₀ = θ'(0). Adam's is not affine.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../autodiff/ops.hpp"
#include "../optim/adam.hpp"
#include "../optim/sgd.hpp"

namespace l2rw::meta {

template <class T, Backend B>
struct Lookahead {
    using Vars = std::vector<Var<T, B>>;

    /// θ' = θ − lr·direction(θ, g).
    T lr = T(1);
    /// The direction; empty: d = g (plain SGD).
    std::function<Vars(const Vars& theta, const Vars& g)> direction{};
    /// Whether d is affine in g, and its slope s = ∂d/∂g (then the exact strategy applies).
    bool affine_in_gradient = true;
    T scale = T(1);
    /// The optimizer's L2 weight decay λ (for ReweightOptions::validation_weight_decay).
    T weight_decay = T(0);

    static Lookahead sgd(T lr) {
        Lookahead l;
        l.lr = lr;
        return l;
    }
    [[nodiscard]] bool affine() const { return affine_in_gradient; }

    /// θ'(g) in Var ops (recorded on the tape when θ or g is).
    [[nodiscard]] Vars apply(const Vars& theta, const Vars& g) const {
        const Vars d = direction ? direction(theta, g) : g;
        Vars out;
        out.reserve(theta.size());
        for (std::size_t k = 0; k < theta.size(); ++k) out.push_back(theta[k] - d[k] * lr);
        return out;
    }
};

/// The next SGD step of `opt` on `params` as a lookahead: its own direction (momentum
/// buffers as constants), affine in g with the optimizer's slope.
template <class T, Backend B>
Lookahead<T, B> lookahead_from(const optim::SGD<T, B>& opt, const optim::ParamList<T, B>& params) {
    Lookahead<T, B> la;
    la.lr = static_cast<T>(opt.lr());
    la.weight_decay = static_cast<T>(opt.options().weight_decay);
    for (std::size_t i = 0; i < params.size(); ++i) {
        // Every parameter has one slope; check it is the one of parameter 0.
        const auto s = static_cast<T>(opt.direction_gradient_scale(i));
        if (i == 0) la.scale = s;
        if (s != la.scale)
            throw ValueError("lookahead_from(SGD): parameters have different gradient slopes (" +
                             std::to_string(static_cast<double>(s)) + " vs " +
                             std::to_string(static_cast<double>(la.scale)) + ")");
    }
    la.direction = [opt](const auto& theta, const auto& g) { return opt.direction(theta, g); };
    return la;
}

/// The next Adam step of `opt` as a lookahead (not affine in the gradient).
template <class T, Backend B>
Lookahead<T, B> lookahead_from(const optim::Adam<T, B>& opt, const optim::ParamList<T, B>& params) {
    (void)params;
    Lookahead<T, B> la;
    la.lr = opt.step_size();
    la.affine_in_gradient = false;
    la.weight_decay = static_cast<T>(opt.options().weight_decay);
    la.direction = [opt](const auto& theta, const auto& g) { return opt.direction(theta, g); };
    return la;
}

}  // namespace l2rw::meta
