// l2rw/backend/geometry.hpp — the geometries of the spatial kernels (backend/spatial.hpp):
// a window sweep (convolution, pooling) and the zero-padding residual shortcut. Each type
// comes with its builder (window, shortcut) and its one check, which every public op that
// takes a geometry runs once per call, on the host, before any kernel: a geometry that does
// not fit its operands is a ShapeError, never a read or write outside a buffer.
#pragma once

#include <string>

#include "../config.hpp"
#include "../error.hpp"
#include "../shape.hpp"

namespace l2rw::kernel {

/// Geometry of a 2-d window sweep (convolution or pooling) over an NCHW tensor.
struct Window2d {
    index_t n, c, h, w;   // input
    index_t kh, kw;       // window
    index_t stride, pad;  // same along both axes
    index_t oh, ow;       // output
    L2RW_HD index_t kk() const { return c * kh * kw; }
};

/// The messages of both geometry checks: g is not `kind` of its own input (`valid` false), or
/// the operand `what` is not the shape `want` that the op derives from g.
template <class Geo>
void geometry_fits(const Geo& g, bool valid, const char* kind, const Shape& operand,
                   const Shape& want, const char* op, const char* what) {
    if (!valid)
        throw ShapeError(std::string(op) + ": geometry " + str(g) + " is not " + kind +
                         " of its own input");
    if (!(operand == want))
        throw ShapeError(std::string(op) + ": " + what + " " + operand.str() +
                         " does not fit the geometry " + str(g) + " (want " + want.str() + ")");
}

/// Positions of a window of k cells at `stride` along an axis of `in` cells padded by `pad`
/// on both sides: (in + 2·pad − k) / stride + 1, or −1 where the window does not fit (for
/// k, stride > 0, pad ≥ 0). A padding too large to add is a ShapeError naming `op`.
inline index_t window_positions(index_t in, index_t k, index_t stride, index_t pad,
                                const char* op) {
    const index_t padded =
        checked_add<ShapeError>(in, checked_mul<ShapeError>(index_t(2), pad, op), op);
    return padded < k ? -1 : (padded - k) / stride + 1;
}

/// "3x3 windows, stride 1, padding 1 over [2, 3, 8, 8] to 8x8"
inline std::string str(const Window2d& g) {
    auto s = [](index_t v) { return std::to_string(v); };
    return s(g.kh) + "x" + s(g.kw) + " windows, stride " + s(g.stride) + ", padding " + s(g.pad) +
           " over [" + s(g.n) + ", " + s(g.c) + ", " + s(g.h) + ", " + s(g.w) + "] to " + s(g.oh) +
           "x" + s(g.ow);
}

/// What a sweep reads, [N, C, H, W]; an output of `channels` planes, [N, channels, OH, OW];
/// its unfolded windows, [N·OH·OW, C·KH·KW] (counted with checked arithmetic).
inline Shape input_shape(const Window2d& g) { return Shape{g.n, g.c, g.h, g.w}; }
inline Shape output_shape(const Window2d& g, index_t channels) {
    return Shape{g.n, channels, g.oh, g.ow};
}
inline Shape cols_shape(const Window2d& g, const char* op) {
    return Shape{checked_mul<ShapeError>(checked_mul<ShapeError>(g.n, g.oh, op), g.ow, op),
                 checked_mul<ShapeError>(checked_mul<ShapeError>(g.c, g.kh, op), g.kw, op)};
}

/// The geometry of kh x kw windows at `stride` with `pad` over x [N, C, H, W]: ValueError
/// for a window, stride or padding out of its domain; ShapeError naming `op` for an x not of
/// rank 4, a window that does not fit, or an output too large to count.
inline Window2d window(const Shape& x, index_t kh, index_t kw, index_t stride, index_t pad,
                       const char* op) {
    if (x.rank() != 4)
        throw ShapeError(std::string(op) + ": want an [N, C, H, W] input, got " + x.str());
    if (kh <= 0 || kw <= 0 || stride <= 0 || pad < 0)
        throw ValueError(std::string(op) + ": window " + std::to_string(kh) + "x" +
                         std::to_string(kw) + ", stride " + std::to_string(stride) + ", padding " +
                         std::to_string(pad) + " is not valid");
    Window2d g{x[0], x[1], x[2], x[3], kh, kw, stride, pad, 0, 0};
    g.oh = window_positions(g.h, kh, stride, pad, op);
    g.ow = window_positions(g.w, kw, stride, pad, op);
    if (g.oh < 0 || g.ow < 0)
        throw ShapeError(std::string(op) + ": window " + std::to_string(kh) + "x" +
                         std::to_string(kw) + " with padding " + std::to_string(pad) +
                         " does not fit input " + x.str());
    (void)output_shape(g, g.c);
    (void)cols_shape(g, op);
    return g;
}

/// The one check of a window geometry, run by every public op that takes one: g must be the
/// sweep window() builds from its own fields, and the operand `what` must have the shape
/// `want` that the op derives from g; else a ShapeError naming op, the geometry and both
/// shapes.
inline void check(const Window2d& g, const Shape& operand, const Shape& want, const char* op,
                  const char* what) {
    const bool sweep = g.n >= 0 && g.c >= 0 && g.h >= 0 && g.w >= 0 && g.kh > 0 && g.kw > 0 &&
                       g.stride > 0 && g.pad >= 0 && g.oh > 0 && g.ow > 0 &&
                       g.oh == window_positions(g.h, g.kh, g.stride, g.pad, op) &&
                       g.ow == window_positions(g.w, g.kw, g.stride, g.pad, op);
    geometry_fits(g, sweep, "a window sweep", operand, want, op, what);
}

/// Residual "option A" shortcut: subsample by `stride` and zero-pad channels on both sides.
/// out[n, c, h, w] = x[n, c - before, h*s, w*s] for c in [before, before + C), else 0.
struct ShortcutGeo {
    index_t n, c, h, w;  // input
    index_t oc, oh, ow;  // output
    index_t stride, before;
};

/// Rows (columns) kept when subsampling `in` by `stride`: ⌈in / stride⌉, 0 for an empty axis.
inline index_t subsampled(index_t in, index_t stride) {
    return in == 0 ? 0 : (in - 1) / stride + 1;
}

/// "[2, 4, 8, 8] to [2, 8, 4, 4], stride 2, 2 zero channels before"
inline std::string str(const ShortcutGeo& g) {
    auto s = [](index_t v) { return std::to_string(v); };
    return "[" + s(g.n) + ", " + s(g.c) + ", " + s(g.h) + ", " + s(g.w) + "] to [" + s(g.n) + ", " +
           s(g.oc) + ", " + s(g.oh) + ", " + s(g.ow) + "], stride " + s(g.stride) + ", " +
           s(g.before) + " zero channels before";
}
inline Shape input_shape(const ShortcutGeo& g) { return Shape{g.n, g.c, g.h, g.w}; }
inline Shape output_shape(const ShortcutGeo& g) { return Shape{g.n, g.oc, g.oh, g.ow}; }

/// The shortcut geometry from x [N, C, H, W] to `out_channels` at `stride`: ShapeError for an x
/// not of rank 4, ValueError for fewer output channels than input ones or a stride below 1.
inline ShortcutGeo shortcut(const Shape& x, index_t out_channels, index_t stride, const char* op) {
    if (x.rank() != 4) throw ShapeError(std::string(op) + ": want [N, C, H, W], got " + x.str());
    if (out_channels < x[1] || stride <= 0)
        throw ValueError(std::string(op) + ": cannot map " + x.str() + " to " +
                         std::to_string(out_channels) + " channels with stride " +
                         std::to_string(stride));
    ShortcutGeo g{x[0],
                  x[1],
                  x[2],
                  x[3],
                  out_channels,
                  subsampled(x[2], stride),
                  subsampled(x[3], stride),
                  stride,
                  (out_channels - x[1]) / 2};
    (void)output_shape(g);
    return g;
}

/// The one check of a shortcut geometry (as check for Window2d): g must be what shortcut()
/// builds from its own fields, and the operand `what` must have the shape `want`.
inline void check(const ShortcutGeo& g, const Shape& operand, const Shape& want, const char* op,
                  const char* what) {
    const bool ok = g.n >= 0 && g.c >= 0 && g.h >= 0 && g.w >= 0 && g.stride > 0 && g.oc >= g.c &&
                    g.before == (g.oc - g.c) / 2 && g.oh == subsampled(g.h, g.stride) &&
                    g.ow == subsampled(g.w, g.stride);
    geometry_fits(g, ok, "a shortcut", operand, want, op, what);
}

}  // namespace l2rw::kernel
