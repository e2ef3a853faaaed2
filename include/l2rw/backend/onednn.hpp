// l2rw/backend/onednn.hpp — the convolution family in float on the Cpu backend through
// oneDNN (Debian libdnnl-dev), opt-in: link l2rw::onednn, which defines L2RW_WITH_ONEDNN.
//
// backend/conv2d.hpp sends float convolutions here while enabled() (the default once linked;
// set_enabled(false) goes back to the Eigen kernels at run time); double always stays on the
// Eigen kernels, which oneDNN does not replace. Each pass (forward with its bias, input
// gradient, weight gradient) is a oneDNN primitive in the layouts oneDNN picks for the shape
// (blocked channels where the machine has the vector width for them), with reorders from and
// to l2rw's NCHW / OIHW tensors around it.
//
// Plans: a primitive with its reorders is built once per (pass, geometry, filters, bias,
// threads) and kept for the process (oneDNN compiles its kernels for the shape). The thread
// count is part of the key because oneDNN sizes its work split when a primitive is built:
// a primitive is only run at the team it was built for (team_size(), so it shrinks on a
// busy machine like the Eigen kernels do), and at a fixed team a run is bitwise
// reproducible. Workspaces (the reordered tensors and oneDNN's scratchpad) come from the
// host pool per call, so calls from several threads at once are safe.
#pragma once

#if !defined(L2RW_WITH_ONEDNN)
#error "l2rw/backend/onednn.hpp needs oneDNN: link l2rw::onednn (it defines L2RW_WITH_ONEDNN)"
#endif

#include <omp.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "../config.hpp"
#include "../error.hpp"
#include "geometry.hpp"
#include "host_pool.hpp"
#include "parallel.hpp"

