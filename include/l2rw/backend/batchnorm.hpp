// l2rw/backend/batchnorm.hpp — batch normalisation with batch statistics as two fused
// kernels over x viewed as [N, C, S] (S = H*W, or 1 for [N, F]), one call per channel:
//
//   BatchNormForward   mean, biased variance, 1/sqrt(var + eps) and y = x̂·γ + β in three
//                      sweeps of the channel (the sums in double)
//   BatchNormBackward  Σg and Σg·x̂ in one sweep, then gx = γ·inv·(g − Σg/M − x̂·Σg·x̂/M)
//   BatchNormTangent   the forward-mode tangent: the x part is the same projection (the
//                      Jacobian in x is symmetric), t = γ·inv·(ẋ − Σẋ/M − x̂·Σẋ·x̂/M) + x̂·γ̇ + β̇
//
// with M = N·S and x̂ = (x − mean)·inv. They replace the ~11 primitive ops (5 full-size
// temporaries) of the composite form; the VJP rule that calls the backward one keeps the
// composite form for recorded (create_graph) backward passes, where its curvature is
// needed (nn/batchnorm.hpp).
#pragma once

#include <cmath>

#include "../config.hpp"

namespace l2rw::kernel {

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
        double acc = 0;
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            for (index_t k = 0; k < s; ++k) acc += static_cast<double>(p[k]);
        }
        const double mu = acc / m;
        double sq = 0;
        for (index_t i = 0; i < n; ++i) {
            const T* p = x + (i * c + ch) * s;
            for (index_t k = 0; k < s; ++k) {
                const double d = static_cast<double>(p[k]) - mu;
                sq += d * d;
            }
        }
        const T v = static_cast<T>(sq / m), mt = static_cast<T>(mu);
        const T iv = T(1) / std::sqrt(v + eps);
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
    sq = 0;
    sqx = 0;
    for (index_t i = 0; i < n; ++i) {
        const T* p = x + (i * c + ch) * s;
        const T* r = q + (i * c + ch) * s;
        for (index_t k = 0; k < s; ++k) {
            sq += static_cast<double>(r[k]);
            sqx += static_cast<double>(r[k]) * static_cast<double>((p[k] - mu) * iv);
        }
    }
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
            for (index_t k = 0; k < s; ++k) r[k] = a * (q[k] - mg - (p[k] - mu) * iv * mgx);
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
                for (index_t k = 0; k < s; ++k) {
                    const T xh = (p[k] - mu) * iv;
                    r[k] = a * (q[k] - mt - xh * mtx) + xh * tg + tb;
                }
            } else {
                for (index_t k = 0; k < s; ++k) r[k] = (p[k] - mu) * iv * tg + tb;
            }
        }
    }
};

}  // namespace l2rw::kernel
