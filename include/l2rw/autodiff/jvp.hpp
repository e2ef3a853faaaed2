// l2rw/autodiff/jvp.hpp — forward mode: Jacobian-vector products in one pass.
//
// A Var can carry a tangent (make_dual). Every op whose inputs carry tangents gives its
// result the tangent of its JVP rule (autodiff/ops.hpp, nn/functional.hpp: each op's value,
// VJP and JVP side by side), so a forward pass of any model computes f(x) and J_f(x)·t
// together — with no tape at all, or beside the tape a reverse pass will use. Tangents
// that nothing differentiates are not recorded (they cost no tape memory); with
// JvpOptions::create_graph the JVP rules are recorded too, so that a tangent can itself be
// differentiated (forward-over-reverse: ∇ₓ⟨s, J(x)·t⟩).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ops.hpp"
#include "var.hpp"

namespace l2rw {

/// `primal` carrying the tangent `tangent` (of the same shape), for forward mode.
template <class T, Backend B>
Var<T, B> make_dual(const Var<T, B>& primal, const Var<T, B>& tangent) {
    if (!primal.defined() || !tangent.defined())
        throw TapeError("make_dual: the primal and its tangent must both be defined");
    if (!(primal.shape() == tangent.shape()))
        throw ShapeError("make_dual: tangent of shape " + tangent.shape().str() +
                         " for a primal of shape " + primal.shape().str());
    return primal.with_tangent(tangent);
}

struct JvpOptions {
    /// Record the JVP rules on the tape, so that the tangent can be differentiated.
    bool create_graph = false;
};

/// Records JVP rules on the tape while it lives (forward-over-reverse).
class TangentGraphGuard {
  public:
    explicit TangentGraphGuard(bool on = true) : prev_(detail::tangent_graph()) {
        detail::tangent_graph() = on;
    }
    ~TangentGraphGuard() { detail::tangent_graph() = prev_; }
    TangentGraphGuard(const TangentGraphGuard&) = delete;
    TangentGraphGuard& operator=(const TangentGraphGuard&) = delete;

  private:
    bool prev_;
};

template <class T, Backend B>
struct JvpResult {
    Var<T, B> output;   // f(inputs), without its tangent
    Var<T, B> tangent;  // J_f(inputs) · tangents (zeros when f does not depend on them)
};

/// The value of f at `inputs` and its directional derivative along `tangents`:
/// J_f · t = Σ_k ∂f/∂inputs[k] · tangents[k], in one forward pass. f takes the inputs as a
/// vector of Vars and returns one Var.
template <class T, Backend B, class F>
JvpResult<T, B> jvp(F&& f, const std::vector<Var<T, B>>& inputs,
                    const std::vector<Var<T, B>>& tangents, JvpOptions opt = {}) {
    if (inputs.size() != tangents.size())
        throw TapeError("jvp: " + std::to_string(tangents.size()) + " tangents for " +
                        std::to_string(inputs.size()) + " inputs");
    std::vector<Var<T, B>> duals;
    duals.reserve(inputs.size());
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (!(inputs[k].shape() == tangents[k].shape()))
            throw ShapeError("jvp: tangent " + std::to_string(k) + " has shape " +
                             tangents[k].shape().str() + " but its input has shape " +
                             inputs[k].shape().str());
        duals.push_back(make_dual(inputs[k], tangents[k]));
    }
    TangentGraphGuard guard(opt.create_graph);
    const Var<T, B> out = f(std::as_const(duals));
    if (!out.defined()) throw TapeError("jvp: the function returned an undefined Var");
    JvpResult<T, B> r{out.primal(), out.tangent()};
    if (!r.tangent.defined()) r.tangent = Var<T, B>(Tensor<T, B>::zeros(out.shape()));
    return r;
}

}  // namespace l2rw
