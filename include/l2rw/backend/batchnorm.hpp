// l2rw/backend/batchnorm.hpp — batch normalisation with batch statistics as two fused
// kernels over x viewed as [N, C, S] (S = H*W, or 1 for [N, F]), one call per channel:
//
//   BatchNormForward   mean, biased variance, 1/sqrt(var + eps) and y = x̂·γ + β in three
//                      sweeps of the channel (the sums in double, in sum_lanes lanes)
//   BatchNormBackward  Σg and Σg·x̂ in one sweep, then gx = γ·inv·(g − Σg/M − x̂·Σg·x̂/M)
//   BatchNormTangent   the forward-mode tangent: the x part is the same projection (the
//                      Jacobian in x is symmetric), t = γ·inv·(ẋ − Σẋ/M − x̂·Σẋ·x̂/M) + x̂·γ̇ + β̇
//
// with M = N·S and x̂ = (x − mean)·inv. They replace the ~11 primitive ops (5 full-size
// temporaries) of the composite form; the VJP rule that calls the backward one keeps the
// composite form for recorded (create_graph) backward passes, where its curvature is
// needed (nn/batchnorm.hpp).
//
// One task per channel leaves a GPU nearly idle (a ResNet has 16 to 64 channels). On a
// backend that reduces segments (Thrust; CUB on CUDA), batchnorm::forward, backward and
// tangent instead take each channel's sums as a segmented reduction (Channel* below, in
// double) and write the output elementwise, with the same per-element formulas.
#pragma once

#include <cmath>

#include "../config.hpp"
#include "concept.hpp"

namespace l2rw::kernel {

/// Mean, biased variance and 1/sqrt(var + eps) of a channel from its sum and its sum of
/// squared deviations from the mean, over m elements.
template <class T>
L2RW_HD inline void batchnorm_stats(double sum, double sqdev, double m, T eps, T& mean, T& var,
                                    T& inv) {
    mean = static_cast<T>(sum / m);
    var = static_cast<T>(sqdev / m);
    inv = T(1) / std::sqrt(var + eps);
}

/// Lanes of a channel's running sums: each sum is kept as sum_lanes interleaved partial sums,
/// combined in lane order at the end. A fixed order (the same bits at any thread count) that
/// the compiler can vectorise, where one running sum would wait on every add.
inline constexpr int sum_lanes = 8;

/// Calls f(k, lane) for k in [0, s), lane = k's lane (k mod sum_lanes within full blocks).
template <class F>
L2RW_HD inline void for_lanes(index_t s, const F& f) {
    index_t k = 0;
    for (; k + sum_lanes <= s; k += sum_lanes)
        for (int j = 0; j < sum_lanes; ++j) f(k + j, j);
    for (int j = 0; k < s; ++k, ++j) f(k, j);
}

/// The total of a lane array, pairwise in lane order.
L2RW_HD inline double lane_total(const double (&a)[sum_lanes]) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/// The projection a·(q − mq − x̂·mqx) with x̂ = (p − mu)·iv: the backward's gx (q = g) and the
/// tangent's x part (q = ẋ).
template <class T>
L2RW_HD inline T batchnorm_project(T p, T q, T mu, T iv, T a, T mq, T mqx) {
    return a * (q - mq - (p - mu) * iv * mqx);
}

template <class T>
struct BatchNormForward {
    const T* x;
    const T* gamma;
    const T* beta;
    T* y;
    T* mean;  // [C], out
    T* var;   // [C], out: biased (divided by M)
    T* inv;   // [C], out: 1 / sqrt(var + eps)
    T eps;
    index_t n, c, s;
    L2RW_HD index_t cost() const { return 3 * n * s; }
    L2RW_HD void operator()(index_t ch) const {
        const double m = static_cast<double>(n * s);
        double la[sum_lanes] = {}, lq[sum_lanes] = {};
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            for_lanes(s, [&](index_t k, int j) { la[j] += static_cast<double>(p[k]); });
        }
        const double acc = lane_total(la), mu = acc / m;
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            for_lanes(s, [&](index_t k, int j) {
                const double d = static_cast<double>(p[k]) - mu;
                lq[j] += d * d;
            });
        }
        const double sq = lane_total(lq);
        T mt, v, iv;
        batchnorm_stats(acc, sq, m, eps, mt, v, iv);
        mean[ch] = mt;
        var[ch] = v;
        inv[ch] = iv;
        const T a = iv * gamma[ch], b = beta[ch];
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            T* q = y + (i * c + ch) * s;
            for (index_t k = 0; k < s; ++k) q[k] = (p[k] - mt) * a + b;
        }
    }
};

