// tests/test_ops.cpp — every differentiable op of autodiff/ops.hpp: forward values against
// hand-computed numbers, first- and second-order derivatives against finite differences
// (testing.hpp's check_gradients), and the shape/value errors the ops throw.
//
// Mutation record. Each "broken:" comment below names a wrong rule that was planted in a
// scratch copy of include/ (copy include/ elsewhere, change one rule, compile this file
// against the copy with -I<copy>/include, run it) and what these checks then reported (on
// Cpu; quoted messages are abridged). Every one of the 26 mutations tried made this file
// fail; a check that cannot fail on a wrong rule would be worth nothing.
#include <cmath>
#include <numbers>
#include <vector>

#include "testing.hpp"

using namespace l2rw;
using namespace l2rw::testing;

namespace {
using Vec = std::vector<double>;
}  // namespace

// ---- forward values ------------------------------------------------------------------------

TEST_CASE_TEMPLATE("ops: forward values against hand-computed numbers", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    using V = VarD<B>;
    const double ln2 = std::numbers::ln2;

    SUBCASE("broadcasting arithmetic") {
        V a(tensor<B>(Shape{2, 3}, {1, 2, 3, 4, 5, 6}));
        V row(tensor<B>(Shape{3}, {10, 20, 30}));
        V col(tensor<B>(Shape{2, 1}, {100, 200}));
        CHECK((a + row).to_host() == Vec{11, 22, 33, 14, 25, 36});
        CHECK((a - col).to_host() == Vec{-99, -98, -97, -196, -195, -194});
        CHECK((a * row).to_host() == Vec{10, 40, 90, 40, 100, 180});
        CHECK((row / a).to_host() == Vec{10, 10, 10, 2.5, 4, 5});
        CHECK((col + row).shape() == Shape{2, 3});
        CHECK((col + row).to_host() == Vec{110, 120, 130, 210, 220, 230});
        CHECK((2.0 - a).to_host() == Vec{1, 0, -1, -2, -3, -4});
        CHECK((12.0 / a).to_host() == Vec{12, 6, 4, 3, 2.4, 2});
        CHECK((a * 0.5 + 1.0).to_host() == Vec{1.5, 2, 2.5, 3, 3.5, 4});
        CHECK((-a).to_host() == Vec{-1, -2, -3, -4, -5, -6});
    }
    SUBCASE("elementwise functions") {
        V x(tensor<B>(Shape{3}, {0.0, 4.0, 9.0}));
        CHECK(sqrt(x).to_host() == Vec{0, 2, 3});
        CHECK(pow(x, 0.5).to_host() == Vec{0, 2, 3});
        CHECK(square(x).to_host() == Vec{0, 16, 81});
        CHECK(exp(V(T::zeros(Shape{2}))).to_host() == Vec{1, 1});
        CHECK(log(V(tensor<B>(Shape{2}, {1.0, std::exp(2.0)}))).to_host()[1] ==
              doctest::Approx(2.0));
        CHECK(relu(V(tensor<B>(Shape{3}, {-1, 0, 2}))).to_host() == Vec{0, 0, 2});
        // Stable on both tails: no overflow to inf or NaN.
        V big(tensor<B>(Shape{4}, {-1000, 0, 1000, 30}));
        auto sp = softplus(big).to_host();
        CHECK(sp[0] == 0.0);
        CHECK(sp[1] == doctest::Approx(ln2).epsilon(1e-15));
        CHECK(sp[2] == 1000.0);
        CHECK(sp[3] == doctest::Approx(30 + std::log1p(std::exp(-30.0))).epsilon(1e-15));
        auto sg = sigmoid(big).to_host();
        CHECK(sg[0] == 0.0);
        CHECK(sg[1] == 0.5);
        CHECK(sg[2] == 1.0);
        CHECK(tanh(V(tensor<B>(Shape{1}, {0.5}))).item() ==
              doctest::Approx(std::tanh(0.5)).epsilon(1e-15));
    }
    SUBCASE("reductions") {
        V a(tensor<B>(Shape{2, 3}, {1, 2, 3, 4, 5, 6}));
        CHECK(sum(a).shape() == Shape{});
        CHECK(sum(a).item() == 21);
        CHECK(mean(a).item() == 3.5);
        CHECK(sum(a, 0).to_host() == Vec{5, 7, 9});
        CHECK(sum(a, 0).shape() == Shape{3});
        CHECK(sum(a, 1, true).shape() == Shape{2, 1});
        CHECK(sum(a, -1).to_host() == Vec{6, 15});
        CHECK(mean(a, 1).to_host() == Vec{2, 5});
        CHECK(mean(a, 0, true).shape() == Shape{1, 3});
        CHECK(mean(a, 0, true).to_host() == Vec{2.5, 3.5, 4.5});
        CHECK(sum_to(a, Shape{3}).to_host() == Vec{5, 7, 9});
        CHECK(sum_to(a, Shape{2, 1}).to_host() == Vec{6, 15});
        CHECK(broadcast_to(V(tensor<B>(Shape{2, 1}, {1, 2})), Shape{2, 2}).to_host() ==
              Vec{1, 1, 2, 2});
        auto m = max_detached(V(tensor<B>(Shape{2, 3}, {1, 7, 3, -4, -5, -6})), 1);
        CHECK(m.to_host() == Vec{7, -4});
        CHECK(m.shape() == Shape{2});
    }
    SUBCASE("shapes: reshape, permute, transpose") {
        std::vector<double> iota(24);
        for (std::size_t i = 0; i < iota.size(); ++i) iota[i] = static_cast<double>(i);
        V x(tensor<B>(Shape{2, 3, 4}, iota));
        auto p = permute(x, {2, 0, 1});
        REQUIRE(p.shape() == Shape{4, 2, 3});
        auto h = p.to_host();
        bool all = true;
        for (int k = 0; k < 4; ++k)
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 3; ++j)
                    all = all &&
                          h[static_cast<std::size_t>((k * 2 + i) * 3 + j)] == 12 * i + 4 * j + k;
        CHECK(all);
        CHECK(reshape(x, Shape{6, 4}).to_host() == iota);
        CHECK(transpose(V(tensor<B>(Shape{2, 3}, {1, 2, 3, 4, 5, 6}))).to_host() ==
              Vec{1, 4, 2, 5, 3, 6});
    }
    SUBCASE("matmul, all four transpose flags") {
        V a(tensor<B>(Shape{2, 2}, {1, 2, 3, 4}));
        V b(tensor<B>(Shape{2, 2}, {5, 6, 7, 8}));
        CHECK(matmul(a, b).to_host() == Vec{19, 22, 43, 50});
        CHECK(matmul(a, b, true, false).to_host() == Vec{26, 30, 38, 44});
        CHECK(matmul(a, b, false, true).to_host() == Vec{17, 23, 39, 53});
        CHECK(matmul(a, b, true, true).to_host() == Vec{23, 31, 34, 46});
        V r(tensor<B>(Shape{2, 3}, {1, 0, 2, 0, 1, 1}));
        CHECK(matmul(a, r).shape() == Shape{2, 3});
        CHECK(matmul(a, r).to_host() == Vec{1, 2, 4, 3, 4, 10});
    }
    SUBCASE("indexing") {
        V x(tensor<B>(Shape{3, 2}, {1, 2, 3, 4, 5, 6}));
        auto idx = labels<B>({2, 0, 2});
        CHECK(gather_rows(x, idx).to_host() == Vec{5, 6, 1, 2, 5, 6});
        V g(tensor<B>(Shape{3, 2}, {1, 2, 10, 20, 100, 200}));
        CHECK(scatter_add_rows(g, idx, 4).to_host() == Vec{10, 20, 0, 0, 101, 202, 0, 0});
        auto y = labels<B>({1, 0, 1});
        CHECK(pick(x, y).to_host() == Vec{2, 3, 6});
        CHECK(unpick(V(tensor<B>(Shape{3}, {7, 8, 9})), y, 3).to_host() ==
              Vec{0, 7, 0, 8, 0, 0, 0, 9, 0});
    }
    SUBCASE("softmax and losses") {
        V z(tensor<B>(Shape{2, 3}, {0, 0, 0, 1, 2, 3}));
        auto ls = log_softmax(z).to_host();
        const double lse = 3 + std::log(1 + std::exp(-1.0) + std::exp(-2.0));
        const Vec want{-std::log(3.0), -std::log(3.0), -std::log(3.0), 1 - lse, 2 - lse, 3 - lse};
        check_close(ls, want, 1e-15, 1e-15, "log_softmax values");
        auto sm = softmax(z).to_host();
        CHECK(sm[0] == doctest::Approx(1.0 / 3).epsilon(1e-14));
        CHECK(sm[3] + sm[4] + sm[5] == doctest::Approx(1.0).epsilon(1e-14));
        // Large logits must not overflow.
        V huge(tensor<B>(Shape{1, 2}, {1000, 0}));
        CHECK(log_softmax(huge).to_host() == Vec{0, -1000});
        auto ce = softmax_cross_entropy(z, labels<B>({1, 2}));
        REQUIRE(ce.shape() == Shape{2});
        check_close(ce.to_host(), Vec{std::log(3.0), lse - 3}, 1e-15, 1e-15,
                    "cross-entropy values");
        V t(tensor<B>(Shape{3}, {0.0, 1.0, 0.25}));
        V l(tensor<B>(Shape{3}, {0.0, 0.0, 2.0}));
        auto bce = binary_cross_entropy_with_logits(l, t).to_host();
        check_close(bce, Vec{ln2, ln2, std::log1p(std::exp(2.0)) - 0.5}, 1e-15, 1e-15,
                    "BCE values");
    }
}

