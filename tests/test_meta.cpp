// tests/test_meta.cpp — OnlineReweighter: the three strategies agree, the general one matches a
// finite difference of a real lookahead step, normalisation, and the weights' behaviour on
// noisy and imbalanced problems.
#include <algorithm>
#include <cmath>
#include <l2rw/meta.hpp>
#include <limits>
#include <numeric>

#include "testing.hpp"

using namespace l2rw;
using l2rw::testing::check_close;

namespace {

template <Backend B>
using Model = nn::Sequential<double, B>;

enum class Arch { mlp, lenet, resnet };

template <Backend B>
std::shared_ptr<Model<B>> make_model(Arch a, std::uint64_t seed) {
    switch (a) {
        case Arch::mlp:
            return nn::mlp<double, B>({6, 8, 3}, seed);
        case Arch::lenet:
            return nn::lenet<double, B>({1, 12, 3}, seed);
        case Arch::resnet:
            return nn::resnet_cifar<double, B>(8, 3, seed);
    }
    return nullptr;
}

template <Backend B>
meta::Batch<double, B> make_batch(Arch a, index_t n, std::uint64_t seed) {
    meta::Batch<double, B> b;
    b.x = a == Arch::mlp     ? Tensor<double, B>::randn({n, 6}, seed)
          : a == Arch::lenet ? Tensor<double, B>::randn({n, 1, 12, 12}, seed)
                             : Tensor<double, B>::randn({n, 3, 8, 8}, seed);
    std::vector<index_t> y(static_cast<std::size_t>(n));
    Rng rng(seed + 1000);
    for (auto& v : y) v = static_cast<index_t>(rng.below(3));
    b.y = IndexTensor<B>::from_host({n}, y);
    return b;
}

/// L_v(θ'(ε)) for a given ε, by a real lookahead step: g = ∇_θ Σ ε_i f_i, θ' = lookahead(θ, g).
template <Backend B>
double lookahead_validation_loss(Model<B>& m, const meta::Batch<double, B>& tr,
                                 const meta::Batch<double, B>& va,
                                 const meta::Lookahead<double, B>& la,
                                 const std::vector<double>& eps) {
    Tape<double, B> tape;
    auto bind = nn::ParamBinding<double, B>::leaves(m, tape);
    nn::Context<double, B> ctx{nn::Mode::meta, &bind, nullptr};
    auto f = meta::default_loss(m.forward(Var<double, B>(tr.x), ctx), tr.y);
    auto e = Var<double, B>(Tensor<double, B>::from_host({static_cast<index_t>(eps.size())}, eps));
    auto g = grad(sum(f * e), bind.vars(), GradOptions{.allow_unused = true});
    std::vector<Var<double, B>> theta1;
    {
        NoGradGuard ng;
        theta1 = la.apply(bind.vars(), g);
    }
    auto bind1 = bind.substitute(theta1);
    nn::Context<double, B> vctx{nn::Mode::meta, &bind1, nullptr};
    return mean(meta::default_loss(m.forward(Var<double, B>(va.x), vctx), va.y)).item();
}

/// Optimizer-like state for the lookaheads: momentum buffers and Adam moments, seeded.
template <Backend B>
std::vector<Tensor<double, B>> state_like(Model<B>& m, std::uint64_t seed, double scale,
                                          bool positive) {
    std::vector<Tensor<double, B>> out;
    std::uint64_t k = 0;
    for (auto& [name, t] : nn::named_parameters(m)) {
        auto h = Tensor<double, B>::randn(t->shape(), seed + k++).to_host();
        for (auto& v : h) v = positive ? scale * (v * v + 0.1) : scale * v;
        out.push_back(Tensor<double, B>::from_host(t->shape(), h));
    }
    return out;
}

/// The next step of an SGD with momentum 0.9 (Nesterov or not) and weight decay whose
/// momentum buffers hold seeded values, as a lookahead.
template <Backend B>
meta::Lookahead<double, B> momentum_wd(Model<B>& m, bool nesterov) {
    optim::SGD<double, B> opt(
        {.lr = 0.05, .momentum = 0.9, .nesterov = nesterov, .weight_decay = 5e-3});
    const auto buffers = state_like<B>(m, 77, 0.1, false);
    for (std::size_t i = 0; i < buffers.size(); ++i) opt.set_momentum_buffer(i, buffers[i]);
    return meta::lookahead_from(opt, optim::ParamList<double, B>(nn::named_parameters(m)));
}

/// The fourth step of an Adam whose moments hold seeded values, as a lookahead.
template <Backend B>
meta::Lookahead<double, B> adam(Model<B>& m) {
    optim::Adam<double, B> opt({.lr = 1e-2, .weight_decay = 1e-3});
    const auto mm = state_like<B>(m, 91, 0.05, false), vv = state_like<B>(m, 93, 0.01, true);
    for (std::size_t i = 0; i < mm.size(); ++i) opt.set_moments(i, mm[i], vv[i]);
    opt.set_step_count(3);
    return meta::lookahead_from(opt, optim::ParamList<double, B>(nn::named_parameters(m)));
}

}  // namespace

