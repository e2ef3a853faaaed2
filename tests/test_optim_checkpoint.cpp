// tests/test_optim_checkpoint.cpp — optim/{sgd,adam,schedule}.hpp and io/checkpoint.hpp.
//
// The optimizers are checked against reference sequences computed here in plain C++ doubles
// from the torch.optim formulas (and a few numbers worked out by hand); the checkpoint is
// checked for bit-exact round trips (parameters, BatchNorm running statistics, optimizer
// state, across backends) and for every way a file can be bad, after which the model and
// the optimizer must be bitwise unchanged.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <l2rw/io/checkpoint.hpp>
#include <l2rw/optim.hpp>
#include <string>
#include <vector>

#include "testing.hpp"

#ifndef L2RW_BACKENDS
#define L2RW_BACKENDS l2rw::Cpu
#endif

using namespace l2rw;
using namespace l2rw::testing;

namespace {

using Vec = std::vector<double>;
using Host = std::vector<Vec>;  // one host vector per parameter

// ---- reference optimizers in plain doubles ---------------------------------------------------

struct RefSgd {
    double lr, mu, tau, wd;
    bool nesterov;
    Host buf;
    void step(Host& p, const Host& g) {
        const bool first = buf.empty();
        if (first) buf = Host(p.size());
        for (std::size_t k = 0; k < p.size(); ++k) {
            if (first) buf[k] = Vec(p[k].size());
            for (std::size_t j = 0; j < p[k].size(); ++j) {
                double gj = g[k][j] + wd * p[k][j];
                if (mu != 0) {
                    double& b = buf[k][j];
                    b = first ? gj : mu * b + (1 - tau) * gj;
                    gj = nesterov ? gj + mu * b : b;
                }
                p[k][j] -= lr * gj;
            }
        }
    }
};

struct RefAdam {
    double lr, b1, b2, eps, wd;
    Host m, v;
    int t = 0;
    void step(Host& p, const Host& g) {
        if (m.empty()) {
            for (auto& x : p) {
                m.emplace_back(x.size(), 0.0);
                v.emplace_back(x.size(), 0.0);
            }
        }
        ++t;
        const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
        for (std::size_t k = 0; k < p.size(); ++k)
            for (std::size_t j = 0; j < p[k].size(); ++j) {
                const double gj = g[k][j] + wd * p[k][j];
                m[k][j] = b1 * m[k][j] + (1 - b1) * gj;
                v[k][j] = b2 * v[k][j] + (1 - b2) * gj * gj;
                const double mhat = m[k][j] / c1, vhat = v[k][j] / c2;
                p[k][j] -= lr * mhat / (std::sqrt(vhat) + eps);
            }
    }
};

/// A gradient that depends on the parameters and the step, so the sequences are coupled.
Host fake_grads(const Host& p, int step) {
    Host g = p;
    for (std::size_t k = 0; k < p.size(); ++k)
        for (std::size_t j = 0; j < p[k].size(); ++j)
            g[k][j] = 0.3 * p[k][j] * p[k][j] - 0.2 * (step + 1) + 0.1 * static_cast<double>(j) -
                      0.05 * k;
    return g;
}

const Host initial_params = {{0.5, -1.0, 2.0, 0.25}, {1.5, -0.75, 0.1}};
const std::vector<Shape> param_shapes = {Shape{2, 2}, Shape{3}};

template <Backend B>
std::vector<TensorD<B>> to_tensors(const Host& h) {
    std::vector<TensorD<B>> out;
    for (std::size_t k = 0; k < h.size(); ++k)
        out.push_back(TensorD<B>::from_host(param_shapes[k], h[k]));
    return out;
}
template <Backend B>
Host to_host(const std::vector<TensorD<B>>& ts) {
    Host h;
    for (const auto& t : ts) h.push_back(t.to_host());
    return h;
}

bool bitwise_equal(const Vec& a, const Vec& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// ---- models, files ------------------------------------------------------------------------------

/// Every parameter and buffer of a model, by name, on the host.
template <class T, Backend B>
std::vector<std::pair<std::string, std::vector<T>>> snapshot(nn::Module<T, B>& m) {
    std::vector<std::pair<std::string, std::vector<T>>> out;
    for (auto& [name, t, kind] : nn::named_tensors(m)) out.emplace_back(name, t->to_host());
    return out;
}
template <class T>
bool same_snapshot(const std::vector<std::pair<std::string, std::vector<T>>>& a,
                   const std::vector<std::pair<std::string, std::vector<T>>>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].first != b[i].first || a[i].second.size() != b[i].second.size()) return false;
        if (!a[i].second.empty() && std::memcmp(a[i].second.data(), b[i].second.data(),
                                                a[i].second.size() * sizeof(T)) != 0)
            return false;
    }
    return true;
}
/// The momentum buffers of an SGD on the host (empty vector for an absent buffer).
template <Backend B>
Host sgd_state(const optim::SGD<double, B>& o) {
    Host h;
    for (std::size_t i = 0; i < o.num_params(); ++i) {
        const auto& b = o.momentum_buffer(i);
        h.push_back(b ? b->to_host() : Vec{});
    }
    return h;
}