// ---- first- and second-order derivatives -----------------------------------------------------

TEST_CASE_TEMPLATE("ops: arithmetic derivatives with broadcasting", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto x = T::randn(Shape{3, 4}, 1);
    const auto row = T::randn(Shape{4}, 2);
    const auto col = T::randn(Shape{3, 1}, 3);
    const auto pos_row = T::uniform(Shape{4}, 4, 0.5, 2.0);
    const auto pos_col = T::uniform(Shape{3, 1}, 5, 0.5, 2.0);
    const auto pos_x = T::uniform(Shape{3, 4}, 6, 0.5, 2.0);

    // broken: add's rule without sum_to for input 1 (gin[1] = c.gout) -> "gradient check of
    //   add, row bias on Cpu threw: grad: the rule of op 'add' gave shape [3, 4] for input 1
    //   of shape [4]" (and the same for the column bias).
    check_gradients<B>([](const auto& v) { return v[0] + v[1]; }, {x, row},
                       {.what = "add, row bias", .linear = true});
    check_gradients<B>([](const auto& v) { return v[0] + v[1]; }, {x, col},
                       {.what = "add, column bias", .linear = true});
    check_gradients<B>([](const auto& v) { return v[1] + v[0]; }, {x, col},
                       {.what = "add, column bias first", .linear = true});
    // broken: sub's rule with gin[1] = +sum_to(gout) -> "sub, row bias: first-order VJP of
    //   input 1 [4] vs central differences: worst element 3 [3]: got -4.876, want 4.876"; the
    //   BCE and log_softmax checks (which subtract) failed as well.
    check_gradients<B>([](const auto& v) { return v[0] - v[1]; }, {x, row},
                       {.what = "sub, row bias", .linear = true});
    check_gradients<B>([](const auto& v) { return v[1] - v[0]; }, {x, col},
                       {.what = "sub, column bias", .linear = true});
    // broken: mul's rule for input 0 as gout * a instead of gout * b -> "mul, row bias:
    //   first-order VJP of input 0 [3, 4]: worst element 7 [1, 3]: got -0.688, want 0.392";
    //   8 of the 10 test cases of this file failed (mul is everywhere).
    check_gradients<B>([](const auto& v) { return v[0] * v[1]; }, {x, row},
                       {.what = "mul, row bias"});
    check_gradients<B>([](const auto& v) { return v[0] * v[1]; }, {x, col},
                       {.what = "mul, column bias"});
    check_gradients<B>([](const auto& v) { return v[0] * v[0]; }, {x},
                       {.what = "mul, same operand twice"});
    // broken: div's rule for the divisor without its minus sign -> "div, row divisor:
    //   first-order VJP of input 1 [4]: worst element 3 [3]: got 0.8455, want -0.8455", and
    //   the HVPs of all three div checks.
    check_gradients<B>([](const auto& v) { return v[0] / v[1]; }, {x, pos_row},
                       {.what = "div, row divisor"});
    check_gradients<B>([](const auto& v) { return v[0] / v[1]; }, {x, pos_col},
                       {.what = "div, column divisor"});
    check_gradients<B>([](const auto& v) { return v[1] / v[0]; }, {pos_x, col},
                       {.what = "div, broadcast numerator"});
    // Only one operand differentiated: the product is linear in it.
    check_gradients<B>([](const auto& v) { return v[0] * v[1]; }, {x, row},
                       {.what = "mul, constant row", .wrt = {true, false}, .linear = true});
    // Rank-4 broadcasting on both sides: [2, 1, 3, 1] op [1, 2, 1, 2] -> [2, 2, 3, 2]; rank 4 op
    // rank 3.
    const auto r4a = T::uniform(Shape{2, 1, 3, 1}, 7, 0.5, 2.0);
    const auto r4b = T::uniform(Shape{1, 2, 1, 2}, 8, 0.5, 2.0);
    check_gradients<B>([](const auto& v) { return v[0] * v[1] + v[0] / v[1] - v[1]; }, {r4a, r4b},
                       {.what = "rank-4 two-sided broadcasting"});
    const auto r3 = T::randn(Shape{4, 1, 2}, 9);
    check_gradients<B>([](const auto& v) { return v[0] * v[1]; }, {r4a, r3},
                       {.what = "rank 4 times rank 3"});
}

