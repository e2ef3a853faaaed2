// tests/test_autodiff.cpp — the grad() API and the tape: seeds, errors, accumulation,
// no-grad scopes, higher orders, long chains, and the meta-gradient identity of DESIGN.md
// that the reweighting step rests on (threads, memory and in-place writes: test_tape.cpp).
#include <chrono>
#include <cmath>
#include <span>
#include <vector>

#include "testing.hpp"

using namespace l2rw;
using namespace l2rw::testing;

namespace {
using Vec = std::vector<double>;
}  // namespace

// ---- the grad() API ----------------------------------------------------------------------------

TEST_CASE_TEMPLATE("grad: seeds, vjp and the span form", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    using V = VarD<B>;
    Tape<double, B> tape;
    const Vec xs{0.5, -1.0, 2.0};
    auto x = tape.leaf(tensor<B>(Shape{3}, xs));
    auto y = x * x;  // [3]
    const Vec s{1.0, 2.0, -3.0};
    V seed(tensor<B>(Shape{3}, s));

    CHECK(vjp(y, {x}, seed)[0].to_host() == Vec{2 * 0.5 * 1.0, 2 * -1.0 * 2.0, 2 * 2.0 * -3.0});
    CHECK(grad(sum(y), x).to_host() == Vec{1.0, -2.0, 4.0});
    CHECK(grad(sum(y), std::vector<V>{x})[0].to_host() == Vec{1.0, -2.0, 4.0});

    // Two outputs, one seeded and one scalar left unseeded (seed 1): the gradients add.
    const std::vector<V> outs{y, sum(x)};
    const std::vector<V> ins{x};
    const std::vector<V> seeds{seed, V()};
    auto g = grad<double, B>(std::span<const V>(outs), std::span<const V>(ins),
                             std::span<const V>(seeds));
    REQUIRE(g.size() == 1);
    CHECK(g[0].to_host() == Vec{2.0, -3.0, -11.0});

    // A one-element output of rank 2 needs no seed.
    CHECK(grad(reshape(sum(y), Shape{1, 1}), x).to_host() == Vec{1.0, -2.0, 4.0});

    // Seed errors.
    check_throws_mentioning<ShapeError>([&] { (void)grad(y, x); }, {"grad", "[3]", "not a scalar"},
                                        "non-scalar output without a seed");
    check_throws_mentioning<ShapeError>([&] { (void)vjp(y, {x}, V(T::ones(Shape{4}))); },
                                        {"seed", "[4]", "[3]"}, "seed of the wrong shape");
    const std::vector<V> two_seeds{seed, seed};
    check_throws_mentioning<TapeError>(
        [&] {
            (void)grad<double, B>(std::span<const V>(outs.data(), 1), std::span<const V>(ins),
                                  std::span<const V>(two_seeds));
        },
        {"2 seeds", "1 outputs"}, "seed count");
    check_throws_mentioning<TapeError>(
        [&] { (void)grad<double, B>(std::span<const V>(), std::span<const V>(ins)); },
        {"no outputs"}, "no outputs");
}

TEST_CASE_TEMPLATE("grad: unused inputs, constant outputs, undefined Vars", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    using V = VarD<B>;
    Tape<double, B> tape;
    auto x = tape.leaf(T::full(Shape{2}, 3.0));
    auto z = tape.leaf(T::ones(Shape{2, 2}));
    auto out = sum(x * x);

    check_throws_mentioning<TapeError>(
        [&] {
            (void)grad(out, std::vector<V>{x, z});
        },
        {"input 1", "not used"}, "unused input");
    auto g = grad(out, std::vector<V>{x, z}, GradOptions{.allow_unused = true});
    CHECK(g[0].to_host() == Vec{6.0, 6.0});
    CHECK(g[1].shape() == Shape{2, 2});
    CHECK(g[1].to_host() == Vec{0, 0, 0, 0});

    // An output computed only from constants is not on the tape.
    V c(T::ones(Shape{2}));
    auto const_out = sum(c * 2.0);
    CHECK_FALSE(const_out.requires_grad());
    check_throws_mentioning<TapeError>([&] { (void)grad(const_out, x); },
                                       {"output 0", "does not require grad"}, "constant output");
    check_throws_mentioning<TapeError>([&] { (void)grad(out, c); },
                                       {"input 0", "does not require grad"}, "constant input");
    check_throws_mentioning<TapeError>([&] { (void)grad(V(), x); }, {"undefined"},
                                       "undefined output");
    // A nested scope that ends gives the current tape back.
    {
        Tape<double, B> inner;
        CHECK_FALSE(tape.is_current());
    }
    CHECK(tape.is_current());
}

