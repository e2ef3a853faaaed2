// l2rw/nn/functional.hpp — differentiable image operations on Var (NCHW), each with its
// VJP and JVP written as Var ops, so layers built from them differentiate to any order.
#pragma once

#include <string>

#include "../autodiff/ops.hpp"
#include "../backend/conv2d.hpp"
#include "../backend/spatial.hpp"

namespace l2rw::nn::functional {

namespace detail {
using kernel::window;  // the geometry builder (backend/spatial.hpp)
}  // namespace detail

template <class T, Backend B>
Var<T, B> col2im(const Var<T, B>& cols, const kernel::Window2d& g);

/// Unfolds every window of x into a row: [N*OH*OW, C*KH*KW].
template <class T, Backend B>
Var<T, B> im2col(const Var<T, B>& x, const kernel::Window2d& g) {
    kernel::check(g, x.shape(), kernel::input_shape(g), "im2col", "input");
    Tensor<T, B> out(kernel::cols_shape(g, "im2col"));
    B::for_each(g.n * g.oh * g.ow, kernel::Im2col<T>{x.value().data(), out.data(), g});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "im2col", std::move(out), {&x},
        [g](l2rw::detail::VjpContext<T, B>& c) { c.gin[0] = col2im(c.gout, g); },
        [g](const l2rw::detail::JvpContext<T, B>& c) { return im2col(c.tin[0], g); });
}

/// The adjoint of im2col: sums window rows back into an [N, C, H, W] image.
template <class T, Backend B>
Var<T, B> col2im(const Var<T, B>& cols, const kernel::Window2d& g) {
    kernel::check(g, cols.shape(), kernel::cols_shape(g, "col2im"), "col2im", "unfolded windows");
    Tensor<T, B> out(kernel::input_shape(g));
    B::for_each(g.n * g.c, kernel::Col2im<T>{cols.value().data(), out.data(), g});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "col2im", std::move(out), {&cols},
        [g](l2rw::detail::VjpContext<T, B>& c) { c.gin[0] = im2col(c.gout, g); },
        [g](const l2rw::detail::JvpContext<T, B>& c) { return col2im(c.tin[0], g); });
}

template <class T, Backend B>
Var<T, B> conv2d_input_grad(const Var<T, B>& gy, const Var<T, B>& w, const kernel::Window2d& g);
template <class T, Backend B>
Var<T, B> conv2d_weight_grad(const Var<T, B>& x, const Var<T, B>& gy, const kernel::Window2d& g);

namespace detail {
/// The weights [O, C, KH, KW] that a convolution of geometry g wants, for the O of w.
template <class T, Backend B>
Shape conv_weights_shape(const Var<T, B>& w, const kernel::Window2d& g) {
    return Shape{w.rank() == 4 ? w.shape()[0] : 0, g.c, g.kh, g.kw};
}
}  // namespace detail