TEST_CASE_TEMPLATE("ops: scalar forms and negation", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto x = T::randn(Shape{2, 3}, 11);
    const auto pos = T::uniform(Shape{2, 3}, 12, 0.5, 2.0);
    // broken: mul_scalar's rule gin = c.gout (dropping s) -> "x * s: first-order VJP of
    //   input 0 [2, 3]: worst element 3 [1, 0]: got -1.916, want -4.791", and every mean check.
    check_gradients<B>([](const auto& v) { return v[0] * 2.5; }, {x},
                       {.what = "x * s", .linear = true});
    check_gradients<B>([](const auto& v) { return -1.5 * v[0]; }, {x},
                       {.what = "s * x", .linear = true});
    check_gradients<B>([](const auto& v) { return v[0] / 4.0; }, {x},
                       {.what = "x / s", .linear = true});
    check_gradients<B>([](const auto& v) { return v[0] + 3.0; }, {x},
                       {.what = "x + s", .linear = true});
    check_gradients<B>([](const auto& v) { return 3.0 + v[0]; }, {x},
                       {.what = "s + x", .linear = true});
    check_gradients<B>([](const auto& v) { return v[0] - 3.0; }, {x},
                       {.what = "x - s", .linear = true});
    // broken: neg's rule gin = c.gout -> "neg: first-order VJP of input 0 [2, 3]" and "s - x"
    //   failed; so did the div HVPs ("got 0.8836, want -0.8836": div's rule negates).
    check_gradients<B>([](const auto& v) { return 3.0 - v[0]; }, {x},
                       {.what = "s - x", .linear = true});
    check_gradients<B>([](const auto& v) { return -v[0]; }, {x}, {.what = "neg", .linear = true});
    // broken: rdiv_scalar's rule gin = -(gout * out), missing "/ x" -> "s / x: first-order
    //   VJP of input 0 [2, 3]: worst element 4 [1, 1]: got -1.289, want -0.758", and its HVP.
    check_gradients<B>([](const auto& v) { return 2.0 / v[0]; }, {pos}, {.what = "s / x"});
}