/// Σq and Σq·x̂ over channel ch (x̂ = (x − mu)·iv), summed in double: the two sums of the
/// projection q − mean(q) − x̂·mean(q·x̂) that the backward (q = g) and the tangent (q = ẋ)
/// both apply.
template <class T>
L2RW_HD inline void channel_sums(const T* x, const T* q, T mu, T iv, index_t n, index_t c,
                                 index_t s, index_t ch, double& sq, double& sqx) {
    double lq[sum_lanes] = {}, lqx[sum_lanes] = {};
    for (index_t i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * s;
        const T* r = q + (i * c + ch) * s;
        for_lanes(s, [&](index_t k, int j) {
            lq[j] += static_cast<double>(r[k]);
            lqx[j] += static_cast<double>(r[k]) * static_cast<double>((p[k] - mu) * iv);
        });
    }
    sq = lane_total(lq);
    sqx = lane_total(lqx);
}

template <class T>
struct BatchNormBackward {
    const T* x;
    const T* g;
    const T* gamma;
    const T* mean;
    const T* inv;
    T* gx;      // may be null
    T* ggamma;  // may be null
    T* gbeta;   // may be null
    index_t n, c, s;
    L2RW_HD index_t cost() const { return 2 * n * s; }
    L2RW_HD void operator()(index_t ch) const {
        const T mu = mean[ch], iv = inv[ch];
        double sg, sgx;
        channel_sums(x, g, mu, iv, n, c, s, ch, sg, sgx);
        if (gbeta) gbeta[ch] = static_cast<T>(sg);
        if (ggamma) ggamma[ch] = static_cast<T>(sgx);
        if (!gx) return;
        const double m = static_cast<double>(n * s);
        const T a = gamma[ch] * iv, mg = static_cast<T>(sg / m), mgx = static_cast<T>(sgx / m);
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            const T* q = g + (i * c + ch) * s;
            T* r = gx + (i * c + ch) * s;
            for (index_t k = 0; k < s; ++k)
                r[k] = batchnorm_project(p[k], q[k], mu, iv, a, mg, mgx);
        }
    }
};

template <class T>
struct BatchNormTangent {
    const T* x;
    const T* tx;  // may be null (no tangent)
    const T* gamma;
    const T* tgamma;  // may be null
    const T* tbeta;   // may be null
    const T* mean;
    const T* inv;
    T* t;
    index_t n, c, s;
    L2RW_HD index_t cost() const { return 2 * n * s; }
    L2RW_HD void operator()(index_t ch) const {
        const T mu = mean[ch], iv = inv[ch];
        double st = 0, stx = 0;
        if (tx) channel_sums(x, tx, mu, iv, n, c, s, ch, st, stx);
        const double m = static_cast<double>(n * s);
        const T a = gamma[ch] * iv, mt = static_cast<T>(st / m), mtx = static_cast<T>(stx / m);
        const T tg = tgamma ? tgamma[ch] : T(0), tb = tbeta ? tbeta[ch] : T(0);
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            T* r = t + (i * c + ch) * s;
            if (tx) {
                const T* q = tx + (i * c + ch) * s;
                for (index_t k = 0; k < s; ++k)
                    r[k] = batchnorm_project(p[k], q[k], mu, iv, a, mt, mtx) +
                           (p[k] - mu) * iv * tg + tb;
            } else {
                for (index_t k = 0; k < s; ++k) r[k] = (p[k] - mu) * iv * tg + tb;
            }
        }
    }
};