// The exact strategy (forward mode: one training pass carrying ∇L_v as tangents) and the
// double-backward one against the general strategy, with BatchNorm (the ResNet) in meta
// mode and in train mode (batch statistics couple the examples in both).
// broken: the BatchNorm JVP kernel without its −x̂·mean(ẋ·x̂) term -> "exact vs general:
//   worst element 1: got -0.628, want -0.586" for the ResNet (BatchNorm's op checks failed too).
TEST_CASE_TEMPLATE("meta: exact, double-backward and general strategies agree", B, L2RW_BACKENDS) {
    for (Arch a : {Arch::mlp, Arch::lenet, Arch::resnet}) {
        for (nn::Mode mode : {nn::Mode::meta, nn::Mode::train}) {
            CAPTURE(static_cast<int>(a));
            CAPTURE(static_cast<int>(mode));
            auto m = make_model<B>(a, 5);
            auto tr = make_batch<B>(a, 6, 21), va = make_batch<B>(a, 4, 22);
            meta::ReweightOptions ro;
            ro.meta_mode = mode;
            meta::OnlineReweighter<Model<B>> rw(*m, ro);
            for (int which = 0; which < 3; ++which) {
                CAPTURE(which);
                auto la = which == 0 ? meta::Lookahead<double, B>::sgd(0.1)
                                     : momentum_wd<B>(*m, which == 2);
                auto ua = rw.meta_gradient(tr, va, la, meta::Strategy::general);
                CHECK(testing::max_abs(ua) > 1e-6);  // a check of zeros proves nothing
                check_close(rw.meta_gradient(tr, va, la, meta::Strategy::exact), ua, 1e-10, 1e-14,
                            "exact vs general");
                check_close(rw.meta_gradient(tr, va, la, meta::Strategy::double_backward), ua,
                            1e-10, 1e-14, "double_backward vs general");
            }
        }
    }
}