TEST_CASE_TEMPLATE("ops: elementwise function derivatives", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto x = T::randn(Shape{2, 5}, 21);
    const auto pos = T::uniform(Shape{2, 5}, 22, 0.5, 2.0);
    // broken: exp's rule gin = gout * x instead of gout * e^x -> "exp: first-order VJP of
    //   input 0 [2, 5]", and the log-sum-exp, exp(pick), log_softmax-HVP checks.
    check_gradients<B>([](const auto& v) { return exp(v[0]); }, {x}, {.what = "exp"});
    // broken: log's rule gin = gout * x instead of gout / x -> "log: first-order VJP of
    //   input 0 [2, 5]" and the log-sum-exp check.
    check_gradients<B>([](const auto& v) { return log(v[0]); }, {pos}, {.what = "log"});
    // broken: sqrt's rule without the 0.5 -> "sqrt: first-order VJP of input 0 [2, 5]" (2x
    //   off) and its HVP.
    check_gradients<B>([](const auto& v) { return sqrt(v[0]); }, {pos}, {.what = "sqrt"});
    // safe_sqrt is sqrt, to second order, away from 0 (at 0: the next test case).
    check_gradients<B>([](const auto& v) { return safe_sqrt(v[0]); }, {pos}, {.what = "safe_sqrt"});
    // broken: pow's rule with pow(x, p) instead of pow(x, p - 1) -> first-order and HVP
    //   failures of all three pow checks. broken differently: the factor pow(x.detach(), p - 1)
    //   (right values, but cut off the tape) -> first order passed, and the second-order check
    //   reported "pow 2.5: the first gradient (create_graph) is not on the tape" and an HVP
    //   mismatch: this is why every op is checked to second order.
    check_gradients<B>([](const auto& v) { return pow(v[0], 2.5); }, {pos}, {.what = "pow 2.5"});
    check_gradients<B>([](const auto& v) { return pow(v[0], -1.5); }, {pos}, {.what = "pow -1.5"});
    check_gradients<B>([](const auto& v) { return pow(v[0], 3.0); }, {x},
                       {.what = "pow 3, signed base"});
    check_gradients<B>([](const auto& v) { return square(v[0]); }, {x}, {.what = "square"});
    // relu: inputs at least 0.1 from the kink. Its second derivative is zero, but relu(x) * x
    // has curvature flowing through the gradient Var that multiplies the step.
    const auto xr = randn_away_from_zero<B>(Shape{2, 5}, 23, 0.1);
    // broken: relu's rule with the step of -x -> "relu: first-order VJP of input 0 [2, 5]",
    //   and first order and HVP of relu(x) * x.
    check_gradients<B>([](const auto& v) { return relu(v[0]); }, {xr},
                       {.what = "relu", .linear = true});
    check_gradients<B>([](const auto& v) { return relu(v[0]) * v[0]; }, {xr},
                       {.what = "relu(x) * x"});
    // broken: sigmoid's rule gout * out, missing (1 - out) -> "sigmoid: first-order VJP",
    //   and the HVPs of softplus and BCE (softplus's rule calls sigmoid).
    check_gradients<B>([](const auto& v) { return sigmoid(v[0]); }, {x}, {.what = "sigmoid"});
    // broken: tanh's rule gout * (1 + out*out) -> "tanh: first-order VJP of input 0 [2, 5] vs
    //   central differences: worst element 6 [1, 1]: got -0.2714, want -0.004492 (948500x the
    //   allowance)", its HVP, and every tanh(matmul ...) check.
    check_gradients<B>([](const auto& v) { return tanh(v[0]); }, {x}, {.what = "tanh"});
    // broken: softplus's rule gout * sigmoid(-x) -> "softplus: first-order VJP", and the BCE
    //   first-order checks.
    check_gradients<B>([](const auto& v) { return softplus(v[0]); }, {x}, {.what = "softplus"});
    const auto wide = T::uniform(Shape{6}, 24, -30.0, 30.0);
    check_gradients<B>(
        [](const auto& v) { return softplus(v[0]) + sigmoid(v[0] * 0.2); }, {wide},
        {.what = "softplus and sigmoid on wide inputs", .atol1 = 1e-7, .atol2 = 1e-6});
}

