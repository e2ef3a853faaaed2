// tests/testing.hpp — helpers shared by every l2rw test file.
//
//   L2RW_BACKENDS                 the doctest type list of backends (TEST_CASE_TEMPLATE)
//   l2rw::testing::check_gradients  first- and second-order finite-difference checks of any
//                                 function of Vars (any output shape, any number of inputs),
//                                 with its forward mode: the JVP against differences and,
//                                 by the adjoint identity, against the VJP; forward-over-
//                                 reverse against reverse-over-reverse
//   l2rw::testing::check_close    elementwise comparison that reports the worst element
//   l2rw::testing::check_throws_mentioning  exception type + every expected message fragment
//   l2rw::testing::rss_bytes      resident set size of this process (/proc/self/statm)
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <l2rw/l2rw.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#if defined(__CUDACC__)
// Compiled by nvcc (tests/nvcc_check.cu): the typed tests run on the GPU backend; the
// test main skips them with a message when no CUDA device is present.
#include <l2rw/backend/thrust.hpp>
#define L2RW_TEST_THRUST_SYSTEM l2rw::CUDA
#define L2RW_TEST_HAS_THRUST 1
#define L2RW_BACKENDS l2rw::Thrust<l2rw::CUDA>
#elif defined(L2RW_TEST_THRUST) && L2RW_TEST_THRUST
#include <l2rw/backend/thrust.hpp>
#if defined(_OPENMP)
#define L2RW_TEST_THRUST_SYSTEM l2rw::OMP
#else
#define L2RW_TEST_THRUST_SYSTEM l2rw::CPP
#endif
#define L2RW_TEST_HAS_THRUST 1
/// Every backend the typed tests run on.
#define L2RW_BACKENDS l2rw::Cpu, l2rw::Thrust<L2RW_TEST_THRUST_SYSTEM>
#else
#define L2RW_TEST_HAS_THRUST 0
#define L2RW_BACKENDS l2rw::Cpu
#endif

// AddressSanitizer (GCC defines __SANITIZE_ADDRESS__, Clang has __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define L2RW_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define L2RW_TEST_ASAN 1
#endif
#endif
#ifndef L2RW_TEST_ASAN
#define L2RW_TEST_ASAN 0
#endif
// ThreadSanitizer; L2RW_TEST_SANITIZED: either one (runs shortened, RSS not meaningful).
#if defined(__SANITIZE_THREAD__)
#define L2RW_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define L2RW_TEST_TSAN 1
#endif
#endif
#ifndef L2RW_TEST_TSAN
#define L2RW_TEST_TSAN 0
#endif
#define L2RW_TEST_SANITIZED (L2RW_TEST_ASAN || L2RW_TEST_TSAN)

namespace l2rw::testing {

template <Backend B>
using TensorD = Tensor<double, B>;
template <Backend B>
using VarD = Var<double, B>;

// ---- small constructors ---------------------------------------------------------------------

template <Backend B>
TensorD<B> tensor(const Shape& s, const std::vector<double>& v) {
    return TensorD<B>::from_host(s, v);
}
template <Backend B>
IndexTensor<B> labels(const std::vector<index_t>& v) {
    return IndexTensor<B>::from_host(Shape{static_cast<index_t>(v.size())}, v);
}
/// N(0, 1) entries pushed away from 0: |x| >= margin (for relu and other kinks).
template <Backend B>
TensorD<B> randn_away_from_zero(const Shape& s, std::uint64_t seed, double margin = 0.1) {
    auto h = TensorD<B>::randn(s, seed).to_host();
    for (auto& x : h) x = x >= 0 ? x + margin : x - margin;
    return TensorD<B>::from_host(s, h);
}

// ---- formatting -----------------------------------------------------------------------------

inline std::string fmt(double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return buf;
}
/// The multi-index of flat offset `i` in `s`, as "[a, b, c]".
inline std::string index_str(const Shape& s, index_t i) {
    if (s.rank() == 0) return "[]";
    std::vector<index_t> c(static_cast<std::size_t>(s.rank()));
    for (int k = s.rank() - 1; k >= 0; --k) {
        const index_t d = std::max<index_t>(s[k], 1);
        c[static_cast<std::size_t>(k)] = i % d;
        i /= d;
    }
    std::string r = "[";
    for (std::size_t k = 0; k < c.size(); ++k) r += (k ? ", " : "") + std::to_string(c[k]);
    return r + "]";
}

// ---- comparison -----------------------------------------------------------------------------

/// Elementwise |a - b| <= atol + rtol * max(|a|, |b|); one CHECK, whose message names the
/// worst element (largest ratio of error to allowance) with its index.
inline bool check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                        double rtol, double atol, const std::string& what,
                        const Shape& shape = Shape{}) {
    if (actual.size() != expected.size()) {
        FAIL_CHECK(what << ": sizes differ: " << actual.size() << " vs " << expected.size());
        return false;
    }
    double worst = 0;
    std::size_t wi = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double a = actual[i], e = expected[i];
        double r;
        if (std::isnan(a) || std::isnan(e))
            r = (std::isnan(a) && std::isnan(e)) ? 0 : INFINITY;
        else if (a == e)
            r = 0;
        else
            r = std::abs(a - e) / (atol + rtol * std::max(std::abs(a), std::abs(e)));
        if (!(r <= worst)) {
            worst = r;
            wi = i;
        }
    }
    const bool ok = worst <= 1.0;
    std::string where = "element " + std::to_string(wi);
    if (shape.numel() == static_cast<index_t>(actual.size()) && shape.rank() > 0)
        where += " " + index_str(shape, static_cast<index_t>(wi));
    CHECK_MESSAGE(
        ok, what << ": worst " << where << ": got " << fmt(actual.empty() ? 0 : actual[wi])
                 << ", want " << fmt(expected.empty() ? 0 : expected[wi]) << " (error "
                 << fmt(actual.empty() ? 0 : std::abs(actual[wi] - expected[wi])) << ", " << worst
                 << "x the allowance; rtol " << rtol << ", atol " << atol << ")");
    return ok;
}

