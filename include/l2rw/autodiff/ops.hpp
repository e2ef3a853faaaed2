// l2rw/autodiff/ops.hpp — differentiable operations on Var, each with its VJP rule (reverse
// mode) and its JVP rule (forward mode: the output's tangent from the inputs' tangents).
//
// Each op names what its rule reads (detail::keep_*: its output, which inputs), and the tape
// keeps only those values: an activation that no rule needs is freed as soon as the forward
// pass lets go of it.
//
// The invariant that makes backward-on-backward work: every rule is written with the same
// Var operations, so when grad() runs with create_graph the backward pass is itself
// recorded and can be differentiated again. Rules that need a non-differentiable factor
// (relu's step) use it as a constant: the curvature of the input still flows through
// the gradient Var that multiplies it.
#pragma once

#include <numeric>
#include <type_traits>
#include <vector>

#include "../eager.hpp"
#include "var.hpp"

namespace l2rw {

namespace detail {
/// The sum of two tangent terms, either of which may be undefined (no contribution).
template <class T, Backend B>
Var<T, B> tangent_sum(const Var<T, B>& a, const Var<T, B>& b) {
    if (!a.defined()) return b;
    if (!b.defined()) return a;
    return a + b;
}
}  // namespace detail

// ---- shape plumbing -----------------------------------------------------------------------

template <class T, Backend B>
Var<T, B> broadcast_to(const Var<T, B>& x, const Shape& to);

/// Sums x down to shape `to` (the adjoint of broadcasting).
template <class T, Backend B>
Var<T, B> sum_to(const Var<T, B>& x, const Shape& to) {
    if (x.shape() == to) return x;
    const Shape from = x.shape();
    return detail::record<T, B>(
        detail::keep_none, "sum_to", eager::sum_to(x.value(), to), {&x},
        [from](detail::VjpContext<T, B>& c) { c.gin[0] = broadcast_to(c.gout, from); },
        [to](const detail::JvpContext<T, B>& c) { return sum_to(c.tin[0], to); });
}

/// Repeats x along its extent-1 axes to shape `to`.
template <class T, Backend B>
Var<T, B> broadcast_to(const Var<T, B>& x, const Shape& to) {
    if (x.shape() == to) return x;
    const Shape from = x.shape();
    return detail::record<T, B>(
        detail::keep_none, "broadcast_to", eager::broadcast_to(x.value(), to), {&x},
        [from](detail::VjpContext<T, B>& c) { c.gin[0] = sum_to(c.gout, from); },
        [to](const detail::JvpContext<T, B>& c) { return broadcast_to(c.tin[0], to); });
}

template <class T, Backend B>
Var<T, B> reshape(const Var<T, B>& x, const Shape& to) {
    if (x.shape() == to) return x;
    const Shape from = x.shape();
    return detail::record<T, B>(
        detail::keep_none, "reshape", x.value().reshape(to), {&x},
        [from](detail::VjpContext<T, B>& c) { c.gin[0] = reshape(c.gout, from); },
        [to](const detail::JvpContext<T, B>& c) { return reshape(c.tin[0], to); });
}

/// Axis permutation: result.dim(j) == x.dim(perm[j]).
template <class T, Backend B>
Var<T, B> permute(const Var<T, B>& x, const std::vector<int>& perm) {
    std::vector<int> inv(perm.size());
    auto out = eager::permute(x.value(), perm);  // validates perm
    for (std::size_t j = 0; j < perm.size(); ++j)
        inv[static_cast<std::size_t>(perm[j])] = static_cast<int>(j);
    return detail::record<T, B>(
        detail::keep_none, "permute", std::move(out), {&x},
        [inv](detail::VjpContext<T, B>& c) { c.gin[0] = permute(c.gout, inv); },
        [perm](const detail::JvpContext<T, B>& c) { return permute(c.tin[0], perm); });
}

/// Matrix transpose.
template <class T, Backend B>
Var<T, B> transpose(const Var<T, B>& x) {
    if (x.rank() != 2) throw ShapeError("transpose: want a matrix, got " + x.shape().str());
    return permute(x, {1, 0});
}

// ---- arithmetic -------------------------------------------------------------------------------

template <class T, Backend B>
Var<T, B> operator+(const Var<T, B>& a, const Var<T, B>& b) {
    const Shape sa = a.shape(), sb = b.shape();
    return detail::record<T, B>(
        detail::keep_none, "add", eager::zip(a.value(), b.value(), kernel::Add{}, "add"), {&a, &b},
        [sa, sb](detail::VjpContext<T, B>& c) {
            if (c.needs[0]) c.gin[0] = sum_to(c.gout, sa);
            if (c.needs[1]) c.gin[1] = sum_to(c.gout, sb);
        },
        [](const detail::JvpContext<T, B>& c) {
            return broadcast_to(detail::tangent_sum(c.tin[0], c.tin[1]), c.out.shape());
        });
}

template <class T, Backend B>
Var<T, B> operator-(const Var<T, B>& a) {
    return detail::record<T, B>(
        detail::keep_none, "neg", eager::map(a.value(), kernel::Neg{}), {&a},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = -c.gout; },
        [](const detail::JvpContext<T, B>& c) { return -c.tin[0]; });
}