// ---- the segmented form -------------------------------------------------------------------

/// Offset of element j (of N·S) of channel ch in x viewed as [N, C, S].
L2RW_HD inline index_t channel_offset(index_t ch, index_t j, index_t c, index_t s) {
    return (j / s) * c * s + ch * s + j % s;
}

/// Flat value functors of the per-channel sums (segment ch, len = N·S elements), in double:
/// q itself; (x − sum/m)² (the deviations from the mean); q·x̂.
template <class T>
struct ChannelValue {
    const T* q;
    index_t c, s, len;
    L2RW_HD double operator()(index_t i) const {
        return static_cast<double>(q[channel_offset(i / len, i % len, c, s)]);
    }
};
template <class T>
struct ChannelSquaredDeviation {
    const T* x;
    const double* sum;
    double m;
    index_t c, s, len;
    L2RW_HD double operator()(index_t i) const {
        const index_t ch = i / len;
        const double d = static_cast<double>(x[channel_offset(ch, i % len, c, s)]) - sum[ch] / m;
        return d * d;
    }
};
template <class T>
struct ChannelTimesXhat {
    const T* x;
    const T* q;
    const T* mean;
    const T* inv;
    index_t c, s, len;
    L2RW_HD double operator()(index_t i) const {
        const index_t ch = i / len, o = channel_offset(ch, i % len, c, s);
        return static_cast<double>(q[o]) * static_cast<double>((x[o] - mean[ch]) * inv[ch]);
    }
};

template <class T>
struct BatchNormStats {
    const double* sum;
    const double* sqdev;
    double m;
    T eps;
    T* mean;
    T* var;
    T* inv;
    L2RW_HD void operator()(index_t ch) const {
        batchnorm_stats(sum[ch], sqdev[ch], m, eps, mean[ch], var[ch], inv[ch]);
    }
};

/// y = (x − mean)·(inv·γ) + β, one element per call.
template <class T>
struct BatchNormApply {
    const T* x;
    const T* gamma;
    const T* beta;
    const T* mean;
    const T* inv;
    T* y;
    index_t c, s;
    L2RW_HD void operator()(index_t i) const {
        const index_t ch = (i / s) % c;
        y[i] = (x[i] - mean[ch]) * (inv[ch] * gamma[ch]) + beta[ch];
    }
};

/// out = batchnorm_project(x, q) (+ x̂·γ̇ + β̇ for the tangent), one element per call, from
/// the channel sums sq = Σq, sqx = Σq·x̂ (either null: q absent, its part 0).
template <class T>
struct BatchNormProjectApply {
    const T* x;
    const T* q;  // may be null (a tangent without ẋ)
    const T* gamma;
    const T* mean;
    const T* inv;
    const double* sq;
    const double* sqx;
    const T* tgamma;  // may be null
    const T* tbeta;   // may be null
    double m;
    T* out;
    index_t c, s;
    L2RW_HD void operator()(index_t i) const {
        const index_t ch = (i / s) % c;
        const T mu = mean[ch], iv = inv[ch];
        T r = T(0);
        if (q)
            r = batchnorm_project(x[i], q[i], mu, iv, gamma[ch] * iv, static_cast<T>(sq[ch] / m),
                                  static_cast<T>(sqx[ch] / m));
        if (tgamma) r += (x[i] - mu) * iv * tgamma[ch];
        if (tbeta) r += tbeta[ch];
        out[i] = r;
    }
};

template <class T>
struct BatchNormParamGrads {
    const double* sg;
    const double* sgx;
    T* ggamma;  // may be null
    T* gbeta;   // may be null
    L2RW_HD void operator()(index_t ch) const {
        if (gbeta) gbeta[ch] = static_cast<T>(sg[ch]);
        if (ggamma) ggamma[ch] = static_cast<T>(sgx[ch]);
    }
};

}  // namespace l2rw::kernel

