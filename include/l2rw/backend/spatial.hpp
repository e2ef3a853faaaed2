// l2rw/backend/spatial.hpp — kernels over NCHW images: im2col and its adjoint, pooling, and
// the zero-padding residual shortcut. Each adjoint pair is written as a gather so that no
// kernel needs atomics and results are deterministic on every backend.
//
// The kernels index by their geometry alone; the geometries, their builders and their
// checks are in backend/geometry.hpp.
#pragma once

#include "../config.hpp"
#include "geometry.hpp"

namespace l2rw::kernel {

/// cols[(n, oh, ow), (c, i, j)] = x[n, c, oh*s - p + i, ow*s - p + j] (0 outside); one call
/// per row of cols (one output position).
template <class T>
struct Im2col {
    const T* x;
    T* cols;
    Window2d g;
    L2RW_HD void operator()(index_t r) const {
        const index_t ow = r % g.ow, oh = (r / g.ow) % g.oh, n = r / (g.ow * g.oh);
        T* row = cols + r * g.kk();
        for (index_t c = 0; c < g.c; ++c) {
            const T* xc = x + (n * g.c + c) * g.h * g.w;
            for (index_t i = 0; i < g.kh; ++i) {
                const index_t h = oh * g.stride - g.pad + i;
                const bool hin = h >= 0 && h < g.h;
                for (index_t j = 0; j < g.kw; ++j) {
                    const index_t w = ow * g.stride - g.pad + j;
                    *row++ = (hin && w >= 0 && w < g.w) ? xc[h * g.w + w] : T(0);
                }
            }
        }
    }
};

/// The adjoint of Im2col: x[n, c, :, :] = the sum of the cols entries that read it; one call
/// per image plane (n, c), which it owns, so there are no write conflicts and no atomics.
template <class T>
struct Col2im {
    const T* cols;
    T* x;
    Window2d g;
    L2RW_HD void operator()(index_t plane) const {
        const index_t n = plane / g.c, c = plane % g.c;
        const index_t K = g.kk();
        T* xp = x + plane * g.h * g.w;
        for (index_t e = 0; e < g.h * g.w; ++e) xp[e] = T(0);
        for (index_t oh = 0; oh < g.oh; ++oh)
            for (index_t ow = 0; ow < g.ow; ++ow) {
                const T* row = cols + ((n * g.oh + oh) * g.ow + ow) * K + c * g.kh * g.kw;
                for (index_t i = 0; i < g.kh; ++i) {
                    const index_t h = oh * g.stride - g.pad + i;
                    if (h < 0 || h >= g.h) continue;
                    for (index_t j = 0; j < g.kw; ++j) {
                        const index_t w = ow * g.stride - g.pad + j;
                        if (w >= 0 && w < g.w) xp[h * g.w + w] += row[i * g.kw + j];
                    }
                }
            }
    }
};

/// The output columns ow whose window column j lands inside the input, [lo, hi): the
/// valid span of one kernel tap along a row (no per-element bounds test inside it).
L2RW_HD inline void valid_span(index_t out, index_t in, index_t stride, index_t pad, index_t tap,
                               index_t& lo, index_t& hi) {
    const index_t a = pad - tap;      // input column = ow * stride - a
    const index_t last = in - 1 + a;  // ow * stride <= last
    if (stride == 1) {                // no division on the common path
        lo = a > 0 ? a : 0;
        hi = last < 0 ? 0 : last + 1;
    } else {
        lo = a > 0 ? (a + stride - 1) / stride : 0;
        hi = last < 0 ? 0 : last / stride + 1;
    }
    if (hi > out) hi = out;
    if (lo > hi) lo = hi;
}

/// One image's unfolded windows in column layout, for the output rows [oh0, oh1):
/// cols[(c, i, j), (oh - oh0, ow)] = x[c, oh*s - p + i, ow*s - p + j] (0 outside), for x of
/// one image [C, H, W]. This is the layout whose GEMM with the
/// weights writes NCHW directly; a block of output rows keeps the matrix in cache.
template <class T>
struct Im2colImage {
    const T* x;
    T* cols;
    Window2d g;
    index_t oh0, oh1;
    L2RW_HD index_t cost() const { return g.kh * g.kw * (oh1 - oh0) * g.ow; }
    /// One call per channel c: its KH*KW rows of cols (no index division per row).
    L2RW_HD void operator()(index_t c) const {
        // Locals, not members: stores through `row` must not make the compiler reload g.
        const index_t H = g.h, W = g.w, OW = g.ow, s = g.stride, p = g.pad, KH = g.kh, KW = g.kw,
                      R = oh1 - oh0;
        const T* __restrict__ xc = x + c * H * W;
        for (index_t i = 0; i < KH; ++i)
            for (index_t j = 0; j < KW; ++j) {
                T* __restrict__ row = cols + ((c * KH + i) * KW + j) * R * OW;
                index_t lo, hi;
                valid_span(OW, W, s, p, j, lo, hi);
                for (index_t oh = oh0; oh < oh1; ++oh, row += OW) {
                    const index_t h = oh * s - p + i;
                    if (h < 0 || h >= H) {
                        for (index_t ow = 0; ow < OW; ++ow) row[ow] = T(0);
                        continue;
                    }
                    const T* __restrict__ xr = xc + h * W - p + j;
                    for (index_t ow = 0; ow < lo; ++ow) row[ow] = T(0);
                    if (s == 1)
                        for (index_t ow = lo; ow < hi; ++ow) row[ow] = xr[ow];
                    else
                        for (index_t ow = lo; ow < hi; ++ow) row[ow] = xr[ow * s];
                    for (index_t ow = hi; ow < OW; ++ow) row[ow] = T(0);
                }
            }
    }
};

/// The direct convolution of one output plane (n, o) per call:
/// y[n, o] = bias[o] + Σ_{c,i,j} w[o, c, i, j]·x[n, c, oh·s − p + i, ow·s − p + j], summed in
/// (c, i, j) order. For small C·KH·KW (a first layer on 1 or 3 channels) it replaces the
/// unfolding, which would cost more than the multiply-adds it feeds.
template <class T>
struct Conv2dDirect {
    const T* x;
    const T* w;
    const T* bias;  // may be null
    T* y;
    index_t O;
    Window2d g;
    L2RW_HD index_t cost() const { return g.kk() * g.oh * g.ow; }
    L2RW_HD void operator()(index_t no) const {
        const index_t H = g.h, W = g.w, C = g.c, OH = g.oh, OW = g.ow, s = g.stride, p = g.pad,
                      KH = g.kh, KW = g.kw, n = no / O, o = no % O;
        const T* __restrict__ xn = x + n * C * H * W;
        const T* __restrict__ wo = w + o * C * KH * KW;
        T* __restrict__ yp = y + no * OH * OW;
        const T b = bias ? bias[o] : T(0);
        for (index_t oh = 0; oh < OH; ++oh) {
            T* __restrict__ yr = yp + oh * OW;
            for (index_t ow = 0; ow < OW; ++ow) yr[ow] = b;
            for (index_t c = 0; c < C; ++c)
                for (index_t i = 0; i < KH; ++i) {
                    const index_t h = oh * s - p + i;
                    if (h < 0 || h >= H) continue;
                    const T* xr = xn + (c * H + h) * W;
                    for (index_t j = 0; j < KW; ++j) {
                        const T wv = wo[(c * KH + i) * KW + j];
                        index_t lo, hi;
                        valid_span(OW, W, s, p, j, lo, hi);
                        const T* __restrict__ xs = xr - p + j;
                        if (s == 1)
                            for (index_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow];
                        else
                            for (index_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow * s];
                    }
                }
        }
    }
};

/// The adjoint of Im2colImage over the same output rows [oh0, oh1): adds to x[c, :, :] of
/// one image (zeroed by the caller before the first block) the cols entries that read it;
/// one call per channel plane, which it owns (no write conflicts, no atomics).
template <class T>
struct Col2imImage {
    const T* cols;
    T* x;
    Window2d g;
    index_t oh0, oh1;
    L2RW_HD index_t cost() const { return g.kh * g.kw * (oh1 - oh0) * g.ow; }
    L2RW_HD void operator()(index_t c) const {
        const index_t H = g.h, W = g.w, OW = g.ow, s = g.stride, p = g.pad, KH = g.kh, KW = g.kw,
                      R = oh1 - oh0;
        T* __restrict__ xp = x + c * H * W;
        for (index_t i = 0; i < KH; ++i)
            for (index_t j = 0; j < KW; ++j) {
                const T* __restrict__ row = cols + ((c * KH + i) * KW + j) * R * OW;
                index_t lo, hi;
                valid_span(OW, W, s, p, j, lo, hi);
                for (index_t oh = oh0; oh < oh1; ++oh) {
                    const index_t h = oh * s - p + i;
                    if (h < 0 || h >= H) continue;
                    T* __restrict__ xr = xp + h * W - p + j;
                    const T* __restrict__ cr = row + (oh - oh0) * OW;
                    if (s == 1)
                        for (index_t ow = lo; ow < hi; ++ow) xr[ow] += cr[ow];
                    else
                        for (index_t ow = lo; ow < hi; ++ow) xr[ow * s] += cr[ow];
                }
            }
    }
};

/// out[r, p] = v[r] for an [rows, cols] block: a bias broadcast over each output plane.
template <class T>
struct FillRows {
    const T* v;
    T* out;
    index_t cols;
    L2RW_HD index_t cost() const { return cols; }
    L2RW_HD void operator()(index_t r) const {
        T* o = out + r * cols;
        for (index_t p = 0; p < cols; ++p) o[p] = v[r];
    }
};

/// out[e] = sum over s of in[s * len + e], in slice order: the fixed-order combination of
/// per-chunk partial results.
template <class T>
struct SumSlices {
    const T* in;
    T* out;
    index_t len, slices;
    L2RW_HD index_t cost() const { return slices; }
    L2RW_HD void operator()(index_t e) const {
        T acc = in[e];
        for (index_t s = 1; s < slices; ++s) acc += in[s * len + e];
        out[e] = acc;
    }
};

/// For each pooling window, the flat index into x of its maximum (first one on ties); one
/// call per image plane.
template <class T>
struct MaxPoolArgmax {
    const T* x;
    index_t* arg;
    Window2d g;
    L2RW_HD index_t cost() const { return g.oh * g.ow * g.kh * g.kw; }
    L2RW_HD void operator()(index_t nc) const {
        // Locals, not members (the stores through `a` must not make the compiler reload g),
        // the window clipped to the plane once, and a select instead of a branch on the data.
        const index_t H = g.h, W = g.w, OH = g.oh, OW = g.ow, KH = g.kh, KW = g.kw, s = g.stride,
                      p = g.pad, base = nc * H * W;
        const T* __restrict__ plane = x + base;
        index_t* __restrict__ a = arg + nc * OH * OW;
        for (index_t oh = 0; oh < OH; ++oh) {
            const index_t h0 = oh * s - p, hlo = h0 < 0 ? 0 : h0, hhi = h0 + KH > H ? H : h0 + KH;
            for (index_t ow = 0; ow < OW; ++ow) {
                const index_t w0 = ow * s - p, wlo = w0 < 0 ? 0 : w0,
                              whi = w0 + KW > W ? W : w0 + KW;
                if (hlo >= hhi || wlo >= whi) {
                    a[oh * OW + ow] = -1;
                    continue;
                }
                // The first maximum in row-major order wins (strict >), as before.
                index_t best = hlo * W + wlo;
                T bv = plane[best];
                for (index_t h = hlo; h < hhi; ++h)
                    for (index_t w = wlo; w < whi; ++w) {
                        const index_t idx = h * W + w;
                        const T v = plane[idx];
                        const bool better = v > bv;
                        best = better ? idx : best;
                        bv = better ? v : bv;
                    }
                a[oh * OW + ow] = base + best;
            }
        }
    }
};

/// out[e] = x[arg[e]]
template <class T>
struct GatherFlat {
    const T* x;
    const index_t* arg;
    T* out;
    L2RW_HD void operator()(index_t e) const { out[e] = x[arg[e]]; }
};

/// The adjoint of GatherFlat for pooling windows, one call per image plane, which it owns:
/// the plane is zeroed and each of its windows adds its gradient at its winner. Winners of a
/// plane lie in that plane, so there are no write conflicts, and no index division.
template <class T>
struct MaxPoolScatter {
    const T* g;
    const index_t* arg;
    T* x;
    Window2d geo;
    L2RW_HD index_t cost() const { return geo.h * geo.w + geo.oh * geo.ow; }
    L2RW_HD void operator()(index_t plane) const {
        T* xp = x + plane * geo.h * geo.w;
        for (index_t e = 0; e < geo.h * geo.w; ++e) xp[e] = T(0);
        const index_t P = geo.oh * geo.ow;
        for (index_t o = plane * P; o < (plane + 1) * P; ++o) x[arg[o]] += g[o];
    }
};

/// Average over each window (no padding), out [n, c, oh, ow].
template <class T>
struct AvgPool {
    const T* x;
    T* out;
    Window2d g;
    L2RW_HD void operator()(index_t e) const {
        const index_t ow = e % g.ow, oh = (e / g.ow) % g.oh, nc = e / (g.ow * g.oh);
        T acc = T(0);
        for (index_t i = 0; i < g.kh; ++i)
            for (index_t j = 0; j < g.kw; ++j)
                acc += x[(nc * g.h + oh * g.stride + i) * g.w + ow * g.stride + j];
        out[e] = acc / T(g.kh * g.kw);
    }
};

/// The adjoint of AvgPool, one call per image plane: each window adds its gradient over the
/// elements it covers, then the plane is divided by the window size.
template <class T>
struct AvgPoolAdjoint {
    const T* g;
    T* x;
    Window2d geo;  // pad == 0
    L2RW_HD index_t cost() const { return geo.h * geo.w + geo.oh * geo.ow * geo.kh * geo.kw; }
    L2RW_HD void operator()(index_t plane) const {
        T* xp = x + plane * geo.h * geo.w;
        const T* gp = g + plane * geo.oh * geo.ow;
        for (index_t e = 0; e < geo.h * geo.w; ++e) xp[e] = T(0);
        for (index_t oh = 0; oh < geo.oh; ++oh)
            for (index_t ow = 0; ow < geo.ow; ++ow) {
                const T v = gp[oh * geo.ow + ow];
                for (index_t i = 0; i < geo.kh; ++i) {
                    T* xr = xp + (oh * geo.stride + i) * geo.w + ow * geo.stride;
                    for (index_t j = 0; j < geo.kw; ++j) xr[j] += v;
                }
            }
        const T k = T(geo.kh * geo.kw);
        for (index_t e = 0; e < geo.h * geo.w; ++e) xp[e] /= k;
    }
};

/// The residual "option A" shortcut, one call per output plane (image, output channel):
/// a copy of every `stride`-th row and column of the matching input plane, or zeros for the
/// padded channels. Rows and columns are walked, never divided out of a flat index.
template <class T>
struct ShortcutPad {
    const T* x;
    T* out;
    ShortcutGeo g;
    L2RW_HD index_t cost() const { return g.oh * g.ow; }
    L2RW_HD void operator()(index_t plane) const {
        const index_t n = plane / g.oc, ci = plane % g.oc - g.before;
        T* op = out + plane * g.oh * g.ow;
        if (ci < 0 || ci >= g.c) {
            for (index_t e = 0; e < g.oh * g.ow; ++e) op[e] = T(0);
            return;
        }
        const T* xp = x + (n * g.c + ci) * g.h * g.w;
        for (index_t h = 0; h < g.oh; ++h) {
            const T* xr = xp + h * g.stride * g.w;
            for (index_t w = 0; w < g.ow; ++w) op[h * g.ow + w] = xr[w * g.stride];
        }
    }
};
/// The adjoint of ShortcutPad, one call per input plane (image, input channel): the
/// gradient of the output plane it was copied to, scattered back to the rows and columns
/// it was taken from; zeros elsewhere.
template <class T>
struct ShortcutPadAdjoint {
    const T* gout;
    T* x;
    ShortcutGeo g;
    L2RW_HD index_t cost() const { return g.h * g.w; }
    L2RW_HD void operator()(index_t plane) const {
        const index_t n = plane / g.c, c = plane % g.c;
        T* xp = x + plane * g.h * g.w;
        for (index_t e = 0; e < g.h * g.w; ++e) xp[e] = T(0);
        const T* gp = gout + (n * g.oc + c + g.before) * g.oh * g.ow;
        for (index_t h = 0; h < g.oh; ++h) {
            T* xr = xp + h * g.stride * g.w;
            for (index_t w = 0; w < g.ow; ++w) xr[w * g.stride] = gp[h * g.ow + w];
        }
    }
};

}  // namespace l2rw::kernel