/// A fresh directory under the system temp dir, removed with its contents on destruction.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               ("l2rw_test_ckpt_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::filesystem::path operator/(const std::string& n) const { return path / n; }
};

std::vector<char> read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::filesystem::path& p, const std::vector<char>& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

/// `steps` SGD steps of `model` (train mode) on seeded [2, 3, 8, 8] batches of 10 classes.
template <Backend B, class Opt>
void train_resnet(nn::Module<double, B>& model, Opt& opt, int steps, std::uint64_t seed) {
    for (int s = 0; s < steps; ++s) {
        const auto x = TensorD<B>::randn(Shape{2, 3, 8, 8}, seed + static_cast<std::uint64_t>(s));
        const auto y = random_labels<B>(2, 10, seed + 100 + static_cast<std::uint64_t>(s));
        Tape<double, B> tape;
        const auto binding = nn::ParamBinding<double, B>::leaves(model, tape);
        const nn::Context<double, B> ctx{nn::Mode::train, &binding, nullptr};
        const auto loss = nn::cross_entropy(model(VarD<B>(x), ctx), y);
        opt.step(nn::named_parameters(model), grad(loss, binding.vars()));
    }
}
/// `steps` steps of an MLP {4, h, 3} on seeded batches of 5.
template <Backend B, class Opt>
void train_mlp(nn::Module<double, B>& model, Opt& opt, int steps, std::uint64_t seed) {
    for (int s = 0; s < steps; ++s) {
        const auto x = TensorD<B>::randn(Shape{5, 4}, seed + static_cast<std::uint64_t>(s));
        const auto y = random_labels<B>(5, 3, seed + 50 + static_cast<std::uint64_t>(s));
        Tape<double, B> tape;
        const auto binding = nn::ParamBinding<double, B>::leaves(model, tape);
        const nn::Context<double, B> ctx{nn::Mode::train, &binding, nullptr};
        const auto loss = nn::cross_entropy(model(VarD<B>(x), ctx), y);
        opt.step(nn::named_parameters(model), grad(loss, binding.vars()));
    }
}

}  // namespace

// ==== SGD ========================================================================================