template <class T, Backend B>
bool check_close(const Tensor<T, B>& actual, const Tensor<T, B>& expected, double rtol, double atol,
                 const std::string& what) {
    CHECK_MESSAGE(actual.shape() == expected.shape(),
                  what << ": shape " << actual.shape().str() << " vs " << expected.shape().str());
    if (!(actual.shape() == expected.shape())) return false;
    auto a = actual.to_host(), e = expected.to_host();
    return check_close(std::vector<double>(a.begin(), a.end()),
                       std::vector<double>(e.begin(), e.end()), rtol, atol, what, actual.shape());
}

inline double max_abs(const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::abs(x));
    return m;
}

// ---- exceptions -----------------------------------------------------------------------------

/// Checks that `f()` throws exactly an `E` whose what() contains every one of `parts`.
template <class E, class F>
void check_throws_mentioning(F&& f, std::initializer_list<std::string_view> parts,
                             const std::string& what) {
    try {
        f();
        FAIL_CHECK(what << ": no exception thrown");
    } catch (const E& e) {
        const std::string msg = e.what();
        for (auto p : parts)
            CHECK_MESSAGE(msg.find(p) != std::string::npos, what << ": message \"" << msg
                                                                 << "\" does not mention \""
                                                                 << std::string(p) << "\"");
    } catch (const std::exception& e) {
        FAIL_CHECK(what << ": threw the wrong exception type: " << std::string(e.what()));
    }
}

// ---- process memory -------------------------------------------------------------------------

/// Resident set size of this process in bytes (Linux), or 0 when unknown.
inline std::size_t rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    const int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    if (n != 2) return 0;
    return static_cast<std::size_t>(resident) * 4096u;
}

// ---- a tiny two-layer MLP written in Var ops ---------------------------------------------------

/// Parameters {W1 [d, h], b1 [h], W2 [h, c], b2 [c]}, seeded.
template <class T, Backend B>
std::vector<Tensor<T, B>> mlp_init(index_t d, index_t h, index_t c, std::uint64_t seed) {
    return {
        Tensor<T, B>::randn(Shape{d, h}, seed, 0.0, 1.0 / std::sqrt(static_cast<double>(d))),
        Tensor<T, B>::randn(Shape{h}, seed + 1, 0.0, 0.1),
        Tensor<T, B>::randn(Shape{h, c}, seed + 2, 0.0, 1.0 / std::sqrt(static_cast<double>(h))),
        Tensor<T, B>::randn(Shape{c}, seed + 3, 0.0, 0.1)};
}
/// Logits [n, c] of tanh(x W1 + b1) W2 + b2 for x [n, d].
template <class T, Backend B>
Var<T, B> mlp_logits(const std::vector<Var<T, B>>& p, const Var<T, B>& x) {
    return matmul(tanh(matmul(x, p[0]) + p[1]), p[2]) + p[3];
}
/// Per-example softmax cross-entropy [n] of the MLP.
template <class T, Backend B>
Var<T, B> mlp_losses(const std::vector<Var<T, B>>& p, const Var<T, B>& x, const IndexTensor<B>& y) {
    return softmax_cross_entropy(mlp_logits(p, x), y);
}
/// Each of `ts` as a leaf on `tape`.
template <Backend B>
std::vector<VarD<B>> leaves(Tape<double, B>& tape, const std::vector<TensorD<B>>& ts) {
    std::vector<VarD<B>> v;
    for (const auto& t : ts) v.push_back(tape.leaf(t));
    return v;
}

