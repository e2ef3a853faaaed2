// l2rw/backend/spatial.hpp — kernels over NCHW images: im2col and its adjoint, pooling, and
// the zero-padding residual shortcut. Each adjoint pair is written as a gather so that no
// kernel needs atomics and results are deterministic on every backend.
#pragma once

#include "../config.hpp"

namespace l2rw::kernel {

/// Geometry of a 2-d window sweep (convolution or pooling) over an NCHW tensor.
struct Window2d {
    index_t n, c, h, w;   // input
    index_t kh, kw;       // window
    index_t stride, pad;  // same along both axes
    index_t oh, ow;       // output
    L2RW_HD index_t kk() const { return c * kh * kw; }
};

/// Calls f(o) for the flat index o of every output window of `g` that covers the input
/// element (plane nc, row h, column w): the gather form of a pooling adjoint.
template <class F>
L2RW_HD void for_each_covering_window(const Window2d& g, index_t nc, index_t h, index_t w, F&& f) {
    for (index_t i = 0; i < g.kh; ++i) {
        const index_t t = h + g.pad - i;
        if (t < 0 || t % g.stride) continue;
        const index_t oh = t / g.stride;
        if (oh >= g.oh) continue;
        for (index_t j = 0; j < g.kw; ++j) {
            const index_t u = w + g.pad - j;
            if (u < 0 || u % g.stride) continue;
            const index_t ow = u / g.stride;
            if (ow >= g.ow) continue;
            f((nc * g.oh + oh) * g.ow + ow);
        }
    }
}

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

/// For each pooling window, the flat index into x of its maximum (first one on ties).
template <class T>
struct MaxPoolArgmax {
    const T* x;
    index_t* arg;
    Window2d g;
    L2RW_HD void operator()(index_t e) const {
        const index_t ow = e % g.ow, oh = (e / g.ow) % g.oh, nc = e / (g.ow * g.oh);
        index_t best = -1;
        T bv = T(0);
        for (index_t i = 0; i < g.kh; ++i) {
            const index_t h = oh * g.stride - g.pad + i;
            if (h < 0 || h >= g.h) continue;
            for (index_t j = 0; j < g.kw; ++j) {
                const index_t w = ow * g.stride - g.pad + j;
                if (w < 0 || w >= g.w) continue;
                const index_t idx = (nc * g.h + h) * g.w + w;
                if (best < 0 || x[idx] > bv) {
                    best = idx;
                    bv = x[idx];
                }
            }
        }
        arg[e] = best;
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

/// The adjoint of GatherFlat for pooling windows: x[e] = sum of g over windows whose arg is e.
template <class T>
struct MaxPoolScatter {
    const T* g;
    const index_t* arg;
    T* x;
    Window2d geo;
    L2RW_HD void operator()(index_t e) const {
        const index_t w = e % geo.w, h = (e / geo.w) % geo.h, nc = e / (geo.w * geo.h);
        T acc = T(0);
        for_each_covering_window(geo, nc, h, w, [&](index_t o) {
            if (arg[o] == e) acc += g[o];
        });
        x[e] = acc;
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

/// The adjoint of AvgPool.
template <class T>
struct AvgPoolAdjoint {
    const T* g;
    T* x;
    Window2d geo;  // pad == 0
    L2RW_HD void operator()(index_t e) const {
        const index_t w = e % geo.w, h = (e / geo.w) % geo.h, nc = e / (geo.w * geo.h);
        T acc = T(0);
        for_each_covering_window(geo, nc, h, w, [&](index_t o) { acc += g[o]; });
        x[e] = acc / T(geo.kh * geo.kw);
    }
};

/// Residual "option A" shortcut: subsample by `stride` and zero-pad channels on both sides.
/// out[n, c, h, w] = x[n, c - before, h*s, w*s] for c in [before, before + C), else 0.
struct ShortcutGeo {
    index_t n, c, h, w;  // input
    index_t oc, oh, ow;  // output
    index_t stride, before;
};
template <class T>
struct ShortcutPad {
    const T* x;
    T* out;
    ShortcutGeo g;
    L2RW_HD void operator()(index_t e) const {
        const index_t w = e % g.ow, h = (e / g.ow) % g.oh, c = (e / (g.ow * g.oh)) % g.oc,
                      n = e / (g.ow * g.oh * g.oc);
        const index_t ci = c - g.before;
        out[e] = (ci >= 0 && ci < g.c)
                     ? x[((n * g.c + ci) * g.h + h * g.stride) * g.w + w * g.stride]
                     : T(0);
    }
};
/// The adjoint of ShortcutPad, over the input's elements.
template <class T>
struct ShortcutPadAdjoint {
    const T* gout;
    T* x;
    ShortcutGeo g;
    L2RW_HD void operator()(index_t e) const {
        const index_t w = e % g.w, h = (e / g.w) % g.h, c = (e / (g.w * g.h)) % g.c,
                      n = e / (g.w * g.h * g.c);
        if (h % g.stride || w % g.stride || h / g.stride >= g.oh || w / g.stride >= g.ow) {
            x[e] = T(0);
            return;
        }
        x[e] = gout[((n * g.oc + c + g.before) * g.oh + h / g.stride) * g.ow + w / g.stride];
    }
};

}  // namespace l2rw::kernel