TEST_CASE_TEMPLATE("meta: the general strategy matches a finite difference of the real lookahead",
                   B, L2RW_BACKENDS) {
    auto m = make_model<B>(Arch::resnet, 8);
    auto tr = make_batch<B>(Arch::resnet, 5, 31), va = make_batch<B>(Arch::resnet, 4, 32);
    meta::OnlineReweighter<Model<B>> rw(*m);
    const std::vector<std::pair<const char*, meta::Lookahead<double, B>>> cases = {
        {"plain SGD", meta::Lookahead<double, B>::sgd(0.1)},
        {"momentum + weight decay", momentum_wd<B>(*m, false)},
        {"Nesterov + weight decay", momentum_wd<B>(*m, true)},
        {"Adam", adam<B>(*m)},
    };
    for (const auto& [name, la] : cases) {
        CAPTURE(name);
        auto u = rw.meta_gradient(tr, va, la, meta::Strategy::general);
        const double h = 1e-5;
        std::vector<double> fd(u.size());
        for (std::size_t i = 0; i < u.size(); ++i) {
            std::vector<double> ep(u.size(), 0.0), em(u.size(), 0.0);
            ep[i] = h;
            em[i] = -h;
            fd[i] = -(lookahead_validation_loss<B>(*m, tr, va, la, ep) -
                      lookahead_validation_loss<B>(*m, tr, va, la, em)) /
                    (2 * h);
        }
        CHECK(testing::max_abs(fd) > 1e-6);
        check_close(u, fd, 1e-6, 1e-9, name);
        if (la.affine()) {
            check_close(rw.meta_gradient(tr, va, la, meta::Strategy::exact), u, 1e-10, 1e-14, name);
            check_close(rw.meta_gradient(tr, va, la, meta::Strategy::double_backward), u, 1e-10,
                        1e-14, name);
            CHECK(rw.resolve(la) == meta::Strategy::exact);
        } else {
            CHECK(rw.resolve(la) == meta::Strategy::general);
            rw.options().strategy = meta::Strategy::exact;
            CHECK_THROWS_AS(rw.weights(tr, va, la), ValueError);
            rw.options().strategy = meta::Strategy::double_backward;
            CHECK_THROWS_AS(rw.weights(tr, va, la), ValueError);
            rw.options().strategy = meta::Strategy::automatic;
            CHECK(rw.weights(tr, va, la).strategy == meta::Strategy::general);
        }
    }
}

TEST_CASE_TEMPLATE("meta: weights are normalised, or all zero and the batch skipped", B,
                   L2RW_BACKENDS) {
    auto m = make_model<B>(Arch::mlp, 3);
    // Seeds with 4 positive and 4 negative u (41, 42 gave one positive: w = 1, trivially).
    auto tr = make_batch<B>(Arch::mlp, 8, 47), va = make_batch<B>(Arch::mlp, 5, 48);
    meta::OnlineReweighter<Model<B>> rw(*m);
    auto r = rw.weights(tr, va);
    REQUIRE(r.weights.size() == 8);
    // u by another strategy (general: the real lookahead differentiated), so that the weights
    // are checked against Eq. 9 of an independent u rather than of the report's own raw.
    const auto u =
        rw.meta_gradient(tr, va, meta::Lookahead<double, B>::sgd(1.0), meta::Strategy::general);
    check_close(r.raw, u, 1e-10, 1e-14, "raw vs general");
    // This batch has examples on both sides of 0, so clipping and normalising are both seen.
    REQUIRE(std::count_if(u.begin(), u.end(), [](double v) { return v > 0; }) >= 2);
    REQUIRE(std::count_if(u.begin(), u.end(), [](double v) { return v < 0; }) >= 1);
    REQUIRE_FALSE(r.skipped);
    double pos = 0;
    for (double v : u) pos += std::max(v, 0.0);
    index_t zeros = 0;
    for (std::size_t i = 0; i < r.weights.size(); ++i) {
        CHECK(r.weights[i] == doctest::Approx(std::max(u[i], 0.0) / pos).epsilon(1e-9));
        zeros += u[i] <= 0.0;
    }
    CHECK(std::accumulate(r.weights.begin(), r.weights.end(), 0.0) ==
          doctest::Approx(1.0).epsilon(1e-12));
    CHECK(r.zero_count == zeros);
    CHECK(std::isfinite(r.validation_loss));

    // The training batch is one example repeated, validated against a different label.
    meta::Batch<double, B> one{
        Tensor<double, B>::randn({1, 6}, 5), IndexTensor<B>::from_host({1}, {0}), {}};
    meta::Batch<double, B> other{one.x, IndexTensor<B>::from_host({1}, {1}), {}};
    auto r2 = rw.weights(one, other);
    CHECK(r2.raw[0] < 0.0);
    CHECK(r2.skipped);
    CHECK(r2.weights[0] == 0.0);
    CHECK(r2.zero_count == 1);

    // Without normalisation the weights are max(u, 0) as is.
    rw.options().normalize = false;
    auto r3 = rw.weights(tr, va);
    for (std::size_t i = 0; i < r3.weights.size(); ++i)
        CHECK(r3.weights[i] == std::max(r3.raw[i], 0.0));
}

