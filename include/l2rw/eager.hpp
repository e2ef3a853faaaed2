// l2rw/eager.hpp — tensor-in, tensor-out kernels with shape checking, no autodiff.
//
// These are the forward computations of the differentiable ops in autodiff/ops.hpp; each
// checks its operands and throws ShapeError/ValueError naming the op and the shapes.
#pragma once

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <vector>

#include "backend/kernels.hpp"
#include "tensor.hpp"

namespace l2rw::eager {

template <class T, Backend B, class Op>
Tensor<T, B> map(const Tensor<T, B>& x, Op op) {
    Tensor<T, B> out(x.shape());
    B::for_each(x.numel(), kernel::Map<T, Op>{x.data(), out.data(), op});
    return out;
}

template <class T, Backend B, class Op>
Tensor<T, B> zip(const Tensor<T, B>& a, const Tensor<T, B>& b, Op op, const char* name) {
    if (a.shape() == b.shape()) {
        Tensor<T, B> out(a.shape());
        B::for_each(a.numel(), kernel::Zip<T, Op>{a.data(), b.data(), out.data(), op});
        return out;
    }
    const Shape s = broadcast_shapes(a.shape(), b.shape(), name);
    Tensor<T, B> out(s);
    kernel::ZipBroadcast<T, Op> k{a.data(), b.data(), out.data(), op, {}, {}, {}};
    const auto d = s.padded();
    const auto sa = broadcast_strides(a.shape(), s), sb = broadcast_strides(b.shape(), s);
    for (int i = 0; i < max_rank; ++i) {
        k.dims[i] = d[static_cast<std::size_t>(i)];
        k.sa[i] = sa[static_cast<std::size_t>(i)];
        k.sb[i] = sb[static_cast<std::size_t>(i)];
    }
    B::for_each(s.numel() / std::max<index_t>(k.dims[3], 1), k);
    return out;
}

namespace detail {
/// Checks that `small` is `big` with some extents reduced to 1 (after right-alignment).
inline void check_reducible(const Shape& big, const Shape& small, const char* name) {
    if (small.rank() > big.rank())
        throw ShapeError(std::string(name) + ": cannot reduce " + big.str() + " to " + small.str());
    const auto pb = big.padded(), ps = small.padded();
    for (std::size_t i = 0; i < max_rank; ++i)
        if (ps[i] != pb[i] && ps[i] != 1)
            throw ShapeError(std::string(name) + ": cannot reduce " + big.str() + " to " +
                             small.str());
}
inline std::array<index_t, max_rank> strides_of(const Shape& s) {
    const auto p = s.padded();
    std::array<index_t, max_rank> st{};
    index_t acc = 1;
    for (int i = max_rank - 1; i >= 0; --i) {
        st[static_cast<std::size_t>(i)] = acc;
        acc *= p[static_cast<std::size_t>(i)];
    }
    return st;
}
template <class T, Backend B, class Op>
Tensor<T, B> reduce_to(const Tensor<T, B>& x, const Shape& to, Op op, T init, const char* name) {
    check_reducible(x.shape(), to, name);
    Tensor<T, B> out(to);
    kernel::ReducedElement<T> e{x.data(), {}, {}, {}, {}, 1};
    const auto pb = x.shape().padded(), ps = to.padded();
    const auto st = strides_of(x.shape());
    for (std::size_t i = 0; i < max_rank; ++i) {
        const bool reduced = ps[i] == 1 && pb[i] != 1;
        e.odims[i] = ps[i];
        e.ost[i] = reduced ? 0 : st[i];
        e.rdims[i] = reduced ? pb[i] : 1;
        e.rst[i] = reduced ? st[i] : 0;
        e.rcount *= e.rdims[i];
    }
    if constexpr (SegmentReductions<B>) {
        B::reduce_segments(out.numel(), e.rcount, e, op, init, out.data());
    } else {
        kernel::ReduceTo<T, Op> k{out.data(), op, init, e};
        B::for_each(out.numel(), k);
    }
    return out;
}
}  // namespace detail

/// Sums `x` over the slots where `to` has extent 1 (the adjoint of broadcast_to).
template <class T, Backend B>
Tensor<T, B> sum_to(const Tensor<T, B>& x, const Shape& to) {
    if (x.shape() == to) return x;
    detail::check_reducible(x.shape(), to, "sum_to");
    if (to.numel() == 1) {  // a full reduction: the backend's tuned sum, kept in its memory
        Tensor<T, B> out(to);
        B::sum_into(x.data(), x.numel(), out.data());
        return out;
    }
    return detail::reduce_to(x, to, kernel::Add{}, T(0), "sum_to");
}

/// Maximum of `x` over the slots where `to` has extent 1.
template <class T, Backend B>
Tensor<T, B> max_to(const Tensor<T, B>& x, const Shape& to) {
    if (x.shape() == to) return x;
    if (x.numel() == 0) throw ShapeError("max: empty tensor " + x.shape().str());
    return detail::reduce_to(x, to, kernel::Max{}, -std::numeric_limits<T>::infinity(), "max");
}

/// Repeats `x` along its extent-1 slots to `to` (NumPy broadcasting).
template <class T, Backend B>
Tensor<T, B> broadcast_to(const Tensor<T, B>& x, const Shape& to) {
    if (x.shape() == to) return x;
    const Shape s = broadcast_shapes(x.shape(), to, "broadcast_to");
    if (!(s == to))
        throw ShapeError("broadcast_to: cannot broadcast " + x.shape().str() + " to " + to.str());
    Tensor<T, B> out(to);
    kernel::Gather4<T> k{x.data(), out.data(), {}, {}};
    const auto d = to.padded();
    const auto st = broadcast_strides(x.shape(), to);
    for (std::size_t i = 0; i < max_rank; ++i) {
        k.dims[i] = d[i];
        k.st[i] = st[i];
    }
    B::for_each(out.numel() / std::max<index_t>(k.dims[3], 1), k);
    return out;
}

/// Shape of `x` with `axis` reduced to extent 1 (keepdim) or removed.
inline Shape reduced_shape(const Shape& s, int axis, bool keepdim, const char* name) {
    const int a = axis < 0 ? axis + s.rank() : axis;
    if (a < 0 || a >= s.rank())
        throw ShapeError(std::string(name) + ": axis " + std::to_string(axis) +
                         " out of range for " + s.str());
    std::vector<index_t> d;
    for (int i = 0; i < s.rank(); ++i) {
        if (i != a)
            d.push_back(s[i]);
        else if (keepdim)
            d.push_back(1);
    }
    return Shape::from_range(d.begin(), d.end());
}

/// Axis permutation: out.dim(j) == x.dim(perm[j]).
template <class T, Backend B>
Tensor<T, B> permute(const Tensor<T, B>& x, const std::vector<int>& perm) {
    const int r = x.rank();
    std::vector<bool> seen(static_cast<std::size_t>(r), false);
    if (static_cast<int>(perm.size()) != r)
        throw ShapeError("permute: " + std::to_string(perm.size()) + " axes given for " +
                         x.shape().str());
    for (int p : perm) {
        if (p < 0 || p >= r || seen[static_cast<std::size_t>(p)])
            throw ShapeError("permute: axes are not a permutation of 0.." + std::to_string(r - 1) +
                             " for " + x.shape().str());
        seen[static_cast<std::size_t>(p)] = true;
    }
    std::vector<index_t> od;
    for (int p : perm) od.push_back(x.shape()[p]);
    const Shape os = Shape::from_range(od.begin(), od.end());
    Tensor<T, B> out(os);
    const auto ist = detail::strides_of(x.shape());  // padded: slot of axis i is i + 4 - r
    kernel::Gather4<T> k{x.data(), out.data(), {}, {}};
    const auto pd = os.padded();
    for (int i = 0; i < max_rank; ++i) {
        k.dims[i] = pd[static_cast<std::size_t>(i)];
        const int j = i - (max_rank - r);  // out axis
        k.st[i] =
            j < 0 ? 0
                  : ist[static_cast<std::size_t>(perm[static_cast<std::size_t>(j)] + max_rank - r)];
    }
    B::for_each(out.numel() / std::max<index_t>(k.dims[3], 1), k);
    return out;
}

/// op(a) op(b) for matrices; ta / tb use the transpose of a / b.
template <class T, Backend B>
Tensor<T, B> matmul(const Tensor<T, B>& a, const Tensor<T, B>& b, bool ta = false,
                    bool tb = false) {
    if (a.rank() != 2 || b.rank() != 2)
        throw ShapeError("matmul: operands must be matrices, got " + a.shape().str() + " and " +
                         b.shape().str());
    const index_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
    const index_t kb = tb ? b.dim(1) : b.dim(0), n = tb ? b.dim(0) : b.dim(1);
    if (k != kb)
        throw ShapeError(std::string("matmul: shapes ") + a.shape().str() + (ta ? "^T" : "") +
                         " and " + b.shape().str() + (tb ? "^T" : "") + " do not match (" +
                         std::to_string(k) + " vs " + std::to_string(kb) + ")");
    Tensor<T, B> out(Shape{m, n});
    B::gemm(ta, tb, m, n, k, a.data(), b.data(), out.data(), false);
    return out;
}

namespace detail {
template <Backend B>
void check_indices(const IndexTensor<B>& idx, index_t bound, const char* name, const char* what) {
    if (idx.rank() != 1)
        throw ShapeError(std::string(name) + ": " + what + " must be a vector, got " +
                         idx.shape().str());
    // The noted range (from the upload) when there is one: no host read on a device.
    const auto range = idx.value_range();
    if (!range || (range->first >= 0 && range->second < bound)) return;
    const auto h = idx.to_host();
    for (std::size_t i = 0; i < h.size(); ++i)
        if (h[i] < 0 || h[i] >= bound)
            throw ValueError(std::string(name) + ": " + what + "[" + std::to_string(i) +
                             "] = " + std::to_string(h[i]) + " is outside [0, " +
                             std::to_string(bound) + ")");
}
inline index_t row_size(const Shape& s) {
    return s.rank() == 0 ? 1 : s.numel() / std::max<index_t>(s[0], 1);
}
}  // namespace detail

/// Rows idx of x (x's leading axis indexed by idx).
template <class T, Backend B>
Tensor<T, B> gather_rows(const Tensor<T, B>& x, const IndexTensor<B>& idx) {
    if (x.rank() < 1)
        throw ShapeError("gather_rows: x must have rank >= 1, got " + x.shape().str());
    detail::check_indices(idx, x.dim(0), "gather_rows", "index");
    auto d = x.shape().dims();
    d[0] = idx.numel();
    Tensor<T, B> out(Shape::from_range(d.begin(), d.begin() + x.rank()));
    const index_t cols = detail::row_size(x.shape());
    B::for_each(out.numel(), kernel::GatherRows<T>{x.data(), idx.data(), out.data(), cols});
    return out;
}

/// out has `rows` rows; row r is the sum of the rows i of g with idx[i] == r.
template <class T, Backend B>
Tensor<T, B> scatter_add_rows(const Tensor<T, B>& g, const IndexTensor<B>& idx, index_t rows) {
    if (g.rank() < 1 || g.dim(0) != idx.numel())
        throw ShapeError("scatter_add_rows: " + g.shape().str() + " rows for " + idx.shape().str() +
                         " indices");
    detail::check_indices(idx, rows, "scatter_add_rows", "index");
    auto d = g.shape().dims();
    d[0] = rows;
    Tensor<T, B> out(Shape::from_range(d.begin(), d.begin() + g.rank()));
    const index_t cols = detail::row_size(g.shape());
    B::for_each(out.numel(),
                kernel::ScatterAddRows<T>{g.data(), idx.data(), out.data(), cols, idx.numel()});
    return out;
}

/// out[i] = x[i, y[i]] for x of shape [n, c].
template <class T, Backend B>
Tensor<T, B> pick(const Tensor<T, B>& x, const IndexTensor<B>& y) {
    if (x.rank() != 2 || y.rank() != 1 || y.numel() != x.dim(0))
        throw ShapeError("pick: scores " + x.shape().str() + " and labels " + y.shape().str() +
                         " do not match (want [n, c] and [n])");
    detail::check_indices(y, x.dim(1), "pick", "label");
    Tensor<T, B> out(Shape{x.dim(0)});
    B::for_each(x.dim(0), kernel::Pick<T>{x.data(), y.data(), out.data(), x.dim(1)});
    return out;
}

/// out[i, j] = g[i] where j == y[i], else 0; shape [n, cols].
template <class T, Backend B>
Tensor<T, B> unpick(const Tensor<T, B>& g, const IndexTensor<B>& y, index_t cols) {
    if (g.rank() != 1 || y.rank() != 1 || y.numel() != g.numel())
        throw ShapeError("unpick: values " + g.shape().str() + " and labels " + y.shape().str() +
                         " do not match");
    Tensor<T, B> out(Shape{g.numel(), cols});
    B::for_each(out.numel(), kernel::Unpick<T>{g.data(), y.data(), out.data(), cols});
    return out;
}

/// Row-wise log-softmax of an [n, c] matrix.
template <class T, Backend B>
Tensor<T, B> log_softmax_rows(const Tensor<T, B>& x) {
    if (x.rank() != 2 || x.dim(1) == 0)
        throw ShapeError("log_softmax: want an [n, c] matrix with c > 0, got " + x.shape().str());
    Tensor<T, B> out(x.shape());
    B::for_each(x.dim(0), kernel::LogSoftmaxRows<T>{x.data(), out.data(), x.dim(1)});
    return out;
}

}  // namespace l2rw::eager