template <class T, Backend B>
Var<T, B> operator-(const Var<T, B>& a, const Var<T, B>& b) {
    const Shape sa = a.shape(), sb = b.shape();
    return detail::record<T, B>(
        detail::keep_none, "sub", eager::zip(a.value(), b.value(), kernel::Sub{}, "sub"), {&a, &b},
        [sa, sb](detail::VjpContext<T, B>& c) {
            if (c.needs[0]) c.gin[0] = sum_to(c.gout, sa);
            if (c.needs[1]) c.gin[1] = -sum_to(c.gout, sb);
        },
        [](const detail::JvpContext<T, B>& c) {
            const auto t1 = c.tin[1].defined() ? -c.tin[1] : c.tin[1];
            return broadcast_to(detail::tangent_sum(c.tin[0], t1), c.out.shape());
        });
}

template <class T, Backend B>
Var<T, B> operator*(const Var<T, B>& a, const Var<T, B>& b) {
    const Shape sa = a.shape(), sb = b.shape();
    return detail::record<T, B>(
        detail::keep_in0 | detail::keep_in1, "mul",
        eager::zip(a.value(), b.value(), kernel::Mul{}, "mul"), {&a, &b},
        [sa, sb](detail::VjpContext<T, B>& c) {
            if (c.needs[0]) c.gin[0] = sum_to(c.gout * c.in[1], sa);
            if (c.needs[1]) c.gin[1] = sum_to(c.gout * c.in[0], sb);
        },
        [](const detail::JvpContext<T, B>& c) {
            Var<T, B> t;
            if (c.tin[0].defined()) t = c.tin[0] * c.in[1];
            if (c.tin[1].defined()) t = detail::tangent_sum(t, c.in[0] * c.tin[1]);
            return broadcast_to(t, c.out.shape());
        });
}

template <class T, Backend B>
Var<T, B> operator/(const Var<T, B>& a, const Var<T, B>& b) {
    const Shape sa = a.shape(), sb = b.shape();
    return detail::record<T, B>(
        detail::keep_in1 | detail::keep_out, "div",
        eager::zip(a.value(), b.value(), kernel::Div{}, "div"), {&a, &b},
        [sa, sb](detail::VjpContext<T, B>& c) {
            if (c.needs[0]) c.gin[0] = sum_to(c.gout / c.in[1], sa);
            if (c.needs[1]) c.gin[1] = -sum_to(c.gout * c.out / c.in[1], sb);
        },
        [](const detail::JvpContext<T, B>& c) {
            Var<T, B> t;
            if (c.tin[0].defined()) t = c.tin[0] / c.in[1];
            if (c.tin[1].defined()) t = detail::tangent_sum(t, -(c.tin[1] * c.out / c.in[1]));
            return broadcast_to(t, c.out.shape());
        });
}

// scalar forms
template <class T, Backend B>
Var<T, B> operator+(const Var<T, B>& a, std::type_identity_t<T> s) {
    return detail::record<T, B>(
        detail::keep_none, "add_scalar", eager::map(a.value(), kernel::AddScalar<T>{s}), {&a},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout; },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0]; });
}
template <class T, Backend B>
Var<T, B> operator+(std::type_identity_t<T> s, const Var<T, B>& a) {
    return a + s;
}
template <class T, Backend B>
Var<T, B> operator-(const Var<T, B>& a, std::type_identity_t<T> s) {
    return a + (-s);
}
template <class T, Backend B>
Var<T, B> operator-(std::type_identity_t<T> s, const Var<T, B>& a) {
    return (-a) + s;
}
template <class T, Backend B>
Var<T, B> operator*(const Var<T, B>& a, std::type_identity_t<T> s) {
    return detail::record<T, B>(
        detail::keep_none, "mul_scalar", eager::map(a.value(), kernel::MulScalar<T>{s}), {&a},
        [s](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * s; },
        [s](const detail::JvpContext<T, B>& c) { return c.tin[0] * s; });
}
template <class T, Backend B>
Var<T, B> operator*(std::type_identity_t<T> s, const Var<T, B>& a) {
    return a * s;
}
template <class T, Backend B>
Var<T, B> operator/(const Var<T, B>& a, std::type_identity_t<T> s) {
    return a * (T(1) / s);
}
template <class T, Backend B>
Var<T, B> operator/(std::type_identity_t<T> s, const Var<T, B>& a) {
    return detail::record<T, B>(
        detail::keep_in0 | detail::keep_out, "rdiv_scalar",
        eager::map(a.value(), kernel::RDivScalar<T>{s}), {&a},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = -(c.gout * c.out / c.in[0]); },
        [](const detail::JvpContext<T, B>& c) { return -(c.tin[0] * c.out / c.in[0]); });
}