// Issue 11, item 8: the normaliser Σ max(u, 0) was summed in float, so at a huge learning
// rate it overflowed to inf, every weight became w/inf = 0, and the step was still reported
// as not skipped. It is summed in double now (meta/weighting.hpp, finish_report).
// broken: the sum taken in T again -> every weight 0 (weights[0] 0 instead of 1/64, "the
//   weights sum to 1": 0, zero_count 64) and the batch reported skipped.
TEST_CASE("meta: the weight normaliser does not overflow in float at a huge learning rate") {
    using Tf = Tensor<float, Cpu>;
    auto m = nn::mlp<float, Cpu>({6, 8, 3}, 2);
    // 64 copies of one example, validated against itself: 64 equal, positive raw weights.
    const auto x1 = Tf::randn({1, 6}, 3).to_host();
    std::vector<float> xs;
    for (int k = 0; k < 64; ++k) xs.insert(xs.end(), x1.begin(), x1.end());
    const meta::Batch<float, Cpu> tr{
        Tf::from_host({64, 6}, xs), IndexTensor<Cpu>::from_host({64}, std::vector<index_t>(64, 0))};
    const meta::Batch<float, Cpu> va{Tf::from_host({1, 6}, x1),
                                     IndexTensor<Cpu>::from_host({1}, {0})};
    meta::OnlineReweighter<nn::Sequential<float, Cpu>> rw(*m);
    // Plain SGD: θ'₀ = θ at any rate, so u is linear in the rate.
    const auto u1 =
        rw.meta_gradient(tr, va, meta::Lookahead<float, Cpu>::sgd(1.0f), meta::Strategy::exact);
    REQUIRE(u1[0] > 0);
    const float lr = 1e37f / u1[0];
    const auto r = rw.weights(tr, va, meta::Lookahead<float, Cpu>::sgd(lr));
    REQUIRE(std::isfinite(r.raw[0]));
    CHECK(64.0 * r.raw[0] > static_cast<double>(std::numeric_limits<float>::max()));
    CHECK_FALSE(r.skipped);
    CHECK_MESSAGE(std::accumulate(r.weights.begin(), r.weights.end(), 0.0) ==
                      doctest::Approx(1.0).epsilon(1e-5),
                  "the weights sum to 1");
    CHECK(r.weights[0] == doctest::Approx(1.0 / 64).epsilon(1e-5));
    CHECK(r.zero_count == 0);
}

TEST_CASE("meta: bad batches are rejected with messages that name them") {
    auto m = nn::mlp<double, Cpu>({6, 8, 3}, 1);
    meta::OnlineReweighter<nn::Sequential<double, Cpu>> rw(*m);
    meta::Batch<double, Cpu> tr{
        Tensor<double, Cpu>::randn({4, 6}, 1), IndexTensor<Cpu>::from_host({3}, {0, 1, 2}), {}};
    meta::Batch<double, Cpu> va{
        Tensor<double, Cpu>::randn({2, 6}, 2), IndexTensor<Cpu>::from_host({2}, {0, 1}), {}};
    testing::check_throws_mentioning<ShapeError>([&] { rw.weights(tr, va); },
                                                 {"training", "[4, 6]", "[3]"}, "label count");
    tr.y = IndexTensor<Cpu>::from_host({4}, {0, 1, 2, 7});
    testing::check_throws_mentioning<ValueError>([&] { rw.weights(tr, va); }, {"label", "7"},
                                                 "label range");
    tr.y = IndexTensor<Cpu>::from_host({4}, {0, 1, 2, 0});
    tr.noisy = {true};
    testing::check_throws_mentioning<ShapeError>([&] { rw.weights(tr, va); }, {"noise flags"},
                                                 "flags");
    // meta_gradient() runs the same checks (it returned an empty u for an empty batch).
    // broken: meta_gradient without check_batches -> "empty batch: no exception thrown".
    const meta::Batch<double, Cpu> empty{Tensor<double, Cpu>::zeros({0, 6}),
                                         IndexTensor<Cpu>::from_host({0}, std::vector<index_t>{})};
    testing::check_throws_mentioning<ShapeError>(
        [&] {
            (void)rw.meta_gradient(empty, va, meta::Lookahead<double, Cpu>::sgd(0.1),
                                   meta::Strategy::exact);
        },
        {"OnlineReweighter", "training", "N > 0"}, "empty batch");
}