// Adam's q = m/(√v + ε) with m = g, v = g² at g = 0 has the derivative 1/ε; sqrt's rule
// makes it 0·∞ = NaN. broken: safe_sqrt's slope as sqrt's (0.5 / out) -> "dq/dg" failed
// (NaN at 0), dy at 0 was inf, and the second derivative threw "grad: output 0 is not finite".
TEST_CASE_TEMPLATE("ops: safe_sqrt has a finite derivative at 0", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto g0 = tensor<B>(Shape{3}, {0.0, 0.0, 4.0});
    constexpr double eps = 1e-8;
    auto q = [](const VarD<B>& g) { return g / (safe_sqrt(g * g) + eps); };
    {
        Tape<double, B> tape;
        auto g = tape.leaf(g0);
        auto dq = grad(sum(q(g)), g, GradOptions{.create_graph = true});
        // d/dg g/(|g| + ε) = ε/(|g| + ε)²: 1/ε at 0, ε/16 (to rounding) at 4.
        // (at 4 the difference 1/(4 + ε) − 4/(4 + ε)² cancels: compared with an absolute bound)
        check_close(dq.to_host(), {1 / eps, 1 / eps, eps / ((4 + eps) * (4 + eps))}, 1e-12, 1e-15,
                    "dq/dg");
        // safe_sqrt itself: value 0 and slope 0 at 0, 1/(2√x) elsewhere; its second
        // derivative is finite (0) at 0 too.
        auto x = tape.leaf(tensor<B>(Shape{2}, {0.0, 4.0}));
        auto y = safe_sqrt(x);
        CHECK(y.to_host() == Vec{0.0, 2.0});
        auto dy = grad(sum(y), x, GradOptions{.create_graph = true});
        CHECK(dy.to_host() == Vec{0.0, 0.25});
        check_close(grad(sum(dy), x).to_host(), {0.0, -0.25 * 0.5 / 4.0}, 1e-15, 0, "d2y/dx2");
    }
    const auto r =
        jvp([&](const std::vector<VarD<B>>& v) { return q(v[0]); },
            std::vector<VarD<B>>{VarD<B>(g0)}, std::vector<VarD<B>>{VarD<B>(T::ones(Shape{3}))});
    check_close(r.tangent.to_host(), {1 / eps, 1 / eps, eps / ((4 + eps) * (4 + eps))}, 1e-12,
                1e-15, "JVP of q");
}

TEST_CASE_TEMPLATE("ops: reduction derivatives", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto x = T::randn(Shape{2, 3, 4}, 31);
    const auto x4 = T::randn(Shape{2, 1, 3, 2}, 32);
    check_gradients<B>([](const auto& v) { return sum(v[0]); }, {x},
                       {.what = "sum", .linear = true});
    check_gradients<B>([](const auto& v) { return mean(v[0]); }, {x4},
                       {.what = "mean", .linear = true});
    for (int axis : {0, 1, 2, -1}) {
        for (bool keep : {false, true}) {
            CAPTURE(axis);
            CAPTURE(keep);
            const std::string tag = "axis " + std::to_string(axis) + (keep ? " keepdim" : "");
            check_gradients<B>([axis, keep](const auto& v) { return sum(v[0], axis, keep); }, {x},
                               {.what = "sum " + tag, .linear = true});
            check_gradients<B>([axis, keep](const auto& v) { return mean(v[0], axis, keep); }, {x},
                               {.what = "mean " + tag, .linear = true});
        }
    }
    // broken: sum_to's rule broadcast_to(gout, from) * 2 -> "sum: first-order VJP of input 0
    //   [2, 3, 4]: worst element 3 [0, 0, 3]: got 1.4095, want 0.7048", the same for every
    //   sum / mean / sum_to check, and the HVPs of the broadcasting mul/div/BCE checks (whose
    //   rules call sum_to): 9 of 10 test cases failed.
    check_gradients<B>(
        [](const auto& v) {
            return sum_to(v[0], Shape{3, 1});
        },
        {x}, {.what = "sum_to [3, 1]", .linear = true});
    check_gradients<B>(
        [](const auto& v) {
            return sum_to(v[0], Shape{1, 4});
        },
        {x}, {.what = "sum_to [1, 4]", .linear = true});
    check_gradients<B>(
        [](const auto& v) {
            return sum_to(v[0], Shape{2, 1, 1, 2});
        },
        {x4}, {.what = "sum_to rank 4", .linear = true});
    // broken: broadcast_to's rule sum_to(gout, from) * 0.5 -> "broadcast_to: first-order VJP
    //   of input 0 [3, 1]: worst element 0 [0, 0]: got -2.2165, want -4.4330", and the HVPs of
    //   log-sum-exp and square(sum(x, 1)) * x.
    check_gradients<B>(
        [](const auto& v) {
            return broadcast_to(v[0], Shape{2, 3, 4});
        },
        {T::randn(Shape{3, 1}, 33)}, {.what = "broadcast_to", .linear = true});
    // Nonlinear through a reduction, so the second-order path runs through sum's rule.
    check_gradients<B>([](const auto& v) { return square(sum(v[0], 1, true)) * v[0]; }, {x},
                       {.what = "square(sum(x, 1)) * x"});
    // max_detached is a constant: log-sum-exp stabilised by it still has the right gradient.
    check_gradients<B>(
        [](const auto& v) {
            auto m = max_detached(v[0], 1, true);
            return log(sum(exp(v[0] - m), 1, true)) + m;
        },
        {T::randn(Shape{3, 4}, 34)}, {.what = "log-sum-exp with max_detached"});
    {
        Tape<double, B> tape;
        auto xv = tape.leaf(x);
        CHECK_FALSE(max_detached(xv, 0).requires_grad());
        CHECK(sum(xv, 0).requires_grad());
    }
}