/// The convolution family: conv2d_geo (the forward), conv2d_input_grad and
/// conv2d_weight_grad. Each is one op whose VJP rules are written in the other two, so the
/// family is closed under differentiation (backward-on-backward stays in it), and only the
/// op's operands are kept on the tape, never an unfolded matrix (backend/conv2d.hpp).
template <class T, Backend B>
Var<T, B> conv2d_geo(const Var<T, B>& x, const Var<T, B>& w, const Var<T, B>& bias,
                     const kernel::Window2d& g) {
    kernel::check(g, x.shape(), kernel::input_shape(g), "conv2d", "input");
    kernel::check(g, w.shape(), detail::conv_weights_shape(w, g), "conv2d", "weights");
    const index_t O = w.dim(0);
    if (bias.defined() && !(bias.shape() == Shape{O}))
        throw ShapeError("conv2d: bias " + bias.shape().str() + " for " + std::to_string(O) +
                         " filters");
    Tensor<T, B> y(kernel::output_shape(g, O));
    conv::forward<T, B>(x.value().data(), w.value().data(),
                        bias.defined() ? bias.value().data() : nullptr, y.data(), O, g);
    auto rule = [g, O](l2rw::detail::VjpContext<T, B>& c) {
        if (!grad_enabled() && c.needs[0] && c.needs[1]) {  // first order: both in one call
            Tensor<T, B> gx(kernel::input_shape(g)), gw(c.in[1].shape());
            conv::backward<T, B>(c.in[0].value().data(), c.gout.value().data(),
                                 c.in[1].value().data(), gx.data(), gw.data(), O, g);
            c.gin[0] = Var<T, B>(gx);
            c.gin[1] = Var<T, B>(gw);
        } else {
            if (c.needs[0]) c.gin[0] = conv2d_input_grad(c.gout, c.in[1], g);
            if (c.needs[1]) c.gin[1] = conv2d_weight_grad(c.in[0], c.gout, g);
        }
        if (c.needs[2]) c.gin[2] = reshape(sum_to(c.gout, Shape{O, 1, 1}), Shape{O});
    };
    // Bilinear in (x, w) plus the bias: the bias's tangent rides on the first convolution.
    auto tangent = [g, O](const l2rw::detail::JvpContext<T, B>& c) {
        const auto& tb = c.tin[2];
        Var<T, B> t;
        if (c.tin[0].defined()) t = conv2d_geo(c.tin[0], c.in[1], tb, g);
        if (c.tin[1].defined())
            t = l2rw::detail::tangent_sum(
                t, conv2d_geo(c.in[0], c.tin[1], t.defined() ? Var<T, B>() : tb, g));
        if (!t.defined())  // only the bias moves
            t = broadcast_to(reshape(tb, Shape{1, O, 1, 1}), c.out.shape());
        return t;
    };
    if (bias.defined())
        return l2rw::detail::record<T, B>(l2rw::detail::keep_in0 | l2rw::detail::keep_in1, "conv2d",
                                          std::move(y), {&x, &w, &bias}, rule, tangent);
    return l2rw::detail::record<T, B>(l2rw::detail::keep_in0 | l2rw::detail::keep_in1, "conv2d",
                                      std::move(y), {&x, &w}, rule, tangent);
}

/// The input gradient of conv2d: gx [N, C, H, W] for output gradient gy [N, O, OH, OW].
/// Bilinear in (gy, w): ⟨G, gx⟩ = ⟨conv2d(G, w), gy⟩ = ⟨conv2d_weight_grad(G, gy), w⟩.
template <class T, Backend B>
Var<T, B> conv2d_input_grad(const Var<T, B>& gy, const Var<T, B>& w, const kernel::Window2d& g) {
    kernel::check(g, w.shape(), detail::conv_weights_shape(w, g), "conv2d_input_grad", "weights");
    const index_t O = w.dim(0);
    kernel::check(g, gy.shape(), kernel::output_shape(g, O), "conv2d_input_grad",
                  "output gradient");
    Tensor<T, B> gx(kernel::input_shape(g));
    conv::input_grad<T, B>(gy.value().data(), w.value().data(), gx.data(), O, g);
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_in0 | l2rw::detail::keep_in1, "conv2d_input_grad", std::move(gx),
        {&gy, &w},
        [g](l2rw::detail::VjpContext<T, B>& c) {
            if (c.needs[0]) c.gin[0] = conv2d_geo(c.gout, c.in[1], Var<T, B>(), g);
            if (c.needs[1]) c.gin[1] = conv2d_weight_grad(c.gout, c.in[0], g);
        },
        [g](const l2rw::detail::JvpContext<T, B>& c) {
            Var<T, B> t;
            if (c.tin[0].defined()) t = conv2d_input_grad(c.tin[0], c.in[1], g);
            if (c.tin[1].defined())
                t = l2rw::detail::tangent_sum(t, conv2d_input_grad(c.in[0], c.tin[1], g));
            return t;
        });
}