namespace {

/// A two-class problem in 10 dimensions: class means ±μ along a random direction.
struct Problem {
    std::vector<double> x;
    std::vector<index_t> y, clean_y;
    std::vector<bool> noisy;
};
Problem two_blobs(index_t n, double p_major, double flip, std::uint64_t seed) {
    Rng rng(seed);
    Problem p;
    const int d = 10;
    for (index_t i = 0; i < n; ++i) {
        const index_t c = rng.uniform() < p_major ? 0 : 1;
        for (int k = 0; k < d; ++k) p.x.push_back(rng.normal() + (k < 3 ? (c ? 1.2 : -1.2) : 0.0));
        p.clean_y.push_back(c);
        const bool f = rng.uniform() < flip;
        p.y.push_back(f ? 1 - c : c);
        p.noisy.push_back(f);
    }
    return p;
}

template <Backend B>
meta::Batch<double, B> slice(const Problem& p, index_t from, index_t n, bool clean) {
    std::vector<double> x(p.x.begin() + from * 10, p.x.begin() + (from + n) * 10);
    std::vector<index_t> y(n);
    std::vector<bool> fl(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
        y[static_cast<std::size_t>(i)] = clean ? p.clean_y[static_cast<std::size_t>(from + i)]
                                               : p.y[static_cast<std::size_t>(from + i)];
        fl[static_cast<std::size_t>(i)] = !clean && p.noisy[static_cast<std::size_t>(from + i)];
    }
    return {Tensor<double, B>::from_host({n, 10}, x), IndexTensor<B>::from_host({n}, y), fl};
}

/// One reweighted SGD step with learning rate lr.
template <Backend B>
meta::StepReport<double> train_step(Model<B>& m, meta::OnlineReweighter<Model<B>>& rw,
                                    const meta::Batch<double, B>& tr,
                                    const meta::Batch<double, B>& va, double lr) {
    auto r = rw.weights(tr, va);
    if (r.skipped) return r;
    auto g = rw.weighted_gradient(tr, r.weights);
    auto params = nn::named_parameters(m);
    for (std::size_t k = 0; k < params.size(); ++k) {
        auto p = params[k].second->to_host();
        auto gk = g[k].to_host();
        for (std::size_t i = 0; i < p.size(); ++i) p[i] -= lr * gk[i];
        params[k].second->assign(Tensor<double, B>::from_host(params[k].second->shape(), p));
    }
    return r;
}

}  // namespace

TEST_CASE("meta: flipped labels get little weight after a warm-up (40% uniform flips)") {
    using B = Cpu;
    auto m = nn::mlp<double, B>({10, 16, 2}, 7);
    meta::OnlineReweighter<Model<B>> rw(*m);
    const auto data = two_blobs(4000, 0.5, 0.4, 11);
    const auto clean = two_blobs(20, 0.5, 0.0, 12);
    const auto va = slice<B>(clean, 0, 20, true);
    double w_noisy = 0, w_clean = 0;
    index_t n_noisy = 0, n_clean = 0;
    const index_t batch = 100, steps = 40;  // 4,000 examples: one pass
    for (index_t s = 0; s < steps; ++s) {
        auto tr = slice<B>(data, s * batch, batch, false);
        auto r = train_step<B>(*m, rw, tr, va, 0.1);
        if (s < 10) continue;  // warm-up
        for (index_t i = 0; i < batch; ++i) {
            if (tr.noisy[static_cast<std::size_t>(i)]) {
                w_noisy += r.weights[static_cast<std::size_t>(i)];
                ++n_noisy;
            } else {
                w_clean += r.weights[static_cast<std::size_t>(i)];
                ++n_clean;
            }
        }
        REQUIRE(r.noisy_mass.has_value());
    }
    const double mean_noisy = w_noisy / static_cast<double>(n_noisy),
                 mean_clean = w_clean / static_cast<double>(n_clean);
    MESSAGE("mean weight: flipped " << mean_noisy << ", clean " << mean_clean << " (ratio "
                                    << mean_noisy / mean_clean << ")");
    CHECK(mean_noisy < mean_clean / 3.0);
}