/// Seeded labels in [0, classes).
template <Backend B>
IndexTensor<B> random_labels(index_t n, index_t classes, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<index_t> h(static_cast<std::size_t>(n));
    for (auto& v : h) v = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(classes)));
    return IndexTensor<B>::from_host(Shape{n}, h);
}

// ---- finite-difference gradient checks ----------------------------------------------------

struct FdOptions {
    /// Named in every failure message.
    std::string what = "f";
    /// Which inputs are differentiated (empty: all); the others enter f as constants.
    std::vector<bool> wrt = {};
    /// First order: the VJP ⟨seed, ∂f⟩ against central differences of ⟨seed, f⟩.
    double h1 = 1e-6, rtol1 = 1e-6, atol1 = 1e-8;
    /// Second order: Hessian-vector products against central differences of the gradient.
    bool second_order = true;
    double h2 = 1e-5, rtol2 = 1e-5, atol2 = 1e-7;
    /// f is linear (affine) in the differentiated inputs: the HVP must be exactly zero.
    bool linear = false;
    /// Seed of the random output seed and of the random directions v.
    std::uint64_t seed = 20240601;
};

template <Backend B>
using VarFn = std::function<VarD<B>(const std::vector<VarD<B>>&)>;

namespace detail {

template <Backend B>
std::vector<VarD<B>> constants(const std::vector<TensorD<B>>& xs) {
    std::vector<VarD<B>> v;
    for (const auto& x : xs) v.emplace_back(x);
    return v;
}

template <Backend B>
long double dot_host(const TensorD<B>& a, const TensorD<B>& b) {
    const auto ha = a.to_host(), hb = b.to_host();
    long double s = 0;
    for (std::size_t i = 0; i < ha.size(); ++i) s += static_cast<long double>(ha[i]) * hb[i];
    return s;
}

/// The inputs of f on `tape`: those selected by `wrt` as leaves (also listed in `diff`, with
/// their directions `vs` as constants in `dirs` when given), the others as constants.
template <Backend B>
struct OnTape {
    std::vector<VarD<B>> in, diff, dirs;
};
template <Backend B>
OnTape<B> on_tape(Tape<double, B>& tape, const std::vector<TensorD<B>>& xs,
                  const std::vector<bool>& wrt, const std::vector<TensorD<B>>* vs = nullptr) {
    OnTape<B> r;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        if (wrt[i]) {
            r.in.push_back(tape.leaf(xs[i]));
            r.diff.push_back(r.in.back());
            if (vs) r.dirs.emplace_back((*vs)[i]);
        } else {
            r.in.emplace_back(xs[i]);
        }
    }
    return r;
}

/// The gradient of ⟨seed, f(xs)⟩ w.r.t. the inputs selected by `wrt`, on a fresh tape.
template <Backend B>
std::vector<std::vector<double>> first_gradient(const VarFn<B>& f,
                                                const std::vector<TensorD<B>>& xs,
                                                const std::vector<bool>& wrt,
                                                const TensorD<B>& seed) {
    Tape<double, B> tape;
    const auto t = on_tape<B>(tape, xs, wrt);
    const auto& diff = t.diff;
    auto out = f(t.in);
    auto g = vjp(out, diff, VarD<B>(seed), GradOptions{.allow_unused = true});
    std::vector<std::vector<double>> r;
    for (auto& gi : g) r.push_back(gi.to_host());
    return r;
}

}  // namespace detail

template <Backend B>
void check_gradients_impl(const VarFn<B>& f, const std::vector<TensorD<B>>& inputs,
                          const FdOptions& opt);

