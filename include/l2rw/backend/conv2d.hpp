// l2rw/backend/conv2d.hpp — the convolution family on raw buffers of a backend: the forward
// y = conv2d(x, w) + b, the input gradient gx = conv2d_input_grad(gy, w) and the weight
// gradient gw = conv2d_weight_grad(x, gy), all NCHW, weights [O, C, KH, KW].
//
// Each works image by image and, within an image, in blocks of output rows: a block's
// windows are unfolded (column layout [C*KH*KW, rows*OW]) into a workspace that lives for
// the call only and is small enough to stay in cache, and one GEMM with the weights reads or
// writes that block of the image's NCHW output in place (no permute, the bias fused as the
// GEMM's initial value). A 1x1 convolution with stride 1 and no padding skips the unfolding,
// and on the Cpu backend a forward convolution with a small window (C·KH·KW ≤
// direct_max_window) runs direct (on a device, one task per plane would leave it idle).
// Backends without a strided GEMM (gemm_ld) take each image as one block.
// On the Cpu backend the images run on the threads of parallel.hpp, each with its own
// workspace; other backends take them in turn, each kernel parallel on its device.
//
// The weight gradient sums over images in a fixed number of chunks (fixed by N, not by the
// thread count) combined in chunk order: its bits do not depend on the thread count.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../config.hpp"
#include "concept.hpp"
#include "kernels.hpp"
#include "parallel.hpp"
#include "spatial.hpp"
#if defined(L2RW_WITH_ONEDNN)
#include "onednn.hpp"
#endif