TEST_CASE_TEMPLATE("tape: mixing tapes and using a Var after its scope are TapeErrors", B,
                   L2RW_BACKENDS) {
    using T = TensorD<B>;
    using V = VarD<B>;
    Tape<double, B> outer;
    auto a = outer.leaf(T::ones(Shape{2}));
    V kept, kept_out;
    {
        Tape<double, B> inner;
        CHECK(inner.is_current());
        CHECK_FALSE(outer.is_current());
        auto b = leaf(T::ones(Shape{2}));  // the free leaf() uses the innermost scope
        CHECK(b.tape_data() == inner.data());
        check_throws_mentioning<TapeError>([&] { (void)(a + b); }, {"add", "different tapes"},
                                           "mixed operands");
        check_throws_mentioning<TapeError>(
            [&] {
                (void)matmul(reshape(a, Shape{1, 2}), reshape(b, Shape{2, 1}));
            },
            {"matmul", "different tapes"}, "mixed matmul");
        check_throws_mentioning<TapeError>([&] { (void)grad(sum(a), b); }, {"different tapes"},
                                           "grad across tapes");
        kept = b;
        kept_out = sum(exp(b));
        CHECK(grad(kept_out, kept).to_host() == Vec(2, std::exp(1.0)));
    }
    CHECK(outer.is_current());
    CHECK(leaf(T::ones(Shape{1})).tape_data() == outer.data());

    // After the inner scope ended its Vars keep their values but cannot be differentiated.
    CHECK(kept.to_host() == Vec{1.0, 1.0});
    CHECK_FALSE(kept.requires_grad());
    check_throws_mentioning<TapeError>([&] { (void)grad(kept_out, kept); }, {"released"},
                                       "grad after scope");
    check_throws_mentioning<TapeError>([&] { (void)(kept * 2.0); }, {"mul_scalar", "released"},
                                       "op after scope");
    check_throws_mentioning<TapeError>([&] { (void)(a + kept); }, {"add", "released"},
                                       "mixed with released");
    // The detached value is an ordinary constant again.
    CHECK((kept.detach() * 2.0).to_host() == Vec{2.0, 2.0});
}

TEST_CASE_TEMPLATE("tape: leaf() without a Tape in scope is a TapeError", B, L2RW_BACKENDS) {
    check_throws_mentioning<TapeError>([] { (void)leaf(TensorD<B>::ones(Shape{1})); },
                                       {"leaf", "no Tape"}, "leaf without tape");
}

TEST_CASE_TEMPLATE("grad: a NaN or infinite loss is a NumericError", B, L2RW_BACKENDS) {
    Tape<double, B> tape;
    auto x = tape.leaf(tensor<B>(Shape{2}, {1.0, -1.0}));
    auto nan_loss = sum(log(x));
    check_throws_mentioning<NumericError>([&] { (void)grad(nan_loss, x); }, {"not finite"},
                                          "NaN loss");
    auto inf_loss = sum(exp(x * 1000.0));
    check_throws_mentioning<NumericError>([&] { (void)grad(inf_loss, x); }, {"not finite"},
                                          "inf loss");
    // Opting out returns the (non-finite) gradient instead.
    auto g = grad(nan_loss, x, GradOptions{.check_finite = false}).to_host();
    CHECK(g[0] == 1.0);
    CHECK(g[1] == -1.0);
    CHECK_NOTHROW((void)grad(sum(x * x), x));
}

