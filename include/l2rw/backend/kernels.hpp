// l2rw/backend/kernels.hpp — element kernels written once as functors over a flat index.
//
// A backend runs a kernel by calling it for every index in [0, n): the Cpu backend in a
// loop (split over threads when it is large enough: a kernel whose calls each do more than
// one element's work says how much by a `cost()` member), the Thrust backend through
// thrust::for_each on its device system (host threads under OpenMP, the GPU under nvcc). Because
// both backends run the same functor, they do the same arithmetic in the same order for every
// element; only reductions and GEMM may sum in a different order. Kernels know nothing of Var or of
// the tape.
#pragma once

#include <cmath>

#include "../config.hpp"

namespace l2rw::kernel {

// ---- scalar functions -----------------------------------------------------------------

struct Neg {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return -x;
    }
};
struct Exp {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return std::exp(x);
    }
};
struct Log {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return std::log(x);
    }
};
struct Sqrt {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return std::sqrt(x);
    }
};
struct Relu {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return x > T(0) ? x : T(0);
    }
};
/// 1 where x > 0, else 0: the derivative of relu (and of max-pool's winner mask).
struct Step {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return x > T(0) ? T(1) : T(0);
    }
};
struct Sigmoid {
    template <class T>
    L2RW_HD T operator()(T x) const {
        // Stable on both tails: never exponentiates a large positive number.
        if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
        T e = std::exp(x);
        return e / (T(1) + e);
    }
};
struct Tanh {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return std::tanh(x);
    }
};
/// log(1 + exp(x)) without overflow.
struct Softplus {
    template <class T>
    L2RW_HD T operator()(T x) const {
        return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-(x > T(0) ? x : -x)));
    }
};
template <class T>
struct PowScalar {
    T p;
    L2RW_HD T operator()(T x) const { return std::pow(x, p); }
};
template <class T>
struct AddScalar {
    T s;
    L2RW_HD T operator()(T x) const { return x + s; }
};
template <class T>
struct MulScalar {
    T s;
    L2RW_HD T operator()(T x) const { return x * s; }
};
/// s / x
template <class T>
struct RDivScalar {
    T s;
    L2RW_HD T operator()(T x) const { return s / x; }
};
template <class T>
struct Fill {
    T v;
    L2RW_HD T operator()(T) const { return v; }
};

struct Add {
    template <class T>
    L2RW_HD T operator()(T a, T b) const {
        return a + b;
    }
};
struct Sub {
    template <class T>
    L2RW_HD T operator()(T a, T b) const {
        return a - b;
    }
};
struct Mul {
    template <class T>
    L2RW_HD T operator()(T a, T b) const {
        return a * b;
    }
};
struct Div {
    template <class T>
    L2RW_HD T operator()(T a, T b) const {
        return a / b;
    }
};
/// g where x > 0, else 0: relu's first-order VJP in one pass.
struct ReluGrad {
    template <class T>
    L2RW_HD T operator()(T g, T x) const {
        return x > T(0) ? g : T(0);
    }
};
struct Max {
    template <class T>
    L2RW_HD T operator()(T a, T b) const {
        return a > b ? a : b;
    }
};

// ---- index helpers ----------------------------------------------------------------------

/// Offset of flat index `i` of a 4-slot shape `dims` under strides `st`.
L2RW_HD inline index_t strided_offset(index_t i, const index_t* dims, const index_t* st) {
    index_t off = 0;
    for (int k = max_rank - 1; k >= 0; --k) {
        const index_t c = i % dims[k];
        i /= dims[k];
        off += c * st[k];
    }
    return off;
}

// ---- elementwise ------------------------------------------------------------------------

template <class T, class Op>
struct Map {
    const T* in;
    T* out;
    Op op;
    L2RW_HD void operator()(index_t i) const { out[i] = op(in[i]); }
};

template <class T, class Op>
struct Zip {
    const T* a;
    const T* b;
    T* out;
    Op op;
    L2RW_HD void operator()(index_t i) const { out[i] = op(a[i], b[i]); }
};

/// out = op(a, b) with NumPy broadcasting; strides are 0 on broadcast slots. One call per
/// row of the last slot (run it over numel / dims[3] indices), so the index arithmetic is
/// paid once a row, not once an element.
template <class T, class Op>
struct ZipBroadcast {
    const T* a;
    const T* b;
    T* out;
    Op op;
    index_t dims[max_rank];
    index_t sa[max_rank];
    index_t sb[max_rank];
    L2RW_HD index_t cost() const { return dims[3]; }
    L2RW_HD void operator()(index_t row) const {
        const index_t oa = strided_offset(row * dims[3], dims, sa),
                      ob = strided_offset(row * dims[3], dims, sb);
        T* o = out + row * dims[3];
        for (index_t j = 0; j < dims[3]; ++j) o[j] = op(a[oa + j * sa[3]], b[ob + j * sb[3]]);
    }
};

/// out = in read through strides (broadcast_to, and permutations of axes); one call per
/// row of the last slot.
template <class T>
struct Gather4 {
    const T* in;
    T* out;
    index_t dims[max_rank];  // of out
    index_t st[max_rank];    // in's stride for each out slot
    L2RW_HD index_t cost() const { return dims[3]; }
    L2RW_HD void operator()(index_t row) const {
        const index_t base = strided_offset(row * dims[3], dims, st);
        T* o = out + row * dims[3];
        for (index_t j = 0; j < dims[3]; ++j) o[j] = in[base + j * st[3]];
    }
};