// ---- elementwise functions ----------------------------------------------------------------------

template <class T, Backend B>
Var<T, B> exp(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_out, "exp", eager::map(x.value(), kernel::Exp{}), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * c.out; },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0] * c.out; });
}
template <class T, Backend B>
Var<T, B> log(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_in0, "log", eager::map(x.value(), kernel::Log{}), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout / c.in[0]; },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0] / c.in[0]; });
}
template <class T, Backend B>
Var<T, B> sqrt(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_out, "sqrt", eager::map(x.value(), kernel::Sqrt{}), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout / c.out * T(0.5); },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0] / c.out * T(0.5); });
}
/// √x whose derivative at x = 0 is taken as 0 (a subgradient of the kind relu takes at 0)
/// instead of sqrt's 1/(2√x) = ∞, elsewhere 1/(2√x) as sqrt. For a quantity that is √ of a
/// square, as Adam's √v: at v = 0 the factor that multiplies this derivative is 0 too (m = 0),
/// and sqrt's rule would make 0·∞ = NaN of a derivative that is finite. The rules keep
/// √x's curvature where x > 0 and are written so that none of their factors is infinite.
template <class T, Backend B>
Var<T, B> safe_sqrt(const Var<T, B>& x) {
    // 1/(2√x) where x > 0 and 0 at 0, from the output √x ≥ 0: m/(2(√x + 1 − m)), m = [√x > 0].
    auto slope = [](const Var<T, B>& out) {
        const Var<T, B> m(eager::map(out.value(), kernel::Step{}));
        return m * T(0.5) / (out + (T(1) - m));
    };
    return detail::record<T, B>(
        detail::keep_out, "safe_sqrt", eager::map(x.value(), kernel::Sqrt{}), {&x},
        [slope](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * slope(c.out); },
        [slope](const detail::JvpContext<T, B>& c) { return c.tin[0] * slope(c.out); });
}
/// x^p for a constant exponent p.
template <class T, Backend B>
Var<T, B> pow(const Var<T, B>& x, std::type_identity_t<T> p) {
    return detail::record<T, B>(
        detail::keep_in0, "pow", eager::map(x.value(), kernel::PowScalar<T>{p}), {&x},
        [p](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * pow(c.in[0], p - T(1)) * p; },
        [p](const detail::JvpContext<T, B>& c) { return c.tin[0] * pow(c.in[0], p - T(1)) * p; });
}
template <class T, Backend B>
Var<T, B> square(const Var<T, B>& x) {
    return x * x;
}
template <class T, Backend B>
Var<T, B> relu(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_out, "relu", eager::map(x.value(), kernel::Relu{}), {&x},
        [](detail::VjpContext<T, B>& c) {
            // relu(x) > 0 exactly where x > 0: the rule reads the output, so the tape keeps
            // it and not the input.
            if (!grad_enabled())  // first order: one fused pass, the same numbers
                c.gin[0] = Var<T, B>(
                    eager::zip(c.gout.value(), c.out.value(), kernel::ReluGrad{}, "relu"));
            else
                c.gin[0] = c.gout * Var<T, B>(eager::map(c.out.value(), kernel::Step{}));
        },
        [](const detail::JvpContext<T, B>& c) {
            if (!grad_enabled())  // not recorded: one fused pass
                return Var<T, B>(
                    eager::zip(c.tin[0].value(), c.out.value(), kernel::ReluGrad{}, "relu"));
            return c.tin[0] * Var<T, B>(eager::map(c.out.value(), kernel::Step{}));
        });
}
template <class T, Backend B>
Var<T, B> sigmoid(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_out, "sigmoid", eager::map(x.value(), kernel::Sigmoid{}), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * c.out * (T(1) - c.out); },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0] * c.out * (T(1) - c.out); });
}
template <class T, Backend B>
Var<T, B> tanh(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_out, "tanh", eager::map(x.value(), kernel::Tanh{}), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * (T(1) - c.out * c.out); },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0] * (T(1) - c.out * c.out); });
}
/// log(1 + exp(x)), computed without overflow.
template <class T, Backend B>
Var<T, B> softplus(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_in0, "softplus", eager::map(x.value(), kernel::Softplus{}), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout * sigmoid(c.in[0]); },
        [](const detail::JvpContext<T, B>& c) { return c.tin[0] * sigmoid(c.in[0]); });
}