namespace l2rw::conv {

/// Whether the unfolded matrix of one image is the image itself (1x1, stride 1, no pad).
L2RW_HD inline bool is_pointwise(const kernel::Window2d& g) {
    return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
}

namespace detail {

template <class B>
concept HostTasks = requires {
    B::host_tasks;
};

/// Runs task(t, worker) for t in [0, n): over `workers` threads (from workers_for) on a
/// host-tasks backend (Cpu), in turn elsewhere; worker < workers indexes the workspaces.
template <class B, class F>
void run_tasks(index_t n, int workers, const F& task) {
    if constexpr (HostTasks<B>) {
        if (workers > 1) {
            parallel::for_tasks(n, workers, [&](index_t t) { task(t, thread_index()); });
            return;
        }
    }
    for (index_t t = 0; t < n; ++t) task(t, 0);
}

/// Workers for `tasks` tasks of total `work`: 1 unless they will run on threads.
template <class B>
int workers_for(index_t tasks, index_t work) {
    if constexpr (HostTasks<B>)
        return parallel::workers_for(tasks, work);
    else
        return 1;
}

/// Multiply-adds of one image's GEMM.
inline index_t image_work(const kernel::Window2d& g, index_t O) { return O * g.kk() * g.oh * g.ow; }

template <class B>
concept StridedGemm = requires(const float* a, float* c) {
    B::gemm_ld(false, false, index_t{}, index_t{}, index_t{}, a, index_t{}, a, index_t{}, c,
               index_t{}, false);
};

/// Bytes of an unfolded block: blocks of output rows are sized to stay in a core's cache.
inline constexpr index_t block_bytes = index_t(192) << 10;

/// Output rows per block: the whole image for pointwise convolutions and for backends that
/// cannot multiply sub-matrices, else as many rows as fit in block_bytes (at least one).
template <class T, Backend B>
index_t block_rows(const kernel::Window2d& g) {
    if constexpr (!StridedGemm<B>) {
        return g.oh;
    } else {
        if (is_pointwise(g)) return g.oh;
        const index_t row = g.kk() * g.ow * static_cast<index_t>(sizeof(T));
        return std::clamp<index_t>(block_bytes / std::max<index_t>(row, 1), 1, g.oh);
    }
}

/// C (+)= op(A) op(B) on blocks with row strides lda, ldb, ldc; without gemm_ld the blocks
/// are whole images, so every stride is the contiguous one.
template <class T, Backend B>
void gemm_ld(bool ta, bool tb, index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b,
             index_t ldb, T* c, index_t ldc, bool acc) {
    if constexpr (StridedGemm<B>)
        B::gemm_ld(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, acc);
    else
        B::gemm(ta, tb, m, n, k, a, b, c, acc);
}

/// One unfolding buffer (one block) per worker; none for pointwise convolutions.
template <class T, Backend B>
struct Workspace {
    std::vector<typename B::template buffer<T>> bufs;
    Workspace(const kernel::Window2d& g, index_t rows, int workers) {
        if (is_pointwise(g)) return;
        for (int k = 0; k < workers; ++k)
            bufs.push_back(B::template allocate<T>(g.kk() * rows * g.ow));
    }
    T* get(int worker) {
        return bufs.empty() ? nullptr : B::data(bufs[static_cast<std::size_t>(worker)]);
    }
};

/// The [C*KH*KW, (oh1 - oh0)*OW] unfolding of output rows [oh0, oh1) of image xn: the
/// workspace, or the image itself if pointwise (then the block is the whole image).
template <class T, Backend B>
const T* unfold(const T* xn, const kernel::Window2d& g, index_t oh0, index_t oh1, T* ws) {
    if (is_pointwise(g)) return xn;
    B::for_each(g.c, kernel::Im2colImage<T>{xn, ws, g, oh0, oh1});
    return ws;
}

/// Whether oneDNN can take this convolution (float, Cpu backend): it does when l2rw::onednn
/// is linked and while onednn::enabled().
template <class T, class B>
inline constexpr bool onednn_kind = HostTasks<B>&& std::is_same_v<T, float>;

/// Calls f(oh0, oh1) for each block of `rows` output rows.
template <class F>
void for_blocks(const kernel::Window2d& g, index_t rows, const F& f) {
    for (index_t oh0 = 0; oh0 < g.oh; oh0 += rows) f(oh0, std::min(oh0 + rows, g.oh));
}

}  // namespace detail

/// Window sizes C·KH·KW up to which the forward convolution runs direct (Conv2dDirect, one
/// task per output plane) instead of unfolding: a LeNet's 1x5x5 and a ResNet's 3x3x3 first
/// layers. Their GEMM is too thin to pay for the unfolded copy.
inline constexpr index_t direct_max_window = 32;

/// y [N, O, OH, OW] = conv2d(x [N, C, H, W], w [O, C, KH, KW]) (+ bias [O] when not null).
template <class T, Backend B>
void forward(const T* x, const T* w, const T* bias, T* y, index_t O, const kernel::Window2d& g) {
#if defined(L2RW_WITH_ONEDNN)
    if constexpr (detail::onednn_kind<T, B>)
        if (onednn::enabled()) return onednn::forward(x, w, bias, y, O, g);
#endif
    if constexpr (detail::HostTasks<B>) {
        if (g.kk() <= direct_max_window && !is_pointwise(g)) {
            B::for_each(g.n * O, kernel::Conv2dDirect<T>{x, w, bias, y, O, g});
            return;
        }
    }
    const index_t P = g.oh * g.ow, K = g.kk(), rows = detail::block_rows<T, B>(g);
    const index_t work = g.n * detail::image_work(g, O);
    const int workers = detail::workers_for<B>(g.n, work);
    detail::Workspace<T, B> ws(g, rows, workers);
    detail::run_tasks<B>(g.n, workers, [&](index_t n, int wk) {
        const T* xn = x + n * g.c * g.h * g.w;
        T* yn = y + n * O * P;
        if (bias) B::for_each(O, kernel::FillRows<T>{bias, yn, P});
        detail::for_blocks(g, rows, [&](index_t oh0, index_t oh1) {
            const index_t pb = (oh1 - oh0) * g.ow;
            const T* cols = detail::unfold<T, B>(xn, g, oh0, oh1, ws.get(wk));
            detail::gemm_ld<T, B>(false, false, O, pb, K, w, K, cols, pb, yn + oh0 * g.ow, P,
                                  bias != nullptr);
        });
    });
}

/// gx [N, C, H, W] = the input gradient of conv2d for output gradient gy [N, O, OH, OW].
template <class T, Backend B>
void input_grad(const T* gy, const T* w, T* gx, index_t O, const kernel::Window2d& g) {
#if defined(L2RW_WITH_ONEDNN)
    if constexpr (detail::onednn_kind<T, B>)
        if (onednn::enabled()) return onednn::input_grad(gy, w, gx, O, g);
#endif
    const index_t P = g.oh * g.ow, K = g.kk(), rows = detail::block_rows<T, B>(g);
    const index_t work = g.n * detail::image_work(g, O);
    const int workers = detail::workers_for<B>(g.n, work);
    detail::Workspace<T, B> ws(g, rows, workers);
    detail::run_tasks<B>(g.n, workers, [&](index_t n, int wk) {
        const T* gyn = gy + n * O * P;
        T* gxn = gx + n * g.c * g.h * g.w;
        if (is_pointwise(g)) {
            B::gemm(true, false, K, P, O, w, gyn, gxn, false);
            return;
        }
        T* cols = ws.get(wk);
        B::for_each(g.c * g.h * g.w, kernel::Map<T, kernel::Fill<T>>{gxn, gxn, {T(0)}});
        detail::for_blocks(g, rows, [&](index_t oh0, index_t oh1) {
            const index_t pb = (oh1 - oh0) * g.ow;
            detail::gemm_ld<T, B>(true, false, K, pb, O, w, K, gyn + oh0 * g.ow, P, cols, pb,
                                  false);
            B::for_each(g.c, kernel::Col2imImage<T>{cols, gxn, g, oh0, oh1});
        });
    });
}

/// Images per chunk of the weight gradient's sum (fixed by N alone).
inline index_t weight_grad_chunks(index_t n) { return std::min<index_t>(n, 8); }

/// gw [O, C, KH, KW] = the weight gradient of conv2d: sum over images of gy_n · unfold(x_n)ᵀ.
template <class T, Backend B>
void weight_grad(const T* x, const T* gy, T* gw, index_t O, const kernel::Window2d& g) {
#if defined(L2RW_WITH_ONEDNN)
    if constexpr (detail::onednn_kind<T, B>)
        if (onednn::enabled()) return onednn::weight_grad(x, gy, gw, O, g);
#endif
    const index_t P = g.oh * g.ow, K = g.kk(), M = O * K, rows = detail::block_rows<T, B>(g);
    const index_t chunks = std::max<index_t>(weight_grad_chunks(g.n), 1);
    const index_t work = g.n * detail::image_work(g, O);
    const int workers = detail::workers_for<B>(chunks, work);
    detail::Workspace<T, B> ws(g, rows, workers);
    auto part = B::template allocate<T>(chunks > 1 ? chunks * M : 0);
    T* pp = chunks > 1 ? B::data(part) : gw;
    detail::run_tasks<B>(chunks, workers, [&](index_t c, int wk) {
        const index_t lo = c * g.n / chunks, hi = (c + 1) * g.n / chunks;
        T* acc = pp + c * M;
        if (lo == hi) {
            B::gemm(false, true, O, K, 0, gy, gy, acc, false);  // k = 0: zeros
            return;
        }
        for (index_t n = lo; n < hi; ++n) {
            const T* xn = x + n * g.c * g.h * g.w;
            detail::for_blocks(g, rows, [&](index_t oh0, index_t oh1) {
                const index_t pb = (oh1 - oh0) * g.ow;
                const T* cols = detail::unfold<T, B>(xn, g, oh0, oh1, ws.get(wk));
                detail::gemm_ld<T, B>(false, true, O, K, pb, gy + n * O * P + oh0 * g.ow, P, cols,
                                      pb, acc, K, n > lo || oh0 > 0);
            });
        }
    });
    if (chunks > 1) B::for_each(M, kernel::SumSlices<T>{pp, gw, M, chunks});
}

/// Both gradients of conv2d for one output gradient gy: gx as input_grad and gw as
/// weight_grad give them, the same numbers; on oneDNN, gy is moved into the primitives'
/// layout once for the two.
template <class T, Backend B>
void backward(const T* x, const T* gy, const T* w, T* gx, T* gw, index_t O,
              const kernel::Window2d& g) {
#if defined(L2RW_WITH_ONEDNN)
    if constexpr (detail::onednn_kind<T, B>)
        if (onednn::enabled()) return onednn::backward(x, gy, w, gx, gw, O, g);
#endif
    input_grad<T, B>(gy, w, gx, O, g);
    weight_grad<T, B>(x, gy, gw, O, g);
}

}  // namespace l2rw::conv