namespace l2rw::batchnorm {

/// Scratch for per-channel double sums, in backend memory.
template <Backend B>
struct ChannelSums {
    typename B::template buffer<double> buf;
    explicit ChannelSums(index_t c) : buf(B::template allocate<double>(2 * c)) {}
    double* first() { return B::data(buf); }
    double* second(index_t c) { return B::data(buf) + c; }
};

/// Σq and Σq·x̂ per channel into sums (see kernel::ChannelValue, ChannelTimesXhat).
template <class T, Backend B>
void projection_sums(const T* x, const T* q, const T* mean, const T* inv, index_t n, index_t c,
                     index_t s, ChannelSums<B>& sums) {
    const index_t len = n * s;
    B::reduce_segments(c, len, kernel::ChannelValue<T>{q, c, s, len}, kernel::Add{}, 0.0,
                       sums.first());
    B::reduce_segments(c, len, kernel::ChannelTimesXhat<T>{x, q, mean, inv, c, s, len},
                       kernel::Add{}, 0.0, sums.second(c));
}

/// y and the batch statistics of x [N, C, S] (kernel::BatchNormForward's contract).
template <class T, Backend B>
void forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* var, T* inv, T eps,
             index_t n, index_t c, index_t s) {
    if constexpr (SegmentReductions<B>) {
        const index_t len = n * s;
        const double m = static_cast<double>(len);
        ChannelSums<B> sums(c);
        B::reduce_segments(c, len, kernel::ChannelValue<T>{x, c, s, len}, kernel::Add{}, 0.0,
                           sums.first());
        B::reduce_segments(c, len,
                           kernel::ChannelSquaredDeviation<T>{x, sums.first(), m, c, s, len},
                           kernel::Add{}, 0.0, sums.second(c));
        B::for_each(
            c, kernel::BatchNormStats<T>{sums.first(), sums.second(c), m, eps, mean, var, inv});
        B::for_each(n * c * s, kernel::BatchNormApply<T>{x, gamma, beta, mean, inv, y, c, s});
    } else {
        B::for_each(c,
                    kernel::BatchNormForward<T>{x, gamma, beta, y, mean, var, inv, eps, n, c, s});
    }
}

/// gx (may be null), γ's and β's gradients (kernel::BatchNormBackward's contract).
template <class T, Backend B>
void backward(const T* x, const T* g, const T* gamma, const T* mean, const T* inv, T* gx, T* ggamma,
              T* gbeta, index_t n, index_t c, index_t s) {
    if constexpr (SegmentReductions<B>) {
        ChannelSums<B> sums(c);
        projection_sums<T, B>(x, g, mean, inv, n, c, s, sums);
        B::for_each(c, kernel::BatchNormParamGrads<T>{sums.first(), sums.second(c), ggamma, gbeta});
        if (gx)
            B::for_each(n * c * s, kernel::BatchNormProjectApply<T>{
                                       x, g, gamma, mean, inv, sums.first(), sums.second(c),
                                       nullptr, nullptr, static_cast<double>(n * s), gx, c, s});
    } else {
        B::for_each(
            c, kernel::BatchNormBackward<T>{x, g, gamma, mean, inv, gx, ggamma, gbeta, n, c, s});
    }
}

/// The forward-mode tangent (kernel::BatchNormTangent's contract).
template <class T, Backend B>
void tangent(const T* x, const T* tx, const T* gamma, const T* tgamma, const T* tbeta,
             const T* mean, const T* inv, T* t, index_t n, index_t c, index_t s) {
    if constexpr (SegmentReductions<B>) {
        ChannelSums<B> sums(c);
        if (tx) projection_sums<T, B>(x, tx, mean, inv, n, c, s, sums);
        B::for_each(n * c * s, kernel::BatchNormProjectApply<T>{
                                   x, tx, gamma, mean, inv, sums.first(), sums.second(c), tgamma,
                                   tbeta, static_cast<double>(n * s), t, c, s});
    } else {
        B::for_each(
            c, kernel::BatchNormTangent<T>{x, tx, gamma, tgamma, tbeta, mean, inv, t, n, c, s});
    }
}

}  // namespace l2rw::batchnorm