TEST_CASE_TEMPLATE("ops: reshape, permute and transpose derivatives", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    // broken: reshape's rule reshape(gout * 2, from) -> "reshape: first-order VJP of input 0
    //   [2, 3, 4]", and every per-axis sum / mean check ("sum axis 0: ... got -3.833, want
    //   -1.916"), since those reshape the kept-dim result.
    check_gradients<B>(
        [](const auto& v) {
            return reshape(v[0], Shape{4, 6});
        },
        {T::randn(Shape{2, 3, 4}, 41)}, {.what = "reshape", .linear = true});
    // broken: permute's rule permute(gout, perm) instead of the inverse -> "gradient check of
    //   permute rank 3 on Cpu threw: grad: the rule of op 'permute' gave shape [3, 4, 2] for
    //   input 0 of shape [2, 3, 4]"; with equal extents the shapes fit and the values did not:
    //   "permute rank 3, equal extents: first-order VJP of input 0 [3, 3, 3]: worst element 25
    //   [2, 2, 1]: got 0.136, want -0.147" (likewise rank 4).
    check_gradients<B>(
        [](const auto& v) {
            return permute(v[0], {2, 0, 1});
        },
        {T::randn(Shape{2, 3, 4}, 42)}, {.what = "permute rank 3", .linear = true});
    check_gradients<B>(
        [](const auto& v) {
            return permute(v[0], {1, 2, 0});
        },
        {T::randn(Shape{3, 3, 3}, 43)}, {.what = "permute rank 3, equal extents", .linear = true});
    check_gradients<B>(
        [](const auto& v) {
            return permute(v[0], {3, 1, 0, 2});
        },
        {T::randn(Shape{2, 3, 2, 4}, 44)}, {.what = "permute rank 4", .linear = true});
    check_gradients<B>(
        [](const auto& v) {
            return permute(v[0], {1, 2, 3, 0});
        },
        {T::randn(Shape{2, 2, 2, 2}, 45)},
        {.what = "permute rank 4, equal extents", .linear = true});
    check_gradients<B>([](const auto& v) { return transpose(v[0]); }, {T::randn(Shape{3, 5}, 46)},
                       {.what = "transpose", .linear = true});
    check_gradients<B>([](const auto& v) { return transpose(v[0]) * v[1]; },
                       {T::randn(Shape{3, 3}, 47), T::randn(Shape{3, 3}, 48)},
                       {.what = "transpose(a) * b"});
}

TEST_CASE_TEMPLATE("ops: matmul derivatives, all transpose flags", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    // op(A) is [3, 4], op(B) is [4, 2]; stored shapes follow the flags.
    // broken: the (ta, tb) = (true, true) rule for A as matmul(B, g, false, true) instead of
    //   matmul(B, g, true, true) -> "gradient check of matmul A^T B^T on Cpu threw: matmul:
    //   shapes [2, 4] and [3, 2]^T do not match", and on square operands "square matmul TT:
    //   first-order VJP of input 0 [3, 3]: worst element 3 [1, 0]: got -0.1647, want 0.3597".
    // broken: the (false, true) rule for B as matmul(A, g, true, false) (A^T g instead of
    //   g^T A) -> "the rule of op 'matmul' gave shape [4, 2] for input 1 of shape [2, 4]", and
    //   "square matmul NT: first-order VJP of input 1 [3, 3]: worst element 7 [2, 1]: got -2.170,
    //   want 2.955"; the NN and NT HVPs failed too (their backward passes run NT products).
    for (bool ta : {false, true}) {
        for (bool tb : {false, true}) {
            const auto a = T::randn(ta ? Shape{4, 3} : Shape{3, 4}, 51);
            const auto b = T::randn(tb ? Shape{2, 4} : Shape{4, 2}, 52);
            const std::string tag =
                std::string("matmul ") + (ta ? "A^T" : "A") + " " + (tb ? "B^T" : "B");
            CAPTURE(tag);
            check_gradients<B>([ta, tb](const auto& v) { return matmul(v[0], v[1], ta, tb); },
                               {a, b}, {.what = tag});
            check_gradients<B>(
                [ta, tb](const auto& v) { return matmul(v[0], v[1], ta, tb); }, {a, b},
                {.what = tag + ", B constant", .wrt = {true, false}, .linear = true});
            check_gradients<B>([ta, tb](const auto& v) { return tanh(matmul(v[0], v[1], ta, tb)); },
                               {a, b}, {.what = "tanh(" + tag + ")"});
        }
    }
    // Square operands: a wrong transpose in a rule cannot hide behind a shape error.
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            check_gradients<B>(
                [ta, tb](const auto& v) { return matmul(v[0], v[1], ta, tb); },
                {T::randn(Shape{3, 3}, 53), T::randn(Shape{3, 3}, 54)},
                {.what = std::string("square matmul ") + (ta ? "T" : "N") + (tb ? "T" : "N")});
    check_gradients<B>([](const auto& v) { return matmul(v[0], v[0], false, true); },
                       {T::randn(Shape{3, 2}, 55)}, {.what = "matmul(A, A^T)"});
}