/// Element i of an axis reduction's flat view: segment i / rcount is one output, and its
/// element i % rcount is the input at the output's offset plus the reduced slots' offset
/// (what Thrust's reduce_segments reads).
template <class T>
struct ReducedElement {
    const T* in;
    index_t odims[max_rank];  // out's padded dims (1 on reduced slots)
    index_t ost[max_rank];    // in's stride for each kept slot (0 on reduced slots)
    index_t rdims[max_rank];  // extents of the reduced slots (1 elsewhere)
    index_t rst[max_rank];    // in's stride for each reduced slot (0 elsewhere)
    index_t rcount;
    L2RW_HD T operator()(index_t i) const {
        return in[strided_offset(i / rcount, odims, ost) + strided_offset(i % rcount, rdims, rst)];
    }
};

/// out[o] = the reduction of output o's elements (ReducedElement's layout), one task per
/// output.
template <class T, class Op>
struct ReduceTo {
    T* out;
    Op op;
    T init;
    ReducedElement<T> e;
    L2RW_HD index_t cost() const { return e.rcount; }
    L2RW_HD void operator()(index_t o) const {
        const index_t base = strided_offset(o, e.odims, e.ost);
        T acc = init;
        // Four nested loops over the reduced slots: no index division per element.
        for (index_t i0 = 0; i0 < e.rdims[0]; ++i0)
            for (index_t i1 = 0; i1 < e.rdims[1]; ++i1)
                for (index_t i2 = 0; i2 < e.rdims[2]; ++i2) {
                    const T* p = e.in + base + i0 * e.rst[0] + i1 * e.rst[1] + i2 * e.rst[2];
                    for (index_t i3 = 0; i3 < e.rdims[3]; ++i3) acc = op(acc, p[i3 * e.rst[3]]);
                }
        out[o] = acc;
    }
};

/// out[s] = init op value(s·len) op … op value(s·len + len − 1): a reduction of segments in
/// one task each, for backends without a parallel segmented reduction of their own.
template <class R, class V, class Op>
struct SegmentReduce {
    V value;
    Op op;
    R init;
    index_t len;
    R* out;
    L2RW_HD index_t cost() const { return len; }
    L2RW_HD void operator()(index_t s) const {
        R acc = init;
        for (index_t j = 0; j < len; ++j) acc = op(acc, value(s * len + j));
        out[s] = acc;
    }
};

// ---- rows and labels ---------------------------------------------------------------------

/// out[i, :] = in[idx[i], :]
template <class T>
struct GatherRows {
    const T* in;
    const index_t* idx;
    T* out;
    index_t cols;
    L2RW_HD void operator()(index_t e) const {
        const index_t i = e / cols, c = e % cols;
        out[e] = in[idx[i] * cols + c];
    }
};

/// out[r, :] = sum over i with idx[i] == r of g[i, :]; deterministic (no atomics).
template <class T>
struct ScatterAddRows {
    const T* g;
    const index_t* idx;
    T* out;
    index_t cols;
    index_t n;
    L2RW_HD index_t cost() const { return n; }
    L2RW_HD void operator()(index_t e) const {
        const index_t r = e / cols, c = e % cols;
        T acc = T(0);
        for (index_t i = 0; i < n; ++i)
            if (idx[i] == r) acc += g[i * cols + c];
        out[e] = acc;
    }
};

/// out[i] = x[i, y[i]]
template <class T>
struct Pick {
    const T* x;
    const index_t* y;
    T* out;
    index_t cols;
    L2RW_HD void operator()(index_t i) const { out[i] = x[i * cols + y[i]]; }
};

/// out[i, j] = (j == y[i]) ? g[i] : 0
template <class T>
struct Unpick {
    const T* g;
    const index_t* y;
    T* out;
    index_t cols;
    L2RW_HD void operator()(index_t e) const {
        const index_t i = e / cols, j = e % cols;
        out[e] = j == y[i] ? g[i] : T(0);
    }
};

/// Row-wise log-softmax of an [rows, cols] matrix, one row per call.
template <class T>
struct LogSoftmaxRows {
    const T* x;
    T* out;
    index_t cols;
    L2RW_HD index_t cost() const { return 3 * cols; }
    L2RW_HD void operator()(index_t r) const {
        const T* xr = x + r * cols;
        T* yr = out + r * cols;
        T m = xr[0];
        for (index_t j = 1; j < cols; ++j) m = xr[j] > m ? xr[j] : m;
        T s = T(0);
        for (index_t j = 0; j < cols; ++j) s += std::exp(xr[j] - m);
        const T lse = m + std::log(s);
        for (index_t j = 0; j < cols; ++j) yr[j] = xr[j] - lse;
    }
};

/// C[m, n] (+)= op(A) op(B), one output element per call; the portable GEMM.
template <class T>
struct GemmNaive {
    const T* a;
    const T* b;
    T* c;
    index_t n, k;
    index_t a_rs, a_cs;  // strides of op(A) as an [m, k] matrix
    index_t b_rs, b_cs;  // strides of op(B) as a [k, n] matrix
    bool accumulate;
    L2RW_HD index_t cost() const { return k; }
    L2RW_HD void operator()(index_t e) const {
        const index_t i = e / n, j = e % n;
        T acc = T(0);
        for (index_t p = 0; p < k; ++p) acc += a[i * a_rs + p * a_cs] * b[p * b_rs + j * b_cs];
        c[e] = accumulate ? c[e] + acc : acc;
    }
};

}  // namespace l2rw::kernel