/// The weight gradient of conv2d: gw [O, C, KH, KW] for input x and output gradient gy.
/// Bilinear in (x, gy): ⟨G, gw⟩ = ⟨conv2d(x, G), gy⟩ = ⟨conv2d_input_grad(gy, G), x⟩.
template <class T, Backend B>
Var<T, B> conv2d_weight_grad(const Var<T, B>& x, const Var<T, B>& gy, const kernel::Window2d& g) {
    kernel::check(g, x.shape(), kernel::input_shape(g), "conv2d_weight_grad", "input");
    const index_t O = gy.rank() == 4 ? gy.shape()[1] : 0;
    kernel::check(g, gy.shape(), kernel::output_shape(g, O), "conv2d_weight_grad",
                  "output gradient");
    Tensor<T, B> gw(Shape{O, g.c, g.kh, g.kw});
    conv::weight_grad<T, B>(x.value().data(), gy.value().data(), gw.data(), O, g);
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_in0 | l2rw::detail::keep_in1, "conv2d_weight_grad", std::move(gw),
        {&x, &gy},
        [g](l2rw::detail::VjpContext<T, B>& c) {
            if (c.needs[0]) c.gin[0] = conv2d_input_grad(c.in[1], c.gout, g);
            if (c.needs[1]) c.gin[1] = conv2d_geo(c.in[0], c.gout, Var<T, B>(), g);
        },
        [g](const l2rw::detail::JvpContext<T, B>& c) {
            Var<T, B> t;
            if (c.tin[0].defined()) t = conv2d_weight_grad(c.tin[0], c.in[1], g);
            if (c.tin[1].defined())
                t = l2rw::detail::tangent_sum(t, conv2d_weight_grad(c.in[0], c.tin[1], g));
            return t;
        });
}

/// 2-d convolution (cross-correlation) of x [N, C, H, W] with w [O, C, KH, KW], plus an
/// optional bias [O] (an undefined Var for none).
template <class T, Backend B>
Var<T, B> conv2d(const Var<T, B>& x, const Var<T, B>& w, const Var<T, B>& bias, index_t stride = 1,
                 index_t pad = 0) {
    if (w.rank() != 4)
        throw ShapeError("conv2d: want weights [O, C, KH, KW], got " + w.shape().str());
    const auto g = detail::window(x.shape(), w.dim(2), w.dim(3), stride, pad, "conv2d");
    if (w.dim(1) != g.c)
        throw ShapeError("conv2d: input " + x.shape().str() + " has " + std::to_string(g.c) +
                         " channels but weights " + w.shape().str() + " want " +
                         std::to_string(w.dim(1)));
    return conv2d_geo(x, w, bias, g);
}

template <class T, Backend B>
Var<T, B> maxpool_scatter(const Var<T, B>& g, const IndexTensor<B>& arg,
                          const kernel::Window2d& geo);

namespace detail {
/// The max-pool gather and scatter: the geometry against the operand, and one winner index
/// per window ([N·C·OH·OW]). The winners' values are not checked (a pass over them on every
/// call): they are max_pool2d's, each inside its own plane.
template <Backend B>
void check_maxpool(const kernel::Window2d& geo, const Shape& operand, const Shape& want,
                   const char* what, const IndexTensor<B>& arg, const char* op) {
    kernel::check(geo, operand, want, op, what);
    kernel::check(geo, arg.shape(), Shape{kernel::output_shape(geo, geo.c).numel()}, op,
                  "winner indices");
}
}  // namespace detail