TEST_CASE_TEMPLATE("grad: contributions of a Var used several times accumulate", B, L2RW_BACKENDS) {
    Tape<double, B> tape;
    const Vec xs{0.3, -0.7};
    auto x = tape.leaf(tensor<B>(Shape{2}, xs));
    auto y = sum(x * x + x * 3.0 + exp(x) - x);
    auto g = grad(y, x).to_host();
    for (std::size_t i = 0; i < 2; ++i)
        CHECK(g[i] == doctest::Approx(2 * xs[i] + 3 + std::exp(xs[i]) - 1).epsilon(1e-14));

    // A diamond: a feeds b twice, and x feeds a and the output directly.
    auto a = x * 2.0;
    auto b = a + a * a;
    auto z = sum(b * x);
    auto gz = grad(z, x).to_host();
    // z = Σ (2x + 4x²) x = Σ 2x² + 4x³ -> 4x + 12x²
    for (std::size_t i = 0; i < 2; ++i)
        CHECK(gz[i] == doctest::Approx(4 * xs[i] + 12 * xs[i] * xs[i]).epsilon(1e-14));

    // Gradient of a Var with respect to itself is the seed.
    auto sx = sum(x);
    CHECK(grad(sx, sx).item() == 1.0);
    // Intermediate nodes as inputs: gradients with respect to a and x together.
    auto both = grad(z, std::vector<VarD<B>>{a, x});
    auto ga = both[0].to_host();
    for (std::size_t i = 0; i < 2; ++i)
        CHECK(ga[i] == doctest::Approx((1 + 2 * 2 * xs[i]) * xs[i]).epsilon(1e-14));
    check_close(both[1].to_host(), gz, 1e-14, 0, "total derivative when a is also an input");
}

TEST_CASE_TEMPLATE("tape: NoGradGuard gives constants, grad without create_graph records nothing",
                   B, L2RW_BACKENDS) {
    Tape<double, B> tape;
    auto x = tape.leaf(tensor<B>(Shape{2}, {1.0, 2.0}));
    CHECK(grad_enabled());
    const auto n0 = tape.size();
    {
        NoGradGuard off;
        CHECK_FALSE(grad_enabled());
        {
            NoGradGuard again;
            CHECK_FALSE(grad_enabled());
        }
        CHECK_FALSE(grad_enabled());
        auto y = sum(exp(x) * x);
        CHECK_FALSE(y.requires_grad());
        CHECK(y.item() == doctest::Approx(std::exp(1.0) + 2 * std::exp(2.0)));
        CHECK(tape.size() == n0);
        check_throws_mentioning<TapeError>([&] { (void)grad(y, x); }, {"does not require grad"},
                                           "no-grad output");
    }
    CHECK(grad_enabled());
    auto y = sum(exp(x) * x);
    CHECK(y.requires_grad());
    const auto n1 = tape.size();
    CHECK(n1 > n0);
    auto g = grad(y, x);
    CHECK_FALSE(g.requires_grad());
    CHECK(tape.size() == n1);  // the backward pass ran unrecorded
    auto g2 = grad(y, x, GradOptions{.create_graph = true});
    CHECK(g2.requires_grad());
    CHECK(tape.size() > n1);
    check_close(g.to_host(), g2.to_host(), 0, 0, "create_graph gives the same values");
}