TEST_CASE_TEMPLATE("optim: SGD matches the torch.optim.SGD recurrences over 3 steps", B,
                   L2RW_BACKENDS) {
    struct Config {
        const char* name;
        optim::SGDOptions o;
    };
    const Config configs[] = {
        {"plain", {.lr = 0.1}},
        {"momentum", {.lr = 0.1, .momentum = 0.9}},
        {"nesterov", {.lr = 0.05, .momentum = 0.8, .nesterov = true}},
        {"weight decay", {.lr = 0.1, .weight_decay = 0.01}},
        {"dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.3}},
        {"all but nesterov", {.lr = 0.2, .momentum = 0.7, .weight_decay = 0.05, .dampening = 0.5}},
        {"nesterov + weight decay",
         {.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-3}},
    };
    for (const auto& c : configs) {
        const std::string config = c.name;
        CAPTURE(config);
        RefSgd ref{c.o.lr, c.o.momentum, c.o.dampening, c.o.weight_decay, c.o.nesterov, {}};
        optim::SGD<double, B> opt(c.o);
        Host expected = initial_params;
        auto params = to_tensors<B>(initial_params);
        for (int s = 0; s < 3; ++s) {
            const Host g = fake_grads(expected, s);
            const auto gt = to_tensors<B>(g);
            const Host before = to_host<B>(params);

            // direction(): no side effects, and θ_after == θ_before − lr·d bit for bit.
            const auto state_before = sgd_state<B>(opt);
            const auto d = opt.direction(params, gt);
            CHECK(sgd_state<B>(opt) == state_before);
            CHECK(to_host<B>(params) == before);
            // The Var form of the direction gives the same numbers.
            std::vector<VarD<B>> pv, gv;
            for (std::size_t k = 0; k < params.size(); ++k) {
                pv.emplace_back(params[k]);
                gv.emplace_back(gt[k]);
            }
            const auto dv = opt.direction(pv, gv);
            for (std::size_t k = 0; k < d.size(); ++k)
                check_close(dv[k].value(), d[k], 1e-15, 1e-15,
                            std::string(c.name) + ": Var direction");
            // The direction is affine in the gradient with slope direction_gradient_scale().
            auto g2 = g;
            for (auto& v : g2)
                for (auto& x : v) x += 0.125;
            const auto d2 = opt.direction(params, to_tensors<B>(g2));
            const double scale = opt.direction_gradient_scale();
            for (std::size_t k = 0; k < d.size(); ++k) {
                auto a = d2[k].to_host(), b = d[k].to_host();
                for (std::size_t j = 0; j < a.size(); ++j) a[j] = (a[j] - b[j]) / 0.125;
                check_close(a, Vec(a.size(), scale), 1e-12, 1e-12,
                            std::string(c.name) + ": gradient slope");
            }

            opt.step(params, gt);
            ref.step(expected, g);
            const Host got = to_host<B>(params);
            for (std::size_t k = 0; k < got.size(); ++k) {
                check_close(got[k], expected[k], 1e-15, 1e-15,
                            std::string(c.name) + ": step " + std::to_string(s + 1) +
                                ", parameter " + std::to_string(k));
                const auto dh = d[k].to_host();
                Vec applied(dh.size());
                for (std::size_t j = 0; j < dh.size(); ++j)
                    applied[j] = before[k][j] - c.o.lr * dh[j];
                CHECK_MESSAGE(bitwise_equal(got[k], applied),
                              c.name << ": step " << s + 1 << " differs from θ − lr·direction");
            }
            if (c.o.momentum != 0) {
                for (std::size_t k = 0; k < params.size(); ++k) {
                    REQUIRE(opt.momentum_buffer(k).has_value());
                    check_close(opt.momentum_buffer(k)->to_host(), ref.buf[k], 1e-15, 1e-15,
                                std::string(c.name) + ": momentum buffer");
                }
            } else {
                CHECK_FALSE(opt.momentum_buffer(0).has_value());
            }
        }
        CHECK(opt.step_count() == 3);
    }
}

TEST_CASE_TEMPLATE("optim: SGD hand-computed numbers, slopes and state access", B, L2RW_BACKENDS) {
    // θ = 1, g = 0.5 every step, lr 0.1, μ 0.9: b = 0.5, 0.95, 1.355; θ = 0.95, 0.855, 0.7195.
    optim::SGD<double, B> opt({.lr = 0.1, .momentum = 0.9});
    std::vector<TensorD<B>> p{TensorD<B>::full(Shape{1}, 1.0)};
    const std::vector<TensorD<B>> g{TensorD<B>::full(Shape{1}, 0.5)};
    CHECK(opt.direction_gradient_scale() == 1.0);
    const double want_theta[] = {0.95, 0.855, 0.7195}, want_b[] = {0.5, 0.95, 1.355};
    for (int s = 0; s < 3; ++s) {
        opt.step(p, g);
        CHECK(p[0].item() == doctest::Approx(want_theta[s]).epsilon(1e-15));
        CHECK(opt.momentum_buffer(0)->item() == doctest::Approx(want_b[s]).epsilon(1e-15));
    }
    CHECK(opt.direction_gradient_scale() == 1.0);  // (1 − dampening) with dampening 0
    CHECK(opt.param_names() == std::vector<std::string>{"0"});
    CHECK(opt.momentum_buffer("0") != nullptr);
    CHECK(opt.momentum_buffer("nope") == nullptr);

    optim::SGD<double, B> nest({.lr = 0.1, .momentum = 0.9, .nesterov = true});
    CHECK(nest.direction_gradient_scale() == doctest::Approx(1.9));
    optim::SGD<double, B> damp({.lr = 0.1, .momentum = 0.9, .dampening = 0.25});
    CHECK(damp.direction_gradient_scale() == 1.0);
    damp.step(p, g);
    CHECK(damp.direction_gradient_scale() == 0.75);

    // Named parameters from a model: buffers by name, settable state.
    auto model = nn::mlp<double, B>({4, 8, 3}, 7);
    optim::SGD<double, B> sgd({.lr = 0.05, .momentum = 0.9});
    train_mlp(*model, sgd, 1, 3);
    CHECK(sgd.param_names() ==
          std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
    REQUIRE(sgd.momentum_buffer("2.weight") != nullptr);
    CHECK(sgd.momentum_buffer("2.weight")->shape() == Shape{3, 8});
    sgd.set_momentum_buffer(1, TensorD<B>::full(Shape{8}, 2.0));
    CHECK(sgd.momentum_buffer(1)->to_host() == Vec(8, 2.0));
    sgd.set_step_count(41);
    CHECK(sgd.step_count() == 41);

    // The float instantiation runs too.
    optim::SGD<float, B> sf({.lr = 0.5f, .momentum = 0.5});
    std::vector<Tensor<float, B>> pf{Tensor<float, B>::full(Shape{2}, 1.0f)};
    sf.step(pf, std::vector<Tensor<float, B>>{Tensor<float, B>::full(Shape{2}, 1.0f)});
    CHECK(pf[0].to_host() == std::vector<float>{0.5f, 0.5f});
}

TEST_CASE_TEMPLATE("optim: SGD and Adam reject bad lists and leave parameters unchanged", B,
                   L2RW_BACKENDS) {
    auto model = nn::mlp<double, B>({4, 8, 3}, 1);
    optim::SGD<double, B> sgd({.lr = 0.1, .momentum = 0.9});
    optim::Adam<double, B> adam({.lr = 0.1});
    const auto before = snapshot(*model);
    auto named = nn::named_parameters(*model);
    std::vector<TensorD<B>> grads;
    for (auto& [n, t] : named) grads.push_back(TensorD<B>::ones(t->shape()));
    auto bad = grads;
    bad[2] = TensorD<B>::ones(Shape{8, 3});  // "2.weight" is [3, 8]
    check_throws_mentioning<ShapeError>([&] { sgd.step(named, bad); },
                                        {"'2.weight'", "[3, 8]", "[8, 3]"}, "SGD shape");
    check_throws_mentioning<ShapeError>([&] { adam.step(named, bad); },
                                        {"'2.weight'", "[3, 8]", "[8, 3]"}, "Adam shape");
    check_throws_mentioning<ShapeError>([&] { (void)sgd.direction(named, bad); }, {"'2.weight'"},
                                        "SGD direction shape");
    auto few = grads;
    few.pop_back();
    check_throws_mentioning<ShapeError>([&] { sgd.step(named, few); },
                                        {"3 gradients for 4 parameters"}, "SGD count");
    std::vector<VarD<B>> undefined(4);
    check_throws_mentioning<ValueError>([&] { sgd.step(named, undefined); },
                                        {"'0.weight'", "undefined"}, "undefined");
    CHECK(same_snapshot(snapshot(*model), before));
    CHECK(sgd.step_count() == 0);
    // Once the state is built for 4 parameters, a list of 3 is refused.
    sgd.step(named, grads);
    named.pop_back();
    few = grads;
    few.pop_back();
    check_throws_mentioning<ShapeError>([&] { sgd.step(named, few); }, {"built for 4"},
                                        "SGD state size");
}

TEST_CASE("optim: invalid options throw ValueError") {
    using S = optim::SGD<double, Cpu>;
    using A = optim::Adam<double, Cpu>;
    check_throws_mentioning<ValueError>([] { S({.lr = -0.1}); }, {"SGD", "lr"}, "negative lr");
    check_throws_mentioning<ValueError>([] { S({.lr = std::nan("")}); }, {"lr"}, "NaN lr");
    check_throws_mentioning<ValueError>([] { S({.lr = 0.1, .momentum = -0.5}); }, {"momentum"},
                                        "negative momentum");
    check_throws_mentioning<ValueError>([] { S({.lr = 0.1, .weight_decay = -1}); },
                                        {"weight_decay"}, "negative wd");
    check_throws_mentioning<ValueError>([] { S({.lr = 0.1, .momentum = 0.9, .dampening = 1.5}); },
                                        {"dampening"}, "dampening");
    check_throws_mentioning<ValueError>([] { S({.lr = 0.1, .nesterov = true}); }, {"Nesterov"},
                                        "nesterov without momentum");
    check_throws_mentioning<ValueError>(
        [] { S({.lr = 0.1, .momentum = 0.9, .nesterov = true, .dampening = 0.1}); },
        {"Nesterov", "dampening"}, "nesterov with dampening");
    S ok({.lr = 0.1});
    check_throws_mentioning<ValueError>([&] { ok.set_lr(-1); }, {"lr"}, "set_lr");
    check_throws_mentioning<ValueError>([] { A({.lr = -1}); }, {"Adam", "lr"}, "Adam lr");
    check_throws_mentioning<ValueError>([] { A({.lr = 0.1, .beta1 = 1.0}); }, {"beta1"}, "beta1");
    check_throws_mentioning<ValueError>([] { A({.lr = 0.1, .beta2 = -0.1}); }, {"beta2"}, "beta2");
    check_throws_mentioning<ValueError>([] { A({.lr = 0.1, .eps = -1e-8}); }, {"eps"}, "eps");
    check_throws_mentioning<ValueError>([] { A({.lr = 0.1, .weight_decay = -1}); },
                                        {"weight_decay"}, "Adam wd");
}

// ==== Adam =======================================================================================

TEST_CASE_TEMPLATE("optim: Adam matches the torch.optim.Adam recurrences over 3 steps", B,
                   L2RW_BACKENDS) {
    struct Config {
        const char* name;
        optim::AdamOptions o;
    };
    const Config configs[] = {
        {"defaults", {.lr = 0.01}},
        {"weight decay", {.lr = 0.05, .weight_decay = 0.1}},
        {"other betas", {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.9, .eps = 1e-3}},
    };
    for (const auto& c : configs) {
        const std::string config = c.name;
        CAPTURE(config);
        RefAdam ref{c.o.lr, c.o.beta1, c.o.beta2, c.o.eps, c.o.weight_decay, {}, {}};
        optim::Adam<double, B> opt(c.o);
        Host expected = initial_params;
        auto params = to_tensors<B>(initial_params);
        for (int s = 0; s < 3; ++s) {
            const Host g = fake_grads(expected, s);
            const auto gt = to_tensors<B>(g);
            const Host before = to_host<B>(params);
            const auto d = opt.direction(params, gt);
            CHECK(to_host<B>(params) == before);
            opt.step(params, gt);
            ref.step(expected, g);
            const Host got = to_host<B>(params);
            for (std::size_t k = 0; k < got.size(); ++k) {
                check_close(got[k], expected[k], 1e-14, 1e-15,
                            std::string(c.name) + ": step " + std::to_string(s + 1) +
                                ", parameter " + std::to_string(k));
                check_close(opt.exp_avg(k)->to_host(), ref.m[k], 1e-14, 1e-16,
                            std::string(c.name) + ": m");
                check_close(opt.exp_avg_sq(k)->to_host(), ref.v[k], 1e-14, 1e-18,
                            std::string(c.name) + ": v");
                const auto dh = d[k].to_host();
                Vec applied(dh.size());
                for (std::size_t j = 0; j < dh.size(); ++j)
                    applied[j] = before[k][j] - c.o.lr * dh[j];
                check_close(got[k], applied, 1e-14, 1e-15,
                            std::string(c.name) + ": θ − lr·direction");
            }
        }
        CHECK(opt.step_count() == 3);
    }
    // Hand-computed first step: m̂ = g, v̂ = g², so θ moves by lr·g/(|g| + ε) ≈ lr·sign(g).
    optim::Adam<double, B> a({.lr = 0.1});
    std::vector<TensorD<B>> p{TensorD<B>::from_host(Shape{2}, Vec{1.0, 1.0})};
    a.step(p, std::vector<TensorD<B>>{TensorD<B>::from_host(Shape{2}, Vec{0.5, -2.0})});
    const auto h = p[0].to_host();
    CHECK(h[0] == doctest::Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
    CHECK(h[1] == doctest::Approx(1.0 + 0.1 * 2.0 / (2.0 + 1e-8)).epsilon(1e-15));
}

// ==== schedule ===================================================================================

TEST_CASE("optim: PiecewiseConstant boundaries and validation") {
    const optim::PiecewiseConstant s(0.1, {3, 6});
    CHECK(s.lr(0) == 0.1);
    CHECK(s.lr(2) == 0.1);
    CHECK(s.lr(3) == 0.1 * 0.1);  // the decay takes effect at its step
    CHECK(s.lr(5) == 0.1 * 0.1);
    CHECK(s.lr(6) == 0.1 * 0.1 * 0.1);
    CHECK(s(1000000) == 0.1 * 0.1 * 0.1);
    CHECK(s.values().size() == 3);

    const optim::PiecewiseConstant half(1.0, {10}, 0.5);
    CHECK(half.lr(9) == 1.0);
    CHECK(half.lr(10) == 0.5);

    const auto explicit_values = optim::PiecewiseConstant::from_values({2, 4}, {1.0, 0.3, 0.02});
    CHECK(explicit_values.lr(0) == 1.0);
    CHECK(explicit_values.lr(1) == 1.0);
    CHECK(explicit_values.lr(2) == 0.3);
    CHECK(explicit_values.lr(3) == 0.3);
    CHECK(explicit_values.lr(4) == 0.02);

    const optim::PiecewiseConstant constant(0.05, {});
    CHECK(constant.lr(123) == 0.05);

    using P = optim::PiecewiseConstant;
    check_throws_mentioning<ValueError>(
        [] {
            P(0.1, {6, 3});
        },
        {"increasing", "6", "3"}, "unsorted");
    check_throws_mentioning<ValueError>([] { P(0.1, {3, 3}); }, {"increasing"}, "duplicate");
    check_throws_mentioning<ValueError>([] { P(0.1, {0, 3}); }, {"> 0"}, "zero step");
    check_throws_mentioning<ValueError>([] { P(0.1, {-2}); }, {"> 0"}, "negative step");
    check_throws_mentioning<ValueError>([] { P(-0.1, {3}); }, {"base_lr"}, "negative lr");
    check_throws_mentioning<ValueError>([] { P(0.1, {3}, 0.0); }, {"factor"}, "zero factor");
    check_throws_mentioning<ValueError>([] { P(0.1, {3}, std::nan("")); }, {"factor"},
                                        "NaN factor");
    check_throws_mentioning<ValueError>([] { (void)P::from_values({3}, {0.1}); },
                                        {"1 boundaries need 2 values"}, "value count");
    check_throws_mentioning<ValueError>(
        [] {
            (void)P::from_values({3}, {0.1, -1.0});
        },
        {"values[1]"}, "negative value");
    check_throws_mentioning<ValueError>([&] { (void)s.lr(-1); }, {"negative step"},
                                        "negative query");
}

// ==== checkpoints ================================================================================

TEST_CASE_TEMPLATE(
    "checkpoint: a trained ResNet with BatchNorm and SGD momentum round-trips bit for bit", B,
    L2RW_BACKENDS) {
    TempDir dir;
    const auto path = dir / "resnet.l2rw";
    auto model = nn::resnet_cifar<double, B>(8, 10, 11);
    optim::SGD<double, B> opt({.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
    const auto init = snapshot(*model);
    train_resnet(*model, opt, 2, 1000);
    // Training moved the BatchNorm running statistics away from their initial 0 / 1.
    const auto trained = snapshot(*model);
    bool stats_moved = false;
    for (std::size_t i = 0; i < trained.size(); ++i)
        if (trained[i].first.find("running_") != std::string::npos &&
            trained[i].second != init[i].second)
            stats_moved = true;
    REQUIRE(stats_moved);

    io::save_checkpoint(path, *model, opt);
    // Nothing but the checkpoint is left in the directory (no temporary file).
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir.path))
        files.push_back(e.path().filename().string());
    CHECK(files == std::vector<std::string>{"resnet.l2rw"});

    auto other = nn::resnet_cifar<double, B>(8, 10, 99);  // different initial weights
    optim::SGD<double, B> other_opt({.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
    REQUIRE_FALSE(same_snapshot(snapshot(*other), trained));
    io::load_checkpoint(path, *other, other_opt);
    CHECK(same_snapshot(snapshot(*other), trained));
    CHECK(other_opt.step_count() == 2);
    REQUIRE(other_opt.num_params() == opt.num_params());
    const auto sa = sgd_state<B>(opt), sb = sgd_state<B>(other_opt);
    for (std::size_t i = 0; i < sa.size(); ++i)
        CHECK_MESSAGE(bitwise_equal(sa[i], sb[i]), "momentum buffer " << i);

    // Continuing from the loaded checkpoint is the same as continuing the original.
    train_resnet(*model, opt, 1, 2000);
    train_resnet(*other, other_opt, 1, 2000);
    CHECK(same_snapshot(snapshot(*other), snapshot(*model)));

    // Overwriting an existing checkpoint works, and a weights-only load ignores the optimizer.
    io::save_checkpoint(path, *model, opt);
    auto third = nn::resnet_cifar<double, B>(8, 10, 5);
    io::load_checkpoint(path, *third);
    CHECK(same_snapshot(snapshot(*third), snapshot(*model)));
}

TEST_CASE_TEMPLATE("checkpoint: Adam state and float models round-trip", B, L2RW_BACKENDS) {
    TempDir dir;
    auto model = nn::mlp<double, B>({4, 8, 3}, 2);
    optim::Adam<double, B> adam({.lr = 0.01, .weight_decay = 1e-3});
    train_mlp(*model, adam, 3, 40);
    io::save_checkpoint(dir / "adam.l2rw", *model, adam);
    auto other = nn::mlp<double, B>({4, 8, 3}, 3);
    optim::Adam<double, B> other_adam({.lr = 0.01, .weight_decay = 1e-3});
    io::load_checkpoint(dir / "adam.l2rw", *other, other_adam);
    CHECK(same_snapshot(snapshot(*other), snapshot(*model)));
    CHECK(other_adam.step_count() == 3);
    for (std::size_t i = 0; i < adam.num_params(); ++i) {
        CHECK(bitwise_equal(other_adam.exp_avg(i)->to_host(), adam.exp_avg(i)->to_host()));
        CHECK(bitwise_equal(other_adam.exp_avg_sq(i)->to_host(), adam.exp_avg_sq(i)->to_host()));
    }
    train_mlp(*model, adam, 1, 90);
    train_mlp(*other, other_adam, 1, 90);
    CHECK(same_snapshot(snapshot(*other), snapshot(*model)));

    auto fm = nn::mlp<float, B>({4, 5, 2}, 4);
    io::save_checkpoint(dir / "float.l2rw", *fm);
    auto fm2 = nn::mlp<float, B>({4, 5, 2}, 5);
    io::load_checkpoint(dir / "float.l2rw", *fm2);
    CHECK(same_snapshot(snapshot(*fm2), snapshot(*fm)));
}

#if L2RW_TEST_HAS_THRUST
TEST_CASE("checkpoint: files move between the Cpu and Thrust backends bit for bit") {
    using TB = Thrust<L2RW_TEST_THRUST_SYSTEM>;
    TempDir dir;
    auto cpu = nn::resnet_cifar<double, Cpu>(8, 10, 11);
    optim::SGD<double, Cpu> cpu_opt({.lr = 0.05, .momentum = 0.9});
    train_resnet(*cpu, cpu_opt, 2, 1000);
    io::save_checkpoint(dir / "cpu.l2rw", *cpu, cpu_opt);

    auto dev = nn::resnet_cifar<double, TB>(8, 10, 12);
    optim::SGD<double, TB> dev_opt({.lr = 0.05, .momentum = 0.9});
    io::load_checkpoint(dir / "cpu.l2rw", *dev, dev_opt);
    CHECK(same_snapshot(snapshot(*dev), snapshot(*cpu)));
    CHECK(sgd_state<TB>(dev_opt) == sgd_state<Cpu>(cpu_opt));
    CHECK(dev_opt.step_count() == 2);

    // And back: train on Thrust, load into a Cpu model.
    train_resnet(*dev, dev_opt, 1, 3000);
    io::save_checkpoint(dir / "dev.l2rw", *dev, dev_opt);
    auto cpu2 = nn::resnet_cifar<double, Cpu>(8, 10, 13);
    optim::SGD<double, Cpu> cpu2_opt({.lr = 0.05, .momentum = 0.9});
    io::load_checkpoint(dir / "dev.l2rw", *cpu2, cpu2_opt);
    CHECK(same_snapshot(snapshot(*cpu2), snapshot(*dev)));
    CHECK(sgd_state<Cpu>(cpu2_opt) == sgd_state<TB>(dev_opt));
    CHECK(cpu2_opt.step_count() == 3);
}
#endif

TEST_CASE_TEMPLATE(
    "checkpoint: bad files throw CheckpointError and leave model and optimizer unchanged", B,
    L2RW_BACKENDS) {
    TempDir dir;
    const auto good = dir / "good.l2rw";
    auto source = nn::mlp<double, B>({4, 8, 3}, 21);
    optim::SGD<double, B> source_opt({.lr = 0.1, .momentum = 0.9});
    train_mlp(*source, source_opt, 2, 7);
    io::save_checkpoint(good, *source, source_opt);
    const auto bytes = read_bytes(good);
    REQUIRE(bytes.size() > 600);

    // The target has optimizer state of its own, so "unchanged" means something.
    auto target = nn::mlp<double, B>({4, 8, 3}, 22);
    optim::SGD<double, B> target_opt({.lr = 0.1, .momentum = 0.9});
    train_mlp(*target, target_opt, 1, 8);
    const auto model_before = snapshot(*target);
    const auto opt_before = sgd_state<B>(target_opt);
    const auto step_before = target_opt.step_count();
    auto unchanged = [&](const std::string& what) {
        CHECK_MESSAGE(same_snapshot(snapshot(*target), model_before),
                      what << ": the model changed");
        CHECK_MESSAGE(sgd_state<B>(target_opt) == opt_before,
                      what << ": the optimizer state changed");
        CHECK_MESSAGE(target_opt.step_count() == step_before, what << ": the step count changed");
    };
    auto expect = [&](const std::filesystem::path& p, std::initializer_list<std::string_view> parts,
                      const std::string& what) {
        check_throws_mentioning<CheckpointError>(
            [&] { io::load_checkpoint(p, *target, target_opt); }, parts, what);
        unchanged(what);
        check_throws_mentioning<CheckpointError>([&] { io::load_checkpoint(p, *target); }, parts,
                                                 what + " (weights only)");
        unchanged(what + " (weights only)");
    };

    SUBCASE("a flipped byte: CRC mismatch") {
        for (std::size_t at :
             {bytes.size() / 2, bytes.size() / 3, std::size_t{40}, bytes.size() - 2}) {
            auto b = bytes;
            b[at] = static_cast<char>(b[at] ^ 0x5A);
            const auto p = dir / "flipped.l2rw";
            write_bytes(p, b);
            expect(p, {p.string(), "CRC mismatch"}, "flipped byte " + std::to_string(at));
        }
    }
    SUBCASE("truncated files") {
        for (std::size_t n :
             {std::size_t{0}, std::size_t{5}, std::size_t{12}, std::size_t{20}, std::size_t{30},
              bytes.size() / 2, bytes.size() - 5, bytes.size() - 1}) {
            const auto p = dir / "truncated.l2rw";
            write_bytes(p, std::vector<char>(bytes.begin(),
                                             bytes.begin() + static_cast<std::ptrdiff_t>(n)));
            expect(p, {p.string(), "truncated at byte " + std::to_string(n)},
                   "truncated to " + std::to_string(n));
        }
        // In the middle of an entry, the message names the entry.
        const auto p = dir / "truncated.l2rw";
        write_bytes(p, std::vector<char>(bytes.begin(), bytes.begin() + 200));
        expect(p, {"truncated at byte 200 while reading", "entry '0.weight'"},
               "truncated in 0.weight");
    }
    SUBCASE("not a checkpoint") {
        auto b = bytes;
        b[0] = 'X';
        const auto p = dir / "magic.l2rw";
        write_bytes(p, b);
        expect(p, {p.string(), "not an l2rw checkpoint (bad magic)"}, "bad magic");
        write_bytes(p,
                    std::vector<char>{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
        expect(p, {"bad magic"}, "a text file");
        expect(dir / "missing.l2rw", {"missing.l2rw", "cannot open"}, "a missing file");
    }
    SUBCASE("another format version or scalar type") {
        auto b = bytes;
        b[8] = 9;
        const auto p = dir / "version.l2rw";
        write_bytes(p, b);
        expect(p, {"format version 9", "versions 1 to 2"}, "version");
        auto fm = nn::mlp<float, B>({4, 8, 3}, 1);
        const auto fbefore = snapshot(*fm);
        check_throws_mentioning<CheckpointError>([&] { io::load_checkpoint(good, *fm); },
                                                 {"float64", "float32"},
                                                 "double file into a float model");
        CHECK(same_snapshot(snapshot(*fm), fbefore));
    }
    SUBCASE("another architecture") {
        auto wider = nn::mlp<double, B>({4, 9, 3}, 23);
        const auto wbefore = snapshot(*wider);
        check_throws_mentioning<CheckpointError>(
            [&] { io::load_checkpoint(good, *wider); },
            {good.string(),
             "parameter '0.weight' has shape [8, 4] in the file but [9, 4] in the model"},
            "4-8-3 into 4-9-3");
        CHECK(same_snapshot(snapshot(*wider), wbefore));
        auto deeper = nn::mlp<double, B>({4, 8, 8, 3}, 24);
        const auto dbefore = snapshot(*deeper);
        check_throws_mentioning<CheckpointError>(
            [&] { io::load_checkpoint(good, *deeper); },
            {"'2.weight'", "[3, 8] in the file", "[8, 8] in the model"}, "4-8-3 into 4-8-8-3");
        CHECK(same_snapshot(snapshot(*deeper), dbefore));
        auto longer = nn::mlp<double, B>({4, 8, 3, 3}, 26);
        check_throws_mentioning<CheckpointError>(
            [&] { io::load_checkpoint(good, *longer); },
            {"the model's parameter '4.weight' is not in the file"}, "4-8-3 into 4-8-3-3");
        auto shallower = nn::mlp<double, B>({4, 3}, 25);
        check_throws_mentioning<CheckpointError>([&] { io::load_checkpoint(good, *shallower); },
                                                 {"'0.weight'", "[8, 4]", "[3, 4]"},
                                                 "4-8-3 into 4-3");
        Rng rng(1);
        auto first = std::make_shared<nn::Sequential<double, B>>();
        first->template emplace<nn::Linear<double, B>>(4, 8, rng);
        check_throws_mentioning<CheckpointError>(
            [&] { io::load_checkpoint(good, *first); },
            {"the file has parameter '2.", "which the model does not have"},
            "a file with more tensors than the model");
    }
    SUBCASE("optimizer mismatches") {
        optim::Adam<double, B> adam({.lr = 0.1});
        check_throws_mentioning<CheckpointError>([&] { io::load_checkpoint(good, *target, adam); },
                                                 {"holds SGD state", "Adam"}, "SGD file into Adam");
        unchanged("SGD file into Adam");
        io::save_checkpoint(dir / "weights.l2rw", *source);
        check_throws_mentioning<CheckpointError>(
            [&] { io::load_checkpoint(dir / "weights.l2rw", *target, target_opt); },
            {"no optimizer state"}, "weights-only file with an optimizer");
        unchanged("weights-only file with an optimizer");
    }
}

TEST_CASE("checkpoint: saving is atomic and reports unwritable destinations") {
    TempDir dir;
    auto model = nn::mlp<double, Cpu>({4, 8, 3}, 1);
    // A path under a regular file cannot be created (even by root).
    write_bytes(dir / "afile", {'x'});
    check_throws_mentioning<CheckpointError>(
        [&] { io::save_checkpoint(dir / "afile" / "m.l2rw", *model); }, {"afile", "cannot create"},
        "parent is a file");
    check_throws_mentioning<CheckpointError>(
        [&] { io::save_checkpoint(dir / "no" / "such" / "dir" / "m.l2rw", *model); },
        {"cannot create"}, "missing directory");
    // Renaming over a directory fails after the temporary file was written: it is removed.
    std::filesystem::create_directory(dir / "adir");
    std::filesystem::create_directory(dir / "adir" / "keep");
    check_throws_mentioning<CheckpointError>([&] { io::save_checkpoint(dir / "adir", *model); },
                                             {"cannot rename"}, "rename over a directory");
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir.path))
        files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    CHECK(files == std::vector<std::string>{"adir", "afile"});
    // A successful save leaves only the file.
    io::save_checkpoint(dir / "m.l2rw", *model);
    files.clear();
    for (const auto& e : std::filesystem::directory_iterator(dir.path))
        files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    CHECK(files == std::vector<std::string>{"adir", "afile", "m.l2rw"});
}