TEST_CASE("meta: the minority class of a 95:5 problem gets over 5% of the weight mass") {
    using B = Cpu;
    auto m = nn::mlp<double, B>({10, 16, 2}, 9);
    meta::OnlineReweighter<Model<B>> rw(*m);
    const auto data = two_blobs(4000, 0.95, 0.0, 21);
    const auto clean = two_blobs(20, 0.5, 0.0, 22);
    const auto va = slice<B>(clean, 0, 20, true);
    double mass_minor = 0, mass_all = 0;
    index_t n_minor = 0, n_all = 0;
    const index_t batch = 100, steps = 30;
    for (index_t s = 0; s < steps; ++s) {
        auto tr = slice<B>(data, s * batch, batch, true);
        auto r = train_step<B>(*m, rw, tr, va, 0.1);
        if (s < 5) continue;
        const auto y = tr.y.to_host();
        for (index_t i = 0; i < batch; ++i) {
            mass_all += r.weights[static_cast<std::size_t>(i)];
            ++n_all;
            if (y[static_cast<std::size_t>(i)] == 1) {
                mass_minor += r.weights[static_cast<std::size_t>(i)];
                ++n_minor;
            }
        }
    }
    const double share = mass_minor / mass_all;
    MESSAGE("minority: " << n_minor << " of " << n_all << " examples, " << 100 * share
                         << "% of the weight mass");
    // Uniform weights give the minority its share of the examples (5%); against a balanced
    // clean set l2rw moves the mass towards half (measured: 56.7%); uniform weights would
    // give exactly the example share, which the first CHECK bounds by 7%.
    CHECK(static_cast<double>(n_minor) / static_cast<double>(n_all) < 0.07);
    CHECK(share > 0.3);
}

TEST_CASE_TEMPLATE("meta: lookahead_from reproduces the optimizer's next step", B, L2RW_BACKENDS) {
    auto m = make_model<B>(Arch::mlp, 4);
    const optim::ParamList<double, B> params(nn::named_parameters(*m));
    auto random_grads = [&](std::uint64_t seed) {
        std::vector<Tensor<double, B>> g;
        for (std::size_t i = 0; i < params.size(); ++i)
            g.push_back(Tensor<double, B>::randn(params[i].shape(), seed + i));
        return g;
    };
    const std::vector<optim::SGDOptions> sgds = {
        {.lr = 0.1},
        {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2},
        {.lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-2},
        {.lr = 0.05, .momentum = 0.8, .weight_decay = 1e-3, .dampening = 0.3},
    };
    for (std::size_t c = 0; c < sgds.size(); ++c) {
        CAPTURE(c);
        optim::SGD<double, B> opt(sgds[c]);
        for (int s = 0; s < 3; ++s) {  // before any momentum buffer, and after
            const auto g = random_grads(100 * c + 10 * s);
            const auto la = meta::lookahead_from(opt, params);
            CHECK(la.affine());
            std::vector<Var<double, B>> th, gv;
            for (std::size_t i = 0; i < params.size(); ++i) {
                th.emplace_back(params[i].clone());
                gv.emplace_back(g[i]);
            }
            const auto predicted = la.apply(th, gv);
            opt.step(params, g);
            for (std::size_t i = 0; i < params.size(); ++i)
                check_close(params[i].to_host(), predicted[i].to_host(), 1e-13, 1e-15,
                            "SGD lookahead vs step");
        }
    }
    optim::Adam<double, B> adam_opt({.lr = 1e-2, .weight_decay = 1e-3});
    for (int s = 0; s < 3; ++s) {
        const auto g = random_grads(500 + 10 * s);
        const auto la = meta::lookahead_from(adam_opt, params);
        CHECK(!la.affine());
        std::vector<Var<double, B>> th, gv;
        for (std::size_t i = 0; i < params.size(); ++i) {
            th.emplace_back(params[i].clone());
            gv.emplace_back(g[i]);
        }
        const auto predicted = la.apply(th, gv);
        adam_opt.step(params, g);
        for (std::size_t i = 0; i < params.size(); ++i)
            check_close(params[i].to_host(), predicted[i].to_host(), 1e-12, 1e-14,
                        "Adam lookahead vs step");
    }
}