namespace detail {

/// The random tangents of the forward-mode checks, one per input.
template <Backend B>
std::vector<TensorD<B>> tangents_for(const std::vector<TensorD<B>>& inputs, std::uint64_t seed) {
    std::vector<TensorD<B>> ts;
    for (std::size_t i = 0; i < inputs.size(); ++i)
        ts.push_back(TensorD<B>::randn(inputs[i].shape(), seed + 200 + i));
    return ts;
}

/// J_f·t by forward mode: the inputs selected by `wrt` carry tangents `ts`. With `tape`
/// they are leaves of a live tape as well (the primal is recorded, the tangent is not).
template <Backend B>
std::vector<double> forward_tangent(const VarFn<B>& f, const std::vector<TensorD<B>>& xs,
                                    const std::vector<bool>& wrt, const std::vector<TensorD<B>>& ts,
                                    bool tape) {
    std::optional<Tape<double, B>> scope;
    if (tape) scope.emplace();
    std::vector<VarD<B>> in;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        VarD<B> x = tape && wrt[i] ? scope->leaf(xs[i]) : VarD<B>(xs[i]);
        in.push_back(wrt[i] ? make_dual(x, VarD<B>(ts[i])) : x);
    }
    const auto out = f(in);
    CHECK_MESSAGE(out.has_tangent(), "the output carries no tangent");
    if (!out.has_tangent()) return std::vector<double>(static_cast<std::size_t>(out.numel()), 0.0);
    return out.tangent().to_host();
}

/// Forward mode, checked three ways: the JVP against central differences of f along t, the
/// same JVP when the inputs are on a tape, and the adjoint identity ⟨J·t, s⟩ = ⟨t, Jᵀ·s⟩
/// against the first-order VJP `ga` (seed s) to 1e-10. Seen failing:
///   mul's JVP as ṫa·a instead of ṫa·b -> "mul, row bias: JVP vs central differences ...
///     got 1.099, want -1.550" and "adjoint identity <J t, s> = -5.805 but <t, J^T s> = -3.242";
///   conv2d's JVP without the bias tangent -> "Conv2d stride 1 pad 0: JVP vs central
///     differences ... got -0.5409, want 0.8232" and its adjoint identity;
///   the BatchNorm tangent kernel without −x̂·mean(ẋ·x̂) -> "BatchNorm1d train: JVP vs central
///     differences ... got 0.1569, want -0.01714", the same for BatchNorm2d, both adjoint
///     identities, and test_meta's "exact vs general" (got -0.628, want -0.586).
template <Backend B>
void check_jvp(const VarFn<B>& f, const std::vector<TensorD<B>>& inputs,
               const std::vector<bool>& wrt, const TensorD<B>& seed,
               const std::vector<std::vector<double>>& ga, const FdOptions& opt) {
    const auto ts = tangents_for<B>(inputs, opt.seed);
    const auto jt = forward_tangent<B>(f, inputs, wrt, ts, false);
    CHECK_MESSAGE(max_abs(jt) > 0, opt.what << ": the JVP is all zero (the check could not fail)");
    auto along = [&](double h) {
        auto xs = inputs;
        for (std::size_t i = 0; i < xs.size(); ++i) {
            if (!wrt[i]) continue;
            auto x = xs[i].to_host();
            const auto t = ts[i].to_host();
            for (std::size_t j = 0; j < x.size(); ++j) x[j] += h * t[j];
            xs[i] = TensorD<B>::from_host(inputs[i].shape(), x);
        }
        return f(constants<B>(xs)).to_host();
    };
    const auto up = along(opt.h1), down = along(-opt.h1);
    std::vector<double> fd(up.size());
    for (std::size_t j = 0; j < fd.size(); ++j) fd[j] = (up[j] - down[j]) / (2 * opt.h1);
    const Shape ys = seed.shape();
    check_close(jt, fd, opt.rtol1, opt.atol1,
                opt.what + ": JVP vs central differences along a random tangent", ys);
    check_close(forward_tangent<B>(f, inputs, wrt, ts, true), jt, 1e-14, 1e-15,
                opt.what + ": JVP with the inputs on a tape vs without a tape", ys);
    // ⟨J·t, s⟩ against Σ_i ⟨t_i, (Jᵀ·s)_i⟩.
    const auto sh = seed.to_host();
    long double lhs = 0, rhs = 0, scale = 0;
    for (std::size_t j = 0; j < jt.size(); ++j) {
        lhs += static_cast<long double>(jt[j]) * sh[j];
        scale += std::abs(static_cast<long double>(jt[j]) * sh[j]);
    }
    std::size_t k = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (!wrt[i]) continue;
        const auto t = ts[i].to_host();
        for (std::size_t j = 0; j < t.size(); ++j) {
            rhs += static_cast<long double>(t[j]) * ga[k][j];
            scale += std::abs(static_cast<long double>(t[j]) * ga[k][j]);
        }
        ++k;
    }
    CHECK_MESSAGE(std::abs(lhs - rhs) <= 1e-10L * std::max(scale, 1.0L),
                  opt.what << ": adjoint identity <J t, s> = " << fmt(static_cast<double>(lhs))
                           << " but <t, J^T s> = " << fmt(static_cast<double>(rhs)));
}