TEST_CASE_TEMPLATE("ops: indexing derivatives", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto idx = labels<B>({2, 0, 2, 2, 3});  // repeats, and row 1 never picked
    // broken: the scatter kernel (gather_rows's VJP) overwriting instead of adding at repeated
    //   indices -> "gather_rows, repeated indices: first-order VJP of input 0 [4, 3]", and the
    //   rank-3 gather, scatter_add_rows and exp(scatter_add_rows) checks.
    check_gradients<B>([&idx](const auto& v) { return gather_rows(v[0], idx); },
                       {T::randn(Shape{4, 3}, 61)},
                       {.what = "gather_rows, repeated indices", .linear = true});
    check_gradients<B>([&idx](const auto& v) { return gather_rows(v[0], idx); },
                       {T::randn(Shape{4, 2, 2}, 62)},
                       {.what = "gather_rows, rank 3", .linear = true});
    check_gradients<B>([&idx](const auto& v) { return square(gather_rows(v[0], idx)); },
                       {T::randn(Shape{4, 3}, 63)}, {.what = "square(gather_rows)"});
    check_gradients<B>([&idx](const auto& v) { return scatter_add_rows(v[0], idx, 6); },
                       {T::randn(Shape{5, 3}, 64)}, {.what = "scatter_add_rows", .linear = true});
    check_gradients<B>([&idx](const auto& v) { return exp(scatter_add_rows(v[0], idx, 4)); },
                       {T::randn(Shape{5, 2}, 65)}, {.what = "exp(scatter_add_rows)"});
    const auto y = labels<B>({1, 0, 3, 3});
    // broken: pick's rule unpick(gout, y, cols) * 2 -> "pick: first-order VJP of input 0
    //   [4, 4]" and every softmax_cross_entropy first-order check. broken: unpick's rule
    //   pick(gout, y) * 0 -> "unpick: the analytic gradient of input 0 is all zero (the check
    //   could not fail)" plus the first-order mismatch.
    check_gradients<B>([&y](const auto& v) { return pick(v[0], y); }, {T::randn(Shape{4, 4}, 66)},
                       {.what = "pick", .linear = true});
    check_gradients<B>([&y](const auto& v) { return unpick(v[0], y, 5); }, {T::randn(Shape{4}, 67)},
                       {.what = "unpick", .linear = true});
    check_gradients<B>([&y](const auto& v) { return exp(pick(v[0], y)) * unpick(v[1], y, 4); },
                       {T::randn(Shape{4, 4}, 68), T::randn(Shape{4}, 69)},
                       {.what = "exp(pick) * unpick"});
}

TEST_CASE_TEMPLATE("ops: softmax and loss derivatives", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    const auto z = T::randn(Shape{4, 5}, 71, 0.0, 2.0);
    // broken: log_softmax's rule gout - out * sum(gout, 1, true) (out instead of exp(out))
    //   -> "log_softmax: first-order VJP of input 0 [4, 5] vs central differences: worst
    //   element 4 [0, 4]: got -1.0058, want 1.1452"; softmax, both cross-entropy checks and
    //   all their HVPs failed too. broken: softmax as exp of a detached log_softmax (plus
    //   0 * log_softmax) -> "softmax: the analytic gradient of input 0 is all zero".
    check_gradients<B>([](const auto& v) { return log_softmax(v[0]); }, {z},
                       {.what = "log_softmax"});
    check_gradients<B>([](const auto& v) { return softmax(v[0]); }, {z}, {.what = "softmax"});
    const auto y = labels<B>({4, 0, 2, 2});
    check_gradients<B>([&y](const auto& v) { return softmax_cross_entropy(v[0], y); }, {z},
                       {.what = "softmax_cross_entropy"});
    check_gradients<B>([&y](const auto& v) { return mean(softmax_cross_entropy(v[0], y)); }, {z},
                       {.what = "mean softmax_cross_entropy"});
    // Large logits: the stabilised forward and the rule stay finite and accurate.
    check_gradients<B>([&y](const auto& v) { return softmax_cross_entropy(v[0] * 40.0, y); }, {z},
                       {.what = "softmax_cross_entropy, large logits",
                        .h1 = 1e-7,
                        .atol1 = 1e-6,
                        .h2 = 1e-6,
                        .atol2 = 1e-4});
    const auto logits = T::randn(Shape{3, 2}, 72, 0.0, 2.0);
    const auto targets = T::uniform(Shape{3, 2}, 73, 0.0, 1.0);
    check_gradients<B>([](const auto& v) { return binary_cross_entropy_with_logits(v[0], v[1]); },
                       {logits, targets}, {.what = "binary_cross_entropy_with_logits"});
    check_gradients<B>([](const auto& v) { return binary_cross_entropy_with_logits(v[0], v[1]); },
                       {logits, targets}, {.what = "BCE, constant targets", .wrt = {true, false}});
}