// ---- reductions -----------------------------------------------------------------------------

/// Sum of every element (a rank-0 result).
template <class T, Backend B>
Var<T, B> sum(const Var<T, B>& x) {
    return reshape(sum_to(x, Shape{}), Shape{});
}
/// Sum over one axis.
template <class T, Backend B>
Var<T, B> sum(const Var<T, B>& x, int axis, bool keepdim = false) {
    const Shape kept = eager::reduced_shape(x.shape(), axis, true, "sum");
    const Shape out = eager::reduced_shape(x.shape(), axis, keepdim, "sum");
    return reshape(sum_to(x, kept), out);
}
template <class T, Backend B>
Var<T, B> mean(const Var<T, B>& x) {
    if (x.numel() == 0) throw ShapeError("mean: empty tensor " + x.shape().str());
    return sum(x) * (T(1) / static_cast<T>(x.numel()));
}
template <class T, Backend B>
Var<T, B> mean(const Var<T, B>& x, int axis, bool keepdim = false) {
    const index_t n = x.shape().dim(axis);
    if (n == 0) throw ShapeError("mean: empty axis of " + x.shape().str());
    return sum(x, axis, keepdim) * (T(1) / static_cast<T>(n));
}
/// Maximum over one axis, as a constant (no gradient flows through it).
template <class T, Backend B>
Var<T, B> max_detached(const Var<T, B>& x, int axis, bool keepdim = false) {
    const Shape kept = eager::reduced_shape(x.shape(), axis, true, "max");
    const Shape out = eager::reduced_shape(x.shape(), axis, keepdim, "max");
    return Var<T, B>(eager::max_to(x.value(), kept).reshape(out));
}

// ---- linear algebra
// ------------------------------------------------------------------------------

/// op(a) · op(b), with op the transpose when ta / tb is set.
template <class T, Backend B>
Var<T, B> matmul(const Var<T, B>& a, const Var<T, B>& b, bool ta = false, bool tb = false) {
    return detail::record<T, B>(
        detail::keep_in0 | detail::keep_in1, "matmul", eager::matmul(a.value(), b.value(), ta, tb),
        {&a, &b},
        [ta, tb](detail::VjpContext<T, B>& c) {
            const auto &A = c.in[0], &Bm = c.in[1], &g = c.gout;
            if (c.needs[0]) {
                if (!ta)
                    c.gin[0] = tb ? matmul(g, Bm) : matmul(g, Bm, false, true);
                else
                    c.gin[0] = tb ? matmul(Bm, g, true, true) : matmul(Bm, g, false, true);
            }
            if (c.needs[1]) {
                if (!tb)
                    c.gin[1] = ta ? matmul(A, g) : matmul(A, g, true, false);
                else
                    c.gin[1] = ta ? matmul(g, A, true, true) : matmul(g, A, true, false);
            }
        },
        [ta, tb](const detail::JvpContext<T, B>& c) {
            Var<T, B> t;
            if (c.tin[0].defined()) t = matmul(c.tin[0], c.in[1], ta, tb);
            if (c.tin[1].defined()) t = detail::tangent_sum(t, matmul(c.in[0], c.tin[1], ta, tb));
            return t;
        });
}

// ---- indexing
// -------------------------------------------------------------------------------------

template <class T, Backend B>
Var<T, B> scatter_add_rows(const Var<T, B>& g, const IndexTensor<B>& idx, index_t rows);