/// Picks x at the window maxima `arg` (flat indices into x): the max-pool forward.
template <class T, Backend B>
Var<T, B> maxpool_gather(const Var<T, B>& x, const IndexTensor<B>& arg,
                         const kernel::Window2d& geo) {
    detail::check_maxpool(geo, x.shape(), kernel::input_shape(geo), "input", arg, "maxpool_gather");
    Tensor<T, B> out(kernel::output_shape(geo, geo.c));
    B::for_each(out.numel(), kernel::GatherFlat<T>{x.value().data(), arg.data(), out.data()});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "maxpool", std::move(out), {&x},
        [arg, geo](l2rw::detail::VjpContext<T, B>& c) {
            c.gin[0] = maxpool_scatter(c.gout, arg, geo);
        },
        [arg, geo](const l2rw::detail::JvpContext<T, B>& c) {
            return maxpool_gather(c.tin[0], arg, geo);
        });
}
/// The adjoint of maxpool_gather: routes each window's value back to its maximum.
template <class T, Backend B>
Var<T, B> maxpool_scatter(const Var<T, B>& g, const IndexTensor<B>& arg,
                          const kernel::Window2d& geo) {
    detail::check_maxpool(geo, g.shape(), kernel::output_shape(geo, geo.c), "gradient", arg,
                          "maxpool_scatter");
    Tensor<T, B> out(kernel::input_shape(geo));
    B::for_each(geo.n * geo.c,
                kernel::MaxPoolScatter<T>{g.value().data(), arg.data(), out.data(), geo});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "maxpool_scatter", std::move(out), {&g},
        [arg, geo](l2rw::detail::VjpContext<T, B>& c) {
            c.gin[0] = maxpool_gather(c.gout, arg, geo);
        },
        [arg, geo](const l2rw::detail::JvpContext<T, B>& c) {
            return maxpool_scatter(c.tin[0], arg, geo);
        });
}

/// Max pooling; the winners are chosen on the forward values and then held fixed, so the
/// op is piecewise linear: no curvature of its own, and it carries its input's.
template <class T, Backend B>
Var<T, B> max_pool2d(const Var<T, B>& x, index_t k, index_t stride = 0, index_t pad = 0) {
    if (stride == 0) stride = k;
    const auto g = detail::window(x.shape(), k, k, stride, pad, "max_pool2d");
    if (pad * 2 > k)
        throw ValueError("max_pool2d: padding " + std::to_string(pad) + " exceeds half the window");
    IndexTensor<B> arg(Shape{g.n * g.c * g.oh * g.ow});
    B::for_each(g.n * g.c, kernel::MaxPoolArgmax<T>{x.value().data(), arg.data(), g});
    return maxpool_gather(x, arg, g);
}

template <class T, Backend B>
Var<T, B> avgpool_adjoint(const Var<T, B>& g, const kernel::Window2d& geo);

namespace detail {
/// The average pool and its adjoint: the geometry against the operand, and no padding (the
/// kernels do not clip their windows).
inline void check_avgpool(const kernel::Window2d& geo, const Shape& operand, const Shape& want,
                          const char* op, const char* what) {
    kernel::check(geo, operand, want, op, what);
    if (geo.pad != 0)
        throw ShapeError(std::string(op) + ": geometry " + kernel::str(geo) +
                         " is padded; average pooling takes no padding");
}
}  // namespace detail