/// ∇ₓ⟨s, J(x)·v⟩ by forward-over-reverse (a recorded JVP, then a backward pass), which is
/// the Hessian-vector product H_s·v of ⟨s, f⟩.
template <Backend B>
std::vector<std::vector<double>> forward_over_reverse(const VarFn<B>& f,
                                                      const std::vector<TensorD<B>>& xs,
                                                      const std::vector<bool>& wrt,
                                                      const std::vector<TensorD<B>>& vs,
                                                      const TensorD<B>& seed) {
    Tape<double, B> tape;
    const auto t = on_tape<B>(tape, xs, wrt, &vs);
    const auto &in = t.in, &diff = t.diff, &tv = t.dirs;
    // Only the differentiated inputs carry tangents: jvp() over them, the rest bound in f.
    auto g = [&](const std::vector<VarD<B>>& d) {
        std::vector<VarD<B>> all;
        std::size_t k = 0;
        for (std::size_t i = 0; i < xs.size(); ++i) all.push_back(wrt[i] ? d[k++] : in[i]);
        return f(all);
    };
    const auto r = jvp<double, B>(g, diff, tv, JvpOptions{.create_graph = true});
    std::vector<std::vector<double>> out;
    const auto s = sum(r.tangent * VarD<B>(seed));
    if (!s.requires_grad()) {
        for (auto& d : diff) out.emplace_back(static_cast<std::size_t>(d.numel()), 0.0);
        return out;
    }
    for (auto& h : grad(s, diff, GradOptions{.allow_unused = true})) out.push_back(h.to_host());
    return out;
}

}  // namespace detail

/// Checks the first- and second-order derivatives of `f` at `inputs` by central finite
/// differences. See FdOptions. Every check here can fail: the analytic first derivative
/// of each differentiated input must be non-zero somewhere, and so must the HVP unless
/// `linear` is set (then it must be exactly zero). An l2rw exception (a rule giving a
/// gradient of the wrong shape, say) is reported as a failure of this check, and the
/// test case goes on with its other checks.
template <Backend B>
void check_gradients(std::type_identity_t<VarFn<B>> f, const std::vector<TensorD<B>>& inputs,
                     FdOptions opt = {}) {
    try {
        check_gradients_impl<B>(f, inputs, opt);
    } catch (const Error& e) {
        FAIL_CHECK("gradient check of " << opt.what << " on " << std::string(B::name())
                                        << " threw: " << std::string(e.what()));
    }
}