// ---- higher orders ------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("grad: third derivative of tanh(x) x^3", B, L2RW_BACKENDS) {
    // f = t x³ with t = tanh x, s = 1 - t²: t' = s, t'' = -2ts, t''' = -2s² + 4t²s.
    auto analytic = [](double x) {
        const double t = std::tanh(x), s = 1 - t * t;
        const double t1 = s, t2 = -2 * t * s, t3 = -2 * s * s + 4 * t * t * s;
        const double p = x * x * x, p1 = 3 * x * x, p2 = 6 * x, p3 = 6;
        return std::array<double, 4>{t * p, t1 * p + t * p1, t2 * p + 2 * t1 * p1 + t * p2,
                                     t3 * p + 3 * t2 * p1 + 3 * t1 * p2 + t * p3};
    };
    auto derivs = [](double x0) {
        Tape<double, B> tape;
        auto x = tape.leaf(TensorD<B>::scalar(x0));
        auto f = tanh(x) * pow(x, 3.0);
        auto d1 = grad(f, x, GradOptions{.create_graph = true});
        auto d2 = grad(d1, x, GradOptions{.create_graph = true});
        auto d3 = grad(d2, x);
        return std::array<double, 4>{f.item(), d1.item(), d2.item(), d3.item()};
    };
    for (double x0 : {0.7, -1.3, 2.1}) {
        CAPTURE(x0);
        const auto a = analytic(x0), d = derivs(x0);
        for (int k = 0; k < 4; ++k) {
            CAPTURE(k);
            CHECK(d[static_cast<std::size_t>(k)] ==
                  doctest::Approx(a[static_cast<std::size_t>(k)]).epsilon(1e-12));
        }
        CHECK(std::abs(d[3]) > 0.1);
        // Independent of the closed form: central differences of the second derivative.
        const double h = 1e-5;
        const double fd3 = (derivs(x0 + h)[2] - derivs(x0 - h)[2]) / (2 * h);
        CHECK(d[3] == doctest::Approx(fd3).epsilon(1e-7));
    }
}

// ---- forward mode -------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("jvp: values, tangents, no tape needed, and errors", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    // f(x, y) = x²y + exp(y), elementwise: J·(tx, ty) = 2xy·tx + (x² + exp(y))·ty.
    const Vec xv{0.3, -1.2, 2.0}, yv{0.5, 0.1, -0.7}, tx{1.0, -0.5, 0.25}, ty{-2.0, 0.3, 1.5};
    const auto X = T::from_host({3}, xv), Y = T::from_host({3}, yv);
    auto f = [](const std::vector<VarD<B>>& v) { return v[0] * v[0] * v[1] + exp(v[1]); };
    const auto r = jvp<double, B>(f, {VarD<B>(X), VarD<B>(Y)},
                                  {VarD<B>(T::from_host({3}, tx)), VarD<B>(T::from_host({3}, ty))});
    Vec want_f, want_t;
    for (std::size_t i = 0; i < 3; ++i) {
        want_f.push_back(xv[i] * xv[i] * yv[i] + std::exp(yv[i]));
        want_t.push_back(2 * xv[i] * yv[i] * tx[i] + (xv[i] * xv[i] + std::exp(yv[i])) * ty[i]);
    }
    check_close(r.output.to_host(), want_f, 1e-15, 0, "jvp output");
    check_close(r.tangent.to_host(), want_t, 1e-14, 0, "jvp tangent");
    CHECK_FALSE(r.output.has_tangent());
    CHECK_FALSE(r.tangent.requires_grad());  // nothing was recorded: there is no tape
    // A function that does not depend on its inputs has a zero tangent.
    const auto c = jvp<double, B>([&](const std::vector<VarD<B>>&) { return VarD<B>(X); },
                                  {VarD<B>(Y)}, {VarD<B>(Y)});
    check_close(c.tangent.to_host(), Vec{0, 0, 0}, 0, 0, "constant function");
    // Errors name what is wrong.
    check_throws_mentioning<ShapeError>(
        [&] { (void)make_dual(VarD<B>(X), VarD<B>(T::zeros({2}))); }, {"make_dual", "[2]", "[3]"},
        "make_dual shape");
    check_throws_mentioning<TapeError>(
        [&] {
            (void)jvp<double, B>(f, {VarD<B>(X), VarD<B>(Y)}, {VarD<B>(X)});
        },
        {"1 tangents for 2 inputs"}, "jvp count");
    // A tape in scope: the primal is recorded, the tangent is not (it costs no tape memory).
    Tape<double, B> tape;
    auto x = tape.leaf(X);
    const std::size_t before = tape.size();
    auto y = exp(make_dual(x, VarD<B>(T::from_host({3}, tx))));
    CHECK(tape.size() == before + 1);
    CHECK(y.requires_grad());
    CHECK_FALSE(y.tangent().requires_grad());
}