namespace l2rw::onednn {

namespace detail {
inline std::atomic<bool>& enabled_flag() {
    static std::atomic<bool> on{true};
    return on;
}
}  // namespace detail

/// Whether float convolutions on the Cpu backend go through oneDNN (true unless turned off).
[[nodiscard]] inline bool enabled() {
    return detail::enabled_flag().load(std::memory_order_relaxed);
}
/// Sends later float convolutions through oneDNN (true) or the Eigen kernels (false).
inline void set_enabled(bool on) { detail::enabled_flag() = on; }

/// The three passes of the convolution family.
enum class Pass : int { forward, input_grad, weight_grad };

namespace detail {

struct Key {
    Pass pass;
    bool bias;
    int threads;
    index_t n, c, h, w, o, kh, kw, stride, pad;
    bool operator==(const Key&) const = default;
};
struct KeyHash {
    std::size_t operator()(const Key& k) const {
        std::size_t s = std::hash<int>{}(static_cast<int>(k.pass) * 4 + (k.bias ? 2 : 0));
        for (index_t v : {index_t(k.threads), k.n, k.c, k.h, k.w, k.o, k.kh, k.kw, k.stride, k.pad})
            s ^= std::hash<index_t>{}(v) + 0x9e3779b97f4a7c15ULL + (s << 6) + (s >> 2);
        return s;
    }
};

/// One operand of a primitive: l2rw's plain layout, the primitive's, and the reorder
/// between them where they differ (into the primitive for inputs, out of it for the output).
struct Operand {
    dnnl::memory::desc plain, inner;
    std::optional<dnnl::reorder> move;
    void set(const dnnl::engine& e, const dnnl::memory::desc& p, const dnnl::memory::desc& q,
             bool input) {
        plain = p;
        inner = q;
        if (p != q)
            move = input ? dnnl::reorder(dnnl::reorder::primitive_desc(e, p, e, q))
                         : dnnl::reorder(dnnl::reorder::primitive_desc(e, q, e, p));
    }
};

/// A built pass: the primitive, its two inputs (in the order of the pass's arguments), its
/// output, an optional bias (plain [O]) and the scratchpad it needs.
struct Plan {
    dnnl::primitive prim;
    int arg_a = 0, arg_b = 0, arg_out = 0;
    Operand a, b, out;
    dnnl::memory::desc bias, scratch;
};

inline const dnnl::engine& engine() {
    static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}

using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
inline dnnl::memory::desc md(const dims& d, tag t) {
    return dnnl::memory::desc(d, dnnl::memory::data_type::f32, t);
}

/// Completes p from its pass's primitive descriptor q: the primitive, and for its two inputs
/// and its output (oneDNN argument ids `args`, l2rw's layouts `plain`) the layouts q chose,
/// with the reorders between them, and the scratchpad.
template <class Primitive, class Desc>
void finish(Plan& p, const Desc& q, const std::array<int, 3>& args,
            const std::array<dnnl::memory::desc, 3>& plain) {
    const auto& e = engine();
    auto inner = [&](int i) { return q.query_md(dnnl::query::exec_arg_md, args[i]); };
    p.prim = Primitive(q);
    p.arg_a = args[0], p.arg_b = args[1], p.arg_out = args[2];
    p.a.set(e, plain[0], inner(0), true);
    p.b.set(e, plain[1], inner(1), true);
    p.out.set(e, plain[2], inner(2), false);
    p.scratch = q.scratchpad_desc();
}

inline Plan build(const Key& k) {
    const auto& e = engine();
    const dims x{k.n, k.c, k.h, k.w}, wt{k.o, k.c, k.kh, k.kw}, b{k.o};
    const index_t oh = (k.h + 2 * k.pad - k.kh) / k.stride + 1;
    const index_t ow = (k.w + 2 * k.pad - k.kw) / k.stride + 1;
    const dims y{k.n, k.o, oh, ow}, st{k.stride, k.stride}, pd{k.pad, k.pad};
    const auto any_x = md(x, tag::any), any_w = md(wt, tag::any), any_y = md(y, tag::any);
    const auto px = md(x, tag::nchw), pw = md(wt, tag::oihw), py = md(y, tag::nchw);
    const auto pb = md(b, tag::x);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto algo = dnnl::algorithm::convolution_direct;
    using fwd = dnnl::convolution_forward;
    const auto fwd_desc = k.bias ? fwd::desc(dnnl::prop_kind::forward_training, algo, any_x, any_w,
                                             pb, any_y, st, pd, pd)
                                 : fwd::desc(dnnl::prop_kind::forward_training, algo, any_x, any_w,
                                             any_y, st, pd, pd);
    const fwd::primitive_desc fpd(fwd_desc, attr, e);
    Plan p;
    p.bias = pb;
    using bwd_data = dnnl::convolution_backward_data;
    using bwd_weights = dnnl::convolution_backward_weights;
    switch (k.pass) {
        case Pass::forward:
            finish<fwd>(p, fpd, {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}, {px, pw, py});
            break;
        case Pass::input_grad:
            finish<bwd_data>(
                p,
                bwd_data::primitive_desc(bwd_data::desc(algo, any_x, any_w, any_y, st, pd, pd),
                                         attr, e, fpd),
                {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC}, {py, pw, px});
            break;
        case Pass::weight_grad:
            finish<bwd_weights>(
                p,
                bwd_weights::primitive_desc(
                    bwd_weights::desc(algo, any_x, any_w, any_y, st, pd, pd), attr, e, fpd),
                {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}, {px, py, pw});
            break;
    }
    return p;
}

/// An l2rw::Error for a oneDNN failure on pass k, naming the pass and its geometry.
inline Error failure(const Key& k, const char* what, const dnnl::error& e) {
    static const char* const names[] = {"conv2d", "conv2d_input_grad", "conv2d_weight_grad"};
    auto n = [](index_t v) { return std::to_string(v); };
    return Error(std::string(names[static_cast<int>(k.pass)]) + " on oneDNN: " + what +
                 " its primitive for input [" + n(k.n) + ", " + n(k.c) + ", " + n(k.h) + ", " +
                 n(k.w) + "], " + n(k.o) + " filters " + n(k.kh) + "x" + n(k.kw) + ", stride " +
                 n(k.stride) + ", padding " + n(k.pad) + ", " + n(k.threads) + " thread(s): " +
                 e.what() + " (l2rw::onednn::set_enabled(false) uses l2rw's own kernels)");
}

/// The plan for k, built on first use. Plans are never removed, so references stay valid.
inline const Plan& plan(const Key& k) {
    static std::mutex m;
    static std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans;
    std::lock_guard<std::mutex> lock(m);
    auto& slot = plans[k];
    if (!slot) {
        try {
            slot = std::make_unique<Plan>(build(k));
        } catch (const dnnl::error& e) {
            throw failure(k, "cannot build", e);
        }
    }
    return *slot;
}

/// Host memory for a oneDNN descriptor (none for an empty one).
inline HostBuffer<float> scratch_for(const dnnl::memory::desc& d) {
    return HostBuffer<float>((d.get_size() + sizeof(float) - 1) / sizeof(float));
}

/// The key of `pass` for the calling thread's team: team_size(), set as its OpenMP team
/// first, because oneDNN's regions take the calling thread's team.
inline Key key(Pass pass, index_t O, const kernel::Window2d& g, bool bias) {
    match_library_threads();
    return Key{pass,     bias, omp_get_max_threads(), g.n, g.c, g.h, g.w, O, g.kh, g.kw,
               g.stride, g.pad};
}

/// An input operand in its primitive's layout: l2rw's tensor src itself, or its reorder into
/// w (host memory for the call) where the layouts differ.
inline dnnl::memory input(dnnl::stream& s, const Operand& o, const float* src,
                          HostBuffer<float>& w) {
    const auto& e = engine();
    dnnl::memory user(o.plain, e, const_cast<float*>(src));
    if (!o.move) return user;
    w = scratch_for(o.inner);
    dnnl::memory inner(o.inner, e, w.data());
    o.move->execute(s, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, inner}});
    return inner;
}