template <Backend B>
void check_gradients_impl(const VarFn<B>& f, const std::vector<TensorD<B>>& inputs,
                          const FdOptions& opt) {
    const std::size_t n = inputs.size();
    std::vector<bool> wrt = opt.wrt.empty() ? std::vector<bool>(n, true) : opt.wrt;
    REQUIRE_MESSAGE(wrt.size() == n,
                    opt.what << ": wrt has " << wrt.size() << " flags for " << n << " inputs");
    INFO("gradient check of " << opt.what << " on " << std::string(B::name()));

    // The output's shape, and a random seed of that shape.
    const auto y0 = f(detail::constants<B>(inputs));
    const auto seed = TensorD<B>::randn(y0.shape(), opt.seed + 1);

    // ---- first order ----
    const auto ga = detail::first_gradient<B>(f, inputs, wrt, seed);
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!wrt[i]) continue;
        const auto& g = ga[k++];
        CHECK_MESSAGE(max_abs(g) > 0, opt.what << ": the analytic gradient of input " << i
                                               << " is all zero (the check could not fail)");
        auto host = inputs[i].to_host();
        std::vector<double> fd(host.size());
        for (std::size_t j = 0; j < host.size(); ++j) {
            const double x0 = host[j];
            auto eval = [&](double x) {
                host[j] = x;
                auto xs = inputs;
                xs[i] = TensorD<B>::from_host(inputs[i].shape(), host);
                return detail::dot_host<B>(seed, f(detail::constants<B>(xs)).value());
            };
            const long double up = eval(x0 + opt.h1), down = eval(x0 - opt.h1);
            host[j] = x0;
            fd[j] = static_cast<double>((up - down) / (2.0L * opt.h1));
        }
        check_close(g, fd, opt.rtol1, opt.atol1,
                    opt.what + ": first-order VJP of input " + std::to_string(i) + " " +
                        inputs[i].shape().str() + " vs central differences",
                    inputs[i].shape());
    }

    detail::check_jvp<B>(f, inputs, wrt, seed, ga, opt);

    if (!opt.second_order) return;

    // ---- second order: Hessian-vector products ----
    std::vector<TensorD<B>> vs;
    for (std::size_t i = 0; i < n; ++i)
        vs.push_back(TensorD<B>::randn(inputs[i].shape(), opt.seed + 100 + i));

    std::vector<std::vector<double>> hv;
    bool hv_on_tape = false;
    {
        Tape<double, B> tape;
        const auto t = detail::on_tape<B>(tape, inputs, wrt, &vs);
        const auto &in = t.in, &diff = t.diff, &dv = t.dirs;
        auto out = f(in);
        auto g =
            vjp(out, diff, VarD<B>(seed), GradOptions{.create_graph = true, .allow_unused = true});
        VarD<B> s;
        for (std::size_t j = 0; j < g.size(); ++j) {
            auto term = sum(g[j] * dv[j]);
            s = s.defined() ? s + term : term;
        }
        hv_on_tape = s.requires_grad();
        if (hv_on_tape) {
            auto h = grad(s, diff, GradOptions{.allow_unused = true});
            for (auto& hi : h) hv.push_back(hi.to_host());
        } else {
            for (auto& d : diff)
                hv.push_back(std::vector<double>(static_cast<std::size_t>(d.numel()), 0.0));
        }
    }

    // Forward-over-reverse gives the same H_s·v as reverse-over-reverse. Seen failing: the
    // recorded relu JVP without its step (ṫ instead of ṫ·step(out)) -> "relu(x) * x:
    // forward-over-reverse HVP of differentiated input 0 vs reverse-over-reverse: got 0.3579,
    // want 0" (the unrecorded JVP, a separate kernel, was still right).
    const auto fr = detail::forward_over_reverse<B>(f, inputs, wrt, vs, seed);
    for (std::size_t j = 0; j < hv.size(); ++j)
        check_close(fr[j], hv[j], 1e-9, 1e-12,
                    opt.what + ": forward-over-reverse HVP of differentiated input " +
                        std::to_string(j) + " vs reverse-over-reverse");

    if (opt.linear) {
        double m = 0;
        for (auto& h : hv) m = std::max(m, max_abs(h));
        CHECK_MESSAGE(m == 0.0, opt.what
                                    << ": declared linear, but its Hessian-vector product has an "
                                       "element of magnitude "
                                    << fmt(m));
        return;
    }
    CHECK_MESSAGE(hv_on_tape, opt.what << ": the first gradient (create_graph) is not on the tape, "
                                          "so it cannot be differentiated again");

    auto shifted = [&](double t) {
        auto xs = inputs;
        for (std::size_t i = 0; i < n; ++i) {
            if (!wrt[i]) continue;
            auto h = inputs[i].to_host();
            const auto d = vs[i].to_host();
            for (std::size_t j = 0; j < h.size(); ++j) h[j] += t * d[j];
            xs[i] = TensorD<B>::from_host(inputs[i].shape(), h);
        }
        return detail::first_gradient<B>(f, xs, wrt, seed);
    };
    const auto gp = shifted(opt.h2), gm = shifted(-opt.h2);
    double m = 0;
    k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!wrt[i]) continue;
        std::vector<double> fd(gp[k].size());
        for (std::size_t j = 0; j < fd.size(); ++j) fd[j] = (gp[k][j] - gm[k][j]) / (2 * opt.h2);
        m = std::max(m, max_abs(hv[k]));
        check_close(hv[k], fd, opt.rtol2, opt.atol2,
                    opt.what + ": Hessian-vector product, input " + std::to_string(i) + " " +
                        inputs[i].shape().str() + " vs central differences of the gradient",
                    inputs[i].shape());
        ++k;
    }
    CHECK_MESSAGE(m > 0,
                  opt.what << ": the Hessian-vector product is all zero (the check could not fail; "
                              "set linear if f is linear)");
}

}  // namespace l2rw::testing