/// Rows idx of x (along its leading axis); rows may repeat.
template <class T, Backend B>
Var<T, B> gather_rows(const Var<T, B>& x, const IndexTensor<B>& idx) {
    const index_t rows = x.rank() >= 1 ? x.dim(0) : 0;
    return detail::record<T, B>(
        detail::keep_none, "gather_rows", eager::gather_rows(x.value(), idx), {&x},
        [idx, rows](detail::VjpContext<T, B>& c) {
            c.gin[0] = scatter_add_rows(c.gout, idx, rows);
        },
        [idx](const detail::JvpContext<T, B>& c) { return gather_rows(c.tin[0], idx); });
}
/// A tensor of `rows` rows where row r sums the rows i of g with idx[i] == r.
template <class T, Backend B>
Var<T, B> scatter_add_rows(const Var<T, B>& g, const IndexTensor<B>& idx, index_t rows) {
    return detail::record<T, B>(
        detail::keep_none, "scatter_add_rows", eager::scatter_add_rows(g.value(), idx, rows), {&g},
        [idx](detail::VjpContext<T, B>& c) { c.gin[0] = gather_rows(c.gout, idx); },
        [idx, rows](const detail::JvpContext<T, B>& c) {
            return scatter_add_rows(c.tin[0], idx, rows);
        });
}

template <class T, Backend B>
Var<T, B> unpick(const Var<T, B>& g, const IndexTensor<B>& y, index_t cols);

/// out[i] = x[i, y[i]] for x of shape [n, c] and integer labels y of shape [n].
template <class T, Backend B>
Var<T, B> pick(const Var<T, B>& x, const IndexTensor<B>& y) {
    const index_t cols = x.rank() == 2 ? x.dim(1) : 0;
    return detail::record<T, B>(
        detail::keep_none, "pick", eager::pick(x.value(), y), {&x},
        [y, cols](detail::VjpContext<T, B>& c) { c.gin[0] = unpick(c.gout, y, cols); },
        [y](const detail::JvpContext<T, B>& c) { return pick(c.tin[0], y); });
}
/// The [n, cols] matrix with g[i] at (i, y[i]) and zeros elsewhere.
template <class T, Backend B>
Var<T, B> unpick(const Var<T, B>& g, const IndexTensor<B>& y, index_t cols) {
    return detail::record<T, B>(
        detail::keep_none, "unpick", eager::unpick(g.value(), y, cols), {&g},
        [y](detail::VjpContext<T, B>& c) { c.gin[0] = pick(c.gout, y); },
        [y, cols](const detail::JvpContext<T, B>& c) { return unpick(c.tin[0], y, cols); });
}

// ---- softmax and losses
// --------------------------------------------------------------------------

/// Row-wise log-softmax of an [n, c] matrix of scores.
template <class T, Backend B>
Var<T, B> log_softmax(const Var<T, B>& x) {
    return detail::record<T, B>(
        detail::keep_out, "log_softmax", eager::log_softmax_rows(x.value()), {&x},
        [](detail::VjpContext<T, B>& c) { c.gin[0] = c.gout - exp(c.out) * sum(c.gout, 1, true); },
        [](const detail::JvpContext<T, B>& c) {
            return c.tin[0] - sum(exp(c.out) * c.tin[0], 1, true);
        });
}
template <class T, Backend B>
Var<T, B> softmax(const Var<T, B>& x) {
    return exp(log_softmax(x));
}

/// Per-example softmax cross-entropy: out[i] = -log softmax(logits)[i, y[i]]; shape [n].
template <class T, Backend B>
Var<T, B> softmax_cross_entropy(const Var<T, B>& logits, const IndexTensor<B>& labels) {
    if (logits.rank() != 2 || labels.rank() != 1 || labels.numel() != logits.dim(0))
        throw ShapeError("softmax_cross_entropy: logits " + logits.shape().str() + " and labels " +
                         labels.shape().str() + " do not match (want [n, c] and [n])");
    eager::detail::check_indices(labels, logits.dim(1), "softmax_cross_entropy", "label");
    return -pick(log_softmax(logits), labels);
}

/// Per-example binary cross-entropy with logits: softplus(x) - x * t, elementwise, for
/// targets t in [0, 1] of the same shape as the logits.
template <class T, Backend B>
Var<T, B> binary_cross_entropy_with_logits(const Var<T, B>& logits, const Var<T, B>& targets) {
    if (!(logits.shape() == targets.shape()))
        throw ShapeError("binary_cross_entropy_with_logits: logits " + logits.shape().str() +
                         " and targets " + targets.shape().str() + " differ");
    return softplus(logits) - logits * targets;
}

namespace detail {
template <class T, Backend B>
Var<T, B> accumulate(const Var<T, B>& acc, const Var<T, B>& g) {
    return acc + g;
}
}  // namespace detail

}  // namespace l2rw