TEST_CASE_TEMPLATE("meta: step() takes the reweighted step with the user's optimizer", B,
                   L2RW_BACKENDS) {
    auto m = make_model<B>(Arch::resnet, 6);
    auto twin = make_model<B>(Arch::resnet, 6);
    auto tr = make_batch<B>(Arch::resnet, 6, 51), va = make_batch<B>(Arch::resnet, 4, 52);
    meta::OnlineReweighter<Model<B>> rw(*m), rw_twin(*twin);
    rw.options().lookahead = meta::LookaheadRule::optimizer;
    optim::SGD<double, B> opt({.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
    optim::SGD<double, B> opt_twin({.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
    for (int s = 0; s < 3; ++s) {
        auto r = rw.step(tr, va, opt);
        // The same by hand: the weights for the optimizer's lookahead, then its step.
        const optim::ParamList<double, B> tp(nn::named_parameters(*twin));
        auto r2 = rw_twin.weights(tr, va, meta::lookahead_from(opt_twin, tp));
        check_close(r.weights, r2.weights, 1e-12, 1e-15, "weights");
        if (!r2.skipped) opt_twin.step(tp, rw_twin.weighted_gradient(tr, r2.weights));
        CHECK(r.strategy == meta::Strategy::exact);
    }
    auto a = nn::named_tensors(*m), b = nn::named_tensors(*twin);
    for (std::size_t i = 0; i < a.size(); ++i)
        check_close(std::get<1>(a[i])->to_host(), std::get<1>(b[i])->to_host(), 1e-12, 1e-15,
                    std::get<0>(a[i]));
}

TEST_CASE_TEMPLATE(
    "meta: the fused step equals the two-pass step, and a skipped batch changes nothing", B,
    L2RW_BACKENDS) {
    auto fused = make_model<B>(Arch::resnet, 12);
    auto twopass = make_model<B>(Arch::resnet, 12);
    auto tr = make_batch<B>(Arch::resnet, 6, 61), va = make_batch<B>(Arch::resnet, 4, 62);
    meta::OnlineReweighter<Model<B>> a(*fused), b(*twopass);
    b.options().fused_step = false;
    optim::SGD<double, B> oa({.lr = 0.05, .momentum = 0.9}), ob({.lr = 0.05, .momentum = 0.9});
    for (int s = 0; s < 2; ++s) {
        auto ra = a.step(tr, va, oa), rb = b.step(tr, va, ob);
        check_close(ra.weights, rb.weights, 1e-12, 1e-15, "weights");
    }
    auto ta = nn::named_tensors(*fused), tb = nn::named_tensors(*twopass);
    for (std::size_t i = 0; i < ta.size(); ++i)
        check_close(std::get<1>(ta[i])->to_host(), std::get<1>(tb[i])->to_host(), 1e-12, 1e-15,
                    std::get<0>(ta[i]));

    // One example whose validation twin carries another label: its weight clips to zero.
    auto x = Tensor<double, B>::randn({1, 3, 8, 8}, 63);
    meta::Batch<double, B> one{x, IndexTensor<B>::from_host({1}, {0}), {}};
    meta::Batch<double, B> other{x, IndexTensor<B>::from_host({1}, {1}), {}};
    std::vector<std::vector<double>> before;
    for (auto& [name, t, kind] : nn::named_tensors(*fused)) before.push_back(t->to_host());
    auto r = a.step(one, other, oa);
    REQUIRE(r.skipped);
    std::size_t k = 0;
    for (auto& [name, t, kind] : nn::named_tensors(*fused)) {
        CAPTURE(name);
        CHECK(t->to_host() == before[k++]);  // parameters and running statistics, bitwise
    }
}
