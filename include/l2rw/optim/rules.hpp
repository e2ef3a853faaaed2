// l2rw/optim/rules.hpp — the update rules of SGD and Adam, each written once.
//
// A rule computes one step's direction from a parameter p, its gradient and the optimizer's
// state. It is a template over the value type V: the optimizers' kernels run it on single
// elements (V = T), and a reweighter's lookahead runs the very same rule on whole Vars
// (V = Var<T, B>), recorded on the tape, so that a new option of an optimizer cannot make its
// lookahead silently differ from its step. The functions are constexpr, not __host__
// __device__, so that nvcc accepts the Var instantiation: a CUDA build of the kernels needs
// --expt-relaxed-constexpr (as the nvcc check passes it).
#pragma once

#include <cmath>
#include <concepts>

namespace l2rw::optim::rule {

/// √x for a scalar. On Vars the rules call l2rw::safe_sqrt (found by argument-dependent
/// lookup): the same value, with a finite derivative at x = 0 (autodiff/ops.hpp).
template <std::floating_point S>
constexpr S safe_sqrt(S x) {
    using std::sqrt;
    return sqrt(x);
}

/// torch.optim.SGD: g ← g + λp; b ← g on the first step (b null), μb + (1 − τ)g after;
/// d = g + μb (Nesterov) or b, or d = g without momentum. S is the scalar type.
template <class S>
struct Sgd {
    S momentum = S(0), dampening = S(0), weight_decay = S(0);
    bool nesterov = false;

    /// The direction d (θ ← θ − lr·d); with momentum, the new buffer goes to *b_new unless
    /// b_new is null.
    template <class V>
    constexpr V direction(const V& p, const V& grad, const V* b, V* b_new) const {
        const V g = weight_decay != S(0) ? grad + p * weight_decay : grad;
        if (momentum == S(0)) return g;
        const V bn = b ? *b * momentum + g * (S(1) - dampening) : g;
        if (b_new) *b_new = bn;
        return nesterov ? g + bn * momentum : bn;
    }
};

/// torch.optim.Adam (amsgrad off), at step t: g ← g + λp, m ← β₁m + (1 − β₁)g,
/// v ← β₂v + (1 − β₂)g², and θ ← θ − step_size·q with q = m / (√v / √(1 − β₂ᵗ) + ε) and
/// step_size = α / (1 − β₁ᵗ).
template <class S>
struct Adam {
    S beta1 = S(0.9), beta2 = S(0.999), eps = S(1e-8), weight_decay = S(0);
    S bias2_sqrt = S(1);  // √(1 − β₂ᵗ)

    /// q (θ ← θ − step_size·q); the new moments go to *m_new and *v_new unless null.
    template <class V>
    constexpr V direction(const V& p, const V& grad, const V& m, const V& v, V* m_new,
                          V* v_new) const {
        const V g = weight_decay != S(0) ? grad + p * weight_decay : grad;
        const V mi = m * beta1 + g * (S(1) - beta1);
        const V vi = v * beta2 + g * g * (S(1) - beta2);
        if (m_new) *m_new = mi;
        if (v_new) *v_new = vi;
        // safe_sqrt: at v = 0 (a fresh optimizer, a gradient that stays 0) the lookahead's
        // derivative through √v is finite, ∂q/∂g = (1 − β₁)/ε, where sqrt's would be NaN.
        return mi / (safe_sqrt(vi) / bias2_sqrt + eps);
    }
};

}  // namespace l2rw::optim::rule