// ---- errors -------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("ops: shape and value errors name the op and the shapes", B, L2RW_BACKENDS) {
    using T = TensorD<B>;
    using V = VarD<B>;
    V a(T::zeros(Shape{2, 3})), b(T::zeros(Shape{4, 5})), r4(T::zeros(Shape{4}));

    CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul"), ShapeError);
    check_throws_mentioning<ShapeError>([&] { (void)matmul(a, b); }, {"matmul", "[2, 3]", "[4, 5]"},
                                        "matmul mismatch");
    check_throws_mentioning<ShapeError>([&] { (void)matmul(a, a, false, false); },
                                        {"matmul", "[2, 3]"}, "matmul [2,3][2,3]");
    CHECK_NOTHROW((void)matmul(a, a, false, true));
    check_throws_mentioning<ShapeError>([&] { (void)matmul(a, r4); }, {"matmul", "[2, 3]", "[4]"},
                                        "matmul vector");

    CHECK_THROWS_WITH_AS(a + r4, doctest::Contains("add"), ShapeError);
    check_throws_mentioning<ShapeError>([&] { (void)(a + r4); }, {"add", "[2, 3]", "[4]"}, "add");
    check_throws_mentioning<ShapeError>([&] { (void)(a - b); }, {"sub", "[2, 3]", "[4, 5]"}, "sub");
    check_throws_mentioning<ShapeError>([&] { (void)(a * b); }, {"mul", "[2, 3]", "[4, 5]"}, "mul");
    check_throws_mentioning<ShapeError>([&] { (void)(a / b); }, {"div", "[2, 3]", "[4, 5]"}, "div");

    check_throws_mentioning<ShapeError>(
        [&] {
            (void)permute(a, {0, 0});
        },
        {"permute", "[2, 3]"}, "permute repeat");
    check_throws_mentioning<ShapeError>(
        [&] {
            (void)permute(a, {0, 1, 2});
        },
        {"permute", "[2, 3]"}, "permute rank");
    check_throws_mentioning<ShapeError>(
        [&] {
            (void)permute(a, {1, 2});
        },
        {"permute", "[2, 3]"}, "permute range");
    check_throws_mentioning<ShapeError>([&] { (void)transpose(r4); }, {"transpose", "[4]"},
                                        "transpose");
    check_throws_mentioning<ShapeError>(
        [&] {
            (void)reshape(a, Shape{4, 2});
        },
        {"reshape", "[2, 3]", "[4, 2]"}, "reshape");
    check_throws_mentioning<ShapeError>([&] { (void)sum(a, 2); }, {"sum", "[2, 3]"}, "sum axis");
    check_throws_mentioning<ShapeError>([&] { (void)mean(a, -3); }, {"[2, 3]"}, "mean axis");
    check_throws_mentioning<ShapeError>([&] { (void)sum_to(a, Shape{2}); },
                                        {"sum_to", "[2, 3]", "[2]"}, "sum_to");
    check_throws_mentioning<ShapeError>(
        [&] {
            (void)broadcast_to(a, Shape{3, 3});
        },
        {"broadcast_to", "[2, 3]", "[3, 3]"}, "broadcast_to");
    check_throws_mentioning<ShapeError>([&] { (void)log_softmax(r4); }, {"log_softmax", "[4]"},
                                        "log_softmax rank");

    // Labels and indices out of range are ValueErrors naming the op and the bound.
    const auto bad = labels<B>({0, 3});
    check_throws_mentioning<ValueError>([&] { (void)pick(a, bad); }, {"pick", "3", "[0, 3)"},
                                        "pick label");
    check_throws_mentioning<ValueError>([&] { (void)softmax_cross_entropy(a, bad); },
                                        {"label", "[0, 3)"}, "cross-entropy label");
    check_throws_mentioning<ValueError>(
        [&] {
            (void)softmax_cross_entropy(a, labels<B>({-1, 0}));
        },
        {"label"}, "negative label");
    check_throws_mentioning<ValueError>([&] { (void)gather_rows(a, labels<B>({2})); },
                                        {"gather_rows", "[0, 2)"}, "gather index");
    check_throws_mentioning<ValueError>(
        [&] {
            (void)scatter_add_rows(a, labels<B>({0, 5}), 4);
        },
        {"scatter_add_rows", "[0, 4)"}, "scatter index");
    check_throws_mentioning<ShapeError>(
        [&] {
            (void)softmax_cross_entropy(a, labels<B>({0, 1, 2}));
        },
        {"softmax_cross_entropy", "[2, 3]", "[3]"}, "cross-entropy label count");
    check_throws_mentioning<ShapeError>([&] { (void)pick(a, labels<B>({0})); },
                                        {"pick", "[2, 3]", "[1]"}, "pick count");
    check_throws_mentioning<ShapeError>(
        [&] {
            (void)binary_cross_entropy_with_logits(a, V(T::zeros(Shape{3, 2})));
        },
        {"binary_cross_entropy_with_logits", "[2, 3]", "[3, 2]"}, "BCE shapes");

    // An error leaves the tape usable: nothing half-recorded.
    Tape<double, B> tape;
    auto x = tape.leaf(T::ones(Shape{2, 3}));
    const auto before = tape.size();
    CHECK_THROWS_AS((void)(x + r4), ShapeError);
    CHECK(tape.size() == before);
    auto g = grad(sum(x * 3.0), x);
    CHECK(g.to_host() == Vec(6, 3.0));
}