TEST_CASE_TEMPLATE("jvp: the gradient of a JVP (forward-over-reverse) against differences", B,
                   L2RW_BACKENDS) {
    using T = TensorD<B>;
    // g(x) = ⟨s, J_f(x)·t⟩ for f = tanh(W x)·x (W a constant matrix): differentiated in x by a
    // backward pass through the recorded JVP, against central differences of g.
    const auto W = T::randn({4, 4}, 5), t = T::randn({4, 1}, 6), s = T::randn({4, 1}, 7);
    const auto x0 = T::randn({4, 1}, 8);
    auto f = [&](const std::vector<VarD<B>>& v) { return tanh(matmul(VarD<B>(W), v[0])) * v[0]; };
    auto g_of = [&](const T& x) {
        const auto r = jvp<double, B>(f, {VarD<B>(x)}, {VarD<B>(t)});
        return sum(r.tangent * VarD<B>(s)).item();
    };
    Tape<double, B> tape;
    auto x = tape.leaf(x0);
    const auto r = jvp<double, B>(f, {x}, {VarD<B>(t)}, JvpOptions{.create_graph = true});
    REQUIRE(r.tangent.requires_grad());
    const auto dg = grad(sum(r.tangent * VarD<B>(s)), x).to_host();
    auto h = x0.to_host();
    Vec fd(h.size());
    for (std::size_t j = 0; j < h.size(); ++j) {
        const double e = 1e-6, v = h[j];
        h[j] = v + e;
        const double up = g_of(T::from_host({4, 1}, h));
        h[j] = v - e;
        const double down = g_of(T::from_host({4, 1}, h));
        h[j] = v;
        fd[j] = (up - down) / (2 * e);
    }
    CHECK(max_abs(dg) > 0.1);
    check_close(dg, fd, 1e-7, 1e-9, "gradient of a JVP vs central differences");
}

TEST_CASE("grad: a chain of 1,000,000 nodes, without recursion") {
    using B = Cpu;
#if L2RW_TEST_ASAN
    // ASan makes each of the ~10 allocations per node slow (30 s for 1e6 here); 3e5 nodes still
    // far exceed what a recursive walk or a recursive destructor could survive on its stack.
    constexpr int n = 300'000;
#else
    constexpr int n = 1'000'000;
#endif
    constexpr double c = 1.0000001;
    const auto t0 = std::chrono::steady_clock::now();
    Tape<double, B> tape;
    auto x = tape.leaf(TensorD<B>::scalar(1.0));
    auto y = x;
    for (int i = 0; i < n; ++i) y = y * c;
    CHECK(tape.size() == static_cast<std::size_t>(n) + 1);
    const double want = std::pow(c, n);  // about e^0.1
    CHECK(y.item() == doctest::Approx(want).epsilon(1e-9));
    const double g = grad(y, x).item();
    CHECK(g == doctest::Approx(want).epsilon(1e-9));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(n << "-node chain, record + grad: " << secs << " s");
}

// ---- the meta-gradient identity (DESIGN.md) ---------------------------------------------------

namespace {
constexpr index_t kIn = 5, kHidden = 7, kClasses = 3, kTrain = 6, kVal = 8;
constexpr double kAlpha = 0.3;

template <Backend B>
struct MetaProblem {
    std::vector<TensorD<B>> theta = mlp_init<double, B>(kIn, kHidden, kClasses, 41);
    TensorD<B> x = TensorD<B>::randn(Shape{kTrain, kIn}, 42);
    IndexTensor<B> y = random_labels<B>(kTrain, kClasses, 43);
    TensorD<B> xv = TensorD<B>::randn(Shape{kVal, kIn}, 44);
    IndexTensor<B> yv = random_labels<B>(kVal, kClasses, 45);
};

/// L_v after a real lookahead step θ' = θ - α ∇_θ Σ ε_i f_i(θ), for a given ε (no create_graph).
template <Backend B>
double lookahead_val_loss(const MetaProblem<B>& P, const TensorD<B>& eps) {
    Tape<double, B> tape;
    auto th = leaves<B>(tape, P.theta);
    auto l_eps = sum(VarD<B>(eps) * mlp_losses(th, VarD<B>(P.x), P.y));
    auto g = grad(l_eps, th);
    std::vector<VarD<B>> th2;
    for (std::size_t i = 0; i < th.size(); ++i)
        th2.emplace_back((th[i].detach() - g[i] * kAlpha).value());
    return mean(mlp_losses(th2, VarD<B>(P.xv), P.yv)).item();
}
}  // namespace