/// Average pooling over the windows of `geo` (no padding).
template <class T, Backend B>
Var<T, B> avgpool_geo(const Var<T, B>& x, const kernel::Window2d& geo) {
    detail::check_avgpool(geo, x.shape(), kernel::input_shape(geo), "avgpool_geo", "input");
    Tensor<T, B> out(kernel::output_shape(geo, geo.c));
    B::for_each(out.numel(), kernel::AvgPool<T>{x.value().data(), out.data(), geo});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "avg_pool2d", std::move(out), {&x},
        [geo](l2rw::detail::VjpContext<T, B>& c) { c.gin[0] = avgpool_adjoint(c.gout, geo); },
        [geo](const l2rw::detail::JvpContext<T, B>& c) { return avgpool_geo(c.tin[0], geo); });
}
/// The adjoint of avgpool_geo.
template <class T, Backend B>
Var<T, B> avgpool_adjoint(const Var<T, B>& gout, const kernel::Window2d& geo) {
    detail::check_avgpool(geo, gout.shape(), kernel::output_shape(geo, geo.c), "avgpool_adjoint",
                          "gradient");
    Tensor<T, B> out(kernel::input_shape(geo));
    B::for_each(geo.n * geo.c, kernel::AvgPoolAdjoint<T>{gout.value().data(), out.data(), geo});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "avg_pool2d_adjoint", std::move(out), {&gout},
        [geo](l2rw::detail::VjpContext<T, B>& c) { c.gin[0] = avgpool_geo(c.gout, geo); },
        [geo](const l2rw::detail::JvpContext<T, B>& c) { return avgpool_adjoint(c.tin[0], geo); });
}

/// Average pooling with a k x k window (no padding).
template <class T, Backend B>
Var<T, B> avg_pool2d(const Var<T, B>& x, index_t k, index_t stride = 0) {
    if (stride == 0) stride = k;
    return avgpool_geo(x, detail::window(x.shape(), k, k, stride, 0, "avg_pool2d"));
}

/// Global average pooling: [N, C, H, W] -> [N, C].
template <class T, Backend B>
Var<T, B> global_avg_pool(const Var<T, B>& x) {
    if (x.rank() != 4)
        throw ShapeError("global_avg_pool: want [N, C, H, W], got " + x.shape().str());
    return mean(reshape(x, Shape{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)}), 2);
}

template <class T, Backend B>
Var<T, B> shortcut_pad_adjoint(const Var<T, B>& g, const kernel::ShortcutGeo& geo);
template <class T, Backend B>
Var<T, B> shortcut_pad_geo(const Var<T, B>& x, const kernel::ShortcutGeo& geo);

/// The residual "option A" shortcut: subsample by `stride`, then zero-pad the channels
/// equally on both sides up to `out_channels`.
template <class T, Backend B>
Var<T, B> shortcut_pad(const Var<T, B>& x, index_t out_channels, index_t stride) {
    return shortcut_pad_geo(x, kernel::shortcut(x.shape(), out_channels, stride, "shortcut_pad"));
}
template <class T, Backend B>
Var<T, B> shortcut_pad_geo(const Var<T, B>& x, const kernel::ShortcutGeo& geo) {
    kernel::check(geo, x.shape(), kernel::input_shape(geo), "shortcut_pad_geo", "input");
    Tensor<T, B> out(kernel::output_shape(geo));
    B::for_each(geo.n * geo.oc, kernel::ShortcutPad<T>{x.value().data(), out.data(), geo});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "shortcut_pad", std::move(out), {&x},
        [geo](l2rw::detail::VjpContext<T, B>& c) { c.gin[0] = shortcut_pad_adjoint(c.gout, geo); },
        [geo](const l2rw::detail::JvpContext<T, B>& c) { return shortcut_pad_geo(c.tin[0], geo); });
}
template <class T, Backend B>
Var<T, B> shortcut_pad_adjoint(const Var<T, B>& g, const kernel::ShortcutGeo& geo) {
    kernel::check(geo, g.shape(), kernel::output_shape(geo), "shortcut_pad_adjoint", "gradient");
    Tensor<T, B> out(kernel::input_shape(geo));
    B::for_each(geo.n * geo.c, kernel::ShortcutPadAdjoint<T>{g.value().data(), out.data(), geo});
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "shortcut_pad_adjoint", std::move(out), {&g},
        [geo](l2rw::detail::VjpContext<T, B>& c) { c.gin[0] = shortcut_pad_geo(c.gout, geo); },
        [geo](const l2rw::detail::JvpContext<T, B>& c) {
            return shortcut_pad_adjoint(c.tin[0], geo);
        });
}

}  // namespace l2rw::nn::functional