/// Runs plan p on its inputs a, b (already in its layouts) into l2rw's plain tensor out,
/// with an optional bias.
inline void execute(dnnl::stream& s, const Plan& p, const dnnl::memory& a, const dnnl::memory& b,
                    const float* bias, float* out) {
    const auto& e = engine();
    HostBuffer<float> wo, ws = scratch_for(p.scratch);
    std::unordered_map<int, dnnl::memory> args{{p.arg_a, a}, {p.arg_b, b}};
    dnnl::memory user_out(p.out.plain, e, out);
    dnnl::memory inner_out = user_out;
    if (p.out.move) {
        wo = scratch_for(p.out.inner);
        inner_out = dnnl::memory(p.out.inner, e, wo.data());
    }
    args.emplace(p.arg_out, inner_out);
    if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, e, const_cast<float*>(bias)));
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(p.scratch, e, ws.data()));
    p.prim.execute(s, args);
    if (p.out.move) p.out.move->execute(s, {{DNNL_ARG_FROM, inner_out}, {DNNL_ARG_TO, user_out}});
    s.wait();  // the host buffers of this call go back to the pool when it returns
}

/// Runs `pass` on l2rw's plain tensors a, b (inputs) and out, with an optional bias.
inline void run(Pass pass, index_t O, const kernel::Window2d& g, const float* a, const float* b,
                const float* bias, float* out) {
    const Key k = key(pass, O, g, bias != nullptr);
    const Plan& p = plan(k);
    try {
        dnnl::stream s(engine());
        HostBuffer<float> wa, wb;
        execute(s, p, input(s, p.a, a, wa), input(s, p.b, b, wb), bias, out);
    } catch (const dnnl::error& err) {
        throw failure(k, "cannot run", err);
    }
}

}  // namespace detail

/// y [N, O, OH, OW] = conv2d(x, w) (+ bias when not null), as backend/conv2d.hpp's forward.
inline void forward(const float* x, const float* w, const float* bias, float* y, index_t O,
                    const kernel::Window2d& g) {
    detail::run(Pass::forward, O, g, x, w, bias, y);
}
/// gx [N, C, H, W] for output gradient gy, as backend/conv2d.hpp's input_grad.
inline void input_grad(const float* gy, const float* w, float* gx, index_t O,
                       const kernel::Window2d& g) {
    detail::run(Pass::input_grad, O, g, gy, w, nullptr, gx);
}
/// gw [O, C, KH, KW] for input x and output gradient gy, as backend/conv2d.hpp's weight_grad.
inline void weight_grad(const float* x, const float* gy, float* gw, index_t O,
                        const kernel::Window2d& g) {
    detail::run(Pass::weight_grad, O, g, x, gy, nullptr, gw);
}
/// Both gradients for one output gradient gy, as input_grad and weight_grad (the same
/// numbers): where the two primitives take gy in the same layout, it is reordered once.
inline void backward(const float* x, const float* gy, const float* w, float* gx, float* gw,
                     index_t O, const kernel::Window2d& g) {
    const detail::Key kd = detail::key(Pass::input_grad, O, g, false);
    const detail::Key kw = detail::key(Pass::weight_grad, O, g, false);
    const detail::Plan &pd = detail::plan(kd), &pw = detail::plan(kw);
    if (pd.a.inner != pw.b.inner) {
        input_grad(gy, w, gx, O, g);
        weight_grad(x, gy, gw, O, g);
        return;
    }
    const detail::Key* k = &kd;
    try {
        dnnl::stream s(detail::engine());
        HostBuffer<float> wy, ww, wx;
        const dnnl::memory y = detail::input(s, pd.a, gy, wy);
        detail::execute(s, pd, y, detail::input(s, pd.b, w, ww), nullptr, gx);
        k = &kw;
        detail::execute(s, pw, detail::input(s, pw.a, x, wx), y, nullptr, gw);
    } catch (const dnnl::error& err) {
        throw detail::failure(*k, "cannot run", err);
    }
}

}  // namespace l2rw::onednn