TEST_CASE_TEMPLATE("meta-gradient: backward-on-backward equals alpha <grad L_v, grad f_i>", B,
                   L2RW_BACKENDS) {
    MetaProblem<B> P;

    // u = -∂L_v(θ - α ∇_θ Σ ε_i f_i)/∂ε at ε = 0, by double backward.
    Vec u;
    {
        Tape<double, B> tape;
        auto th = leaves<B>(tape, P.theta);
        auto eps = tape.leaf(TensorD<B>::zeros(Shape{kTrain}));
        auto l_eps = sum(eps * mlp_losses(th, VarD<B>(P.x), P.y));
        auto g = grad(l_eps, th, GradOptions{.create_graph = true});
        std::vector<VarD<B>> th2;
        for (std::size_t i = 0; i < th.size(); ++i) th2.push_back(th[i] - g[i] * kAlpha);
        auto l_v = mean(mlp_losses(th2, VarD<B>(P.xv), P.yv));
        u = (-grad(l_v, eps)).to_host();
    }

    // The closed form, example by example with separate grad() calls.
    std::vector<Vec> gv;
    {
        Tape<double, B> tape;
        auto th = leaves<B>(tape, P.theta);
        for (auto& g : grad(mean(mlp_losses(th, VarD<B>(P.xv), P.yv)), th))
            gv.push_back(g.to_host());
    }
    Vec want(static_cast<std::size_t>(kTrain));
    for (index_t i = 0; i < kTrain; ++i) {
        Tape<double, B> tape;
        auto th = leaves<B>(tape, P.theta);
        const auto one = labels<B>({i});
        auto fi =
            mlp_losses(th, VarD<B>(eager::gather_rows(P.x, one)), eager::gather_rows(P.y, one));
        auto gi = grad(sum(fi), th);
        long double dot = 0;
        for (std::size_t k = 0; k < gi.size(); ++k) {
            const auto h = gi[k].to_host();
            for (std::size_t j = 0; j < h.size(); ++j)
                dot += static_cast<long double>(h[j]) * gv[k][j];
        }
        want[static_cast<std::size_t>(i)] = kAlpha * static_cast<double>(dot);
    }
    const double scale = max_abs(want);
    REQUIRE(scale > 1e-3);
    CHECK(max_abs(u) > 1e-3);
    // Both signs occur, so the sign of the identity is tested too.
    CHECK(*std::min_element(want.begin(), want.end()) < 0);
    CHECK(*std::max_element(want.begin(), want.end()) > 0);
    check_close(u, want, 0, 1e-9 * scale, "u = -dL_v/d eps vs alpha <grad L_v, grad f_i>",
                Shape{kTrain});

    // And against a real lookahead with ε perturbed: u_i ≈ -(L_v(h e_i) - L_v(-h e_i)) / 2h.
    Vec fd(static_cast<std::size_t>(kTrain));
    const double h = 1e-4;
    for (index_t i = 0; i < kTrain; ++i) {
        Vec e(static_cast<std::size_t>(kTrain), 0.0);
        e[static_cast<std::size_t>(i)] = h;
        const double up = lookahead_val_loss<B>(P, tensor<B>(Shape{kTrain}, e));
        e[static_cast<std::size_t>(i)] = -h;
        const double down = lookahead_val_loss<B>(P, tensor<B>(Shape{kTrain}, e));
        fd[static_cast<std::size_t>(i)] = -(up - down) / (2 * h);
    }
    check_close(u, fd, 0, 1e-6 * scale, "u vs central differences of a real lookahead",
                Shape{kTrain});
}
