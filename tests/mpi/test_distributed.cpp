// tests/mpi/test_distributed.cpp — data-parallel reweighting over MPI, run on 2 ranks: the
// collectives, the equivalence of P ranks × n/P examples with one process on n (weights and
// parameters to 1e-12 in double, ranks bitwise identical), for OnlineReweighter and
// meta::train, and that a rank that fails stops every rank with an error naming it.
#include <l2rw/l2rw.hpp>
#include <limits>
#include <string>
#include <vector>

#include "../testing.hpp"
#include "mpi_testing.hpp"

using namespace l2rw;
using l2rw::testing::on_every_rank;
using l2rw::testing::relative_difference;
using l2rw::testing::same_on_every_rank;
using l2rw::testing::world;

namespace {
using Vec = std::vector<double>;
using Model = nn::Sequential<double, Cpu>;
using Batch = meta::Batch<double, Cpu>;
using SGD = optim::SGD<double, Cpu>;

enum class Arch { mlp, lenet };

std::shared_ptr<Model> make_model(Arch a, std::uint64_t seed) {
    return a == Arch::mlp ? nn::mlp<double, Cpu>({6, 8, 3}, seed)
                          : nn::lenet<double, Cpu>({1, 12, 3}, seed);
}

/// The same n examples on every rank (seeded), for architecture a.
Batch make_batch(Arch a, index_t n, std::uint64_t seed) {
    Batch b;
    b.x = a == Arch::mlp ? Tensor<double, Cpu>::randn({n, 6}, seed)
                         : Tensor<double, Cpu>::randn({n, 1, 12, 12}, seed);
    b.y = testing::random_labels<Cpu>(n, 3, seed + 1);
    for (index_t i = 0; i < n; ++i) b.noisy.push_back(i % 3 == 0);
    return b;
}

/// This rank's part of a batch.
Batch own(const Batch& b) {
    const auto s = data::shard_of(b.size(), world().rank(), world().size());
    return data::slice(b, s.begin, s.end);
}

Vec parameters(Model& m) {
    Vec out;
    for (auto& [name, t, kind] : nn::named_tensors(m))
        for (double v : t->to_host()) out.push_back(v);
    return out;
}

template <class T>
Vec as_double(const std::vector<T>& v) {
    return Vec(v.begin(), v.end());
}

}  // namespace

TEST_CASE("dist: all-reduce sums in place, the same on every rank; agree passes a failure on") {
    const auto& c = world();
    REQUIRE(c.size() >= 2);
    std::vector<float> f(5);
    Vec d(7);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = 0.1f * static_cast<float>(i + c.rank());
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = 1.0 / static_cast<double>(i + c.rank() + 3);
    c.all_reduce_sum(f.data(), f.size());
    c.all_reduce_sum(d.data(), d.size());
    bool ok = true;
    for (std::size_t i = 0; i < d.size(); ++i) {
        double want = 0;
        for (int r = 0; r < c.size(); ++r) want += 1.0 / static_cast<double>(i + r + 3);
        ok = ok && std::abs(d[i] - want) <= 1e-15 * want;
    }
    CHECK(on_every_rank(ok));
    CHECK(same_on_every_rank(d));
    CHECK(same_on_every_rank(as_double(f)));

    // A rank that throws inside agree: every rank throws, naming it; the next collective works.
    bool named = false;
    try {
        dist::agree(c, 3, [&](std::span<double> out) {
            out[0] = 1;
            if (c.rank() == 1) throw NumericError("a deliberate fault");
        });
    } catch (const DistributedError& e) {
        const std::string m = e.what();
        named = e.failed_rank() == 1 && m.find("rank 1 of 2 failed") != std::string::npos &&
                m.find("NumericError: a deliberate fault") != std::string::npos;
    }
    CHECK(on_every_rank(named));
    const auto s = dist::agree(c, 1, [&](std::span<double> out) { out[0] = c.rank() + 1.0; });
    CHECK(on_every_rank(s[0] == 3.0));
}

TEST_CASE("dist: the all_reduce op's VJP, JVP and second order against differences") {
    // Rank r holds x_r (4 values) and L_r = Σ w_r ⊙ y³ with y = all_reduce(x); the global
    // objective is L = Σ_r L_r, and rank r's backward of L_r must give ∂L/∂x_r.
    const auto& c = world();
    const int P = c.size(), me = c.rank();
    const Vec x0 = {0.3 + 0.1 * me, -0.2, 0.5 * me - 0.1, 0.7};
    const Vec w = {1.0 + me, -0.5, 0.25 * (me + 1), 2.0};
    auto local_L = [&](const Var<double, Cpu>& x) {
        auto y = dist::all_reduce(x, c);
        return sum(Var<double, Cpu>(Tensor<double, Cpu>::from_host({4}, w)) * y * y * y);
    };
    auto global_L = [&](const Vec& x) {
        double L = local_L(Var<double, Cpu>(Tensor<double, Cpu>::from_host({4}, x))).item();
        c.all_reduce_host_sum(&L, 1);
        return L;
    };
    Tape<double, Cpu> tape;
    auto x = tape.leaf(Tensor<double, Cpu>::from_host({4}, x0));
    auto g = grad(local_L(x), x, GradOptions{.create_graph = true});
    const Vec v = {0.5, -1.0, 0.3, 0.8};  // this rank's direction for the Hessian
    auto hv = grad(sum(g * Var<double, Cpu>(Tensor<double, Cpu>::from_host({4}, v))), x);
    const auto gh = g.value().to_host(), hvh = hv.to_host();
    // Central differences, one rank's element at a time (every rank takes part in each).
    const double h = 1e-5;
    double worst_g = 0, worst_h = 0;
    for (int r = 0; r < P; ++r)
        for (std::size_t k = 0; k < 4; ++k) {
            Vec xp = x0, xm = x0;
            if (me == r) xp[k] += h, xm[k] -= h;
            const double fd = (global_L(xp) - global_L(xm)) / (2 * h);
            if (me == r) worst_g = std::max(worst_g, std::abs(fd - gh[k]) / (1 + std::abs(fd)));
        }
    // (H v)_r = Σ_r' ∂²L/∂x_r∂x_r' v_r': differences of ∂L/∂x_r along every rank's v at once.
    auto gradient_at = [&](double t) {
        Vec xt = x0;
        for (std::size_t k = 0; k < 4; ++k) xt[k] += t * v[k];
        Tape<double, Cpu> tp;
        auto xv = tp.leaf(Tensor<double, Cpu>::from_host({4}, xt));
        return grad(local_L(xv), xv).to_host();
    };
    const auto gp = gradient_at(h), gm = gradient_at(-h);
    // ⟨v, H v⟩ summed over ranks equals Σ_r ⟨v_r, (Hv)_r⟩: hv above is ∂⟨g, v⟩/∂x_r.
    for (std::size_t k = 0; k < 4; ++k) {
        const double fd = (gp[k] - gm[k]) / (2 * h);
        worst_h = std::max(worst_h, std::abs(fd - hvh[k]) / (1 + std::abs(fd)));
    }
    CHECK(on_every_rank(worst_g < 1e-8));
    CHECK(on_every_rank(worst_h < 1e-7));
    // JVP: the tangent of y = all_reduce(x) is the all-reduced tangent (the adjoint identity
    // ⟨J t, s⟩ = ⟨t, Jᵀ s⟩ summed over ranks, with Jᵀ the VJP).
    const Vec t = {0.1 * (me + 1), 0.2, -0.3, 0.4 * me};
    const Vec sv = {1.0, -2.0 * me, 0.5, 0.25};
    auto xd = make_dual(Var<double, Cpu>(Tensor<double, Cpu>::from_host({4}, x0)),
                        Var<double, Cpu>(Tensor<double, Cpu>::from_host({4}, t)));
    const auto jt = dist::all_reduce(xd, c).tangent().to_host();
    Tape<double, Cpu> tp;
    auto xl = tp.leaf(Tensor<double, Cpu>::from_host({4}, x0));
    const auto vj = vjp(dist::all_reduce(xl, c), {xl},
                        Var<double, Cpu>(Tensor<double, Cpu>::from_host({4}, sv)))[0]
                        .value()
                        .to_host();
    double lhs = 0, rhs = 0;
    bool jvp_ok = true;
    for (std::size_t k = 0; k < 4; ++k) {
        lhs += jt[k] * sv[k];
        rhs += t[k] * vj[k];
        double want = t[k];
        c.all_reduce_host_sum(&want, 1);
        jvp_ok = jvp_ok && std::abs(jt[k] - want) < 1e-15;
    }
    double sums[2] = {lhs, rhs};
    c.all_reduce_host_sum(sums, 2);
    CHECK(on_every_rank(jvp_ok));
    CHECK(on_every_rank(std::abs(sums[0] - sums[1]) < 1e-14));
}

TEST_CASE("dist: 2 ranks × 50 examples step as 1 process × 100 (MLP, LeNet; SGD momentum)") {
    const auto& c = world();
    struct Case {
        Arch arch;
        meta::Strategy strategy;
        bool fused;
    };
    for (const Case k : {Case{Arch::mlp, meta::Strategy::exact, true},
                         Case{Arch::lenet, meta::Strategy::exact, true},
                         Case{Arch::mlp, meta::Strategy::exact, false},
                         Case{Arch::lenet, meta::Strategy::double_backward, true}}) {
        CAPTURE(static_cast<int>(k.arch));
        const std::string strategy = meta::to_string(k.strategy);
        CAPTURE(strategy);
        CAPTURE(k.fused);
        auto one = make_model(k.arch, 7), many = make_model(k.arch, 7);
        SGD opt_one({.lr = 0.1, .momentum = 0.9}), opt_many({.lr = 0.1, .momentum = 0.9});
        meta::ReweightOptions ro;
        ro.strategy = k.strategy;
        ro.fused_step = k.fused;
        meta::OnlineReweighter<Model> rw_one(*one, ro);
        meta::OnlineReweighter<Model> rw_many(*many, ro, meta::default_loss<double, Cpu>, &c);
        double worst_w = 0, worst_lv = 0;
        bool same_skip = true;
        for (int step = 0; step < 10; ++step) {
            const auto tr = make_batch(k.arch, 100, 100 + step),
                       va = make_batch(k.arch, 20, 500 + step);
            const auto a = rw_one.step(tr, va, opt_one);
            const auto b = rw_many.step(own(tr), own(va), opt_many);
            worst_w =
                std::max(worst_w, relative_difference(as_double(a.weights), as_double(b.weights)));
            worst_lv = std::max(worst_lv, std::abs(a.validation_loss - b.validation_loss) /
                                              std::abs(a.validation_loss));
            same_skip = same_skip && a.skipped == b.skipped && a.zero_count == b.zero_count &&
                        a.noisy_mass.has_value() && b.noisy_mass.has_value() &&
                        std::abs(*a.noisy_mass - *b.noisy_mass) < 1e-12;
        }
        const double worst_p = relative_difference(parameters(*one), parameters(*many));
        MESSAGE("weights ", worst_w, ", L_v ", worst_lv, ", parameters after 10 steps ", worst_p);
        CHECK(on_every_rank(worst_w < 1e-12));
        CHECK(on_every_rank(worst_lv < 1e-12));
        CHECK(on_every_rank(worst_p < 1e-12));
        CHECK(on_every_rank(same_skip));
        CHECK(same_on_every_rank(parameters(*many)));
    }
}

TEST_CASE("dist: BatchNorm running statistics are averaged over ranks and stay identical") {
    const auto& c = world();
    auto one = nn::resnet_cifar<double, Cpu>(8, 3, 5),
         many = nn::resnet_cifar<double, Cpu>(8, 3, 5);
    SGD opt_one({.lr = 0.05, .momentum = 0.9}), opt_many({.lr = 0.05, .momentum = 0.9});
    meta::OnlineReweighter<Model> rw_one(*one);
    meta::OnlineReweighter<Model> rw_many(*many, {}, meta::default_loss<double, Cpu>, &c);
    auto images = [](index_t n, std::uint64_t seed) {
        Batch b;
        b.x = Tensor<double, Cpu>::randn({n, 3, 8, 8}, seed);
        b.y = testing::random_labels<Cpu>(n, 3, seed + 1);
        return b;
    };
    // The first BatchNorm's running mean (deeper layers see inputs normalised by each rank's
    // own statistics, so theirs differ from one process's).
    auto running = [](Model& m, const char* which) {
        for (auto& [name, t, kind] : nn::named_tensors(m))
            if (kind == nn::Kind::buffer && name.find(which) != std::string::npos)
                return t->to_host();
        return Vec{};
    };
    const auto tr = images(40, 61), va = images(10, 62);
    rw_one.step(tr, va, opt_one);
    rw_many.step(own(tr), own(va), opt_many);
    // Equal parts: the mean of the ranks' running means is the one process's running mean
    // (the update is linear in the batch mean); the variances are the parts', not equal.
    const double d =
        relative_difference(running(*one, "running_mean"), running(*many, "running_mean"));
    MESSAGE("running means after one step, 2 ranks vs 1 process: ", d);
    CHECK(!running(*one, "running_mean").empty());
    CHECK(on_every_rank(d < 1e-12));
    for (int s = 0; s < 2; ++s) rw_many.step(own(images(40, 70 + s)), own(va), opt_many);
    Vec all = parameters(*many);  // parameters and buffers (named_tensors)
    CHECK(same_on_every_rank(all));
}

TEST_CASE("dist: an Adam lookahead (the general strategy, through all_reduce) as 1 process") {
    const auto& c = world();
    auto one = make_model(Arch::mlp, 3), many = make_model(Arch::mlp, 3);
    optim::Adam<double, Cpu> opt_one({.lr = 0.01}), opt_many({.lr = 0.01});
    meta::ReweightOptions ro;
    ro.lookahead = meta::LookaheadRule::optimizer;
    meta::OnlineReweighter<Model> rw_one(*one, ro);
    meta::OnlineReweighter<Model> rw_many(*many, ro, meta::default_loss<double, Cpu>, &c);
    double worst_w = 0;
    for (int step = 0; step < 6; ++step) {
        const auto tr = make_batch(Arch::mlp, 40, 10 + step),
                   va = make_batch(Arch::mlp, 10, 50 + step);
        const auto a = rw_one.step(tr, va, opt_one);
        const auto b = rw_many.step(own(tr), own(va), opt_many);
        CHECK(b.strategy == meta::Strategy::general);
        worst_w =
            std::max(worst_w, relative_difference(as_double(a.weights), as_double(b.weights)));
    }
    const double worst_p = relative_difference(parameters(*one), parameters(*many));
    MESSAGE("Adam lookahead: weights ", worst_w, ", parameters ", worst_p);
    CHECK(on_every_rank(worst_w < 1e-12));
    CHECK(on_every_rank(worst_p < 1e-12));
    CHECK(same_on_every_rank(parameters(*many)));
}

TEST_CASE("dist: a step sends two parameter-sized all-reduces and a few batch-sized values") {
    dist::Counting counted(world());
    auto m = make_model(Arch::lenet, 5);
    SGD opt({.lr = 0.1, .momentum = 0.9});
    meta::OnlineReweighter<Model> rw(*m, {}, meta::default_loss<double, Cpu>, &counted);
    std::size_t params = 0;
    for (auto& [name, t, kind] : nn::named_tensors(*m))
        params += static_cast<std::size_t>(t->numel());
    const auto tr = make_batch(Arch::lenet, 100, 1), va = make_batch(Arch::lenet, 20, 2);
    rw.step(own(tr), own(va), opt);
    const std::size_t P = 2, n = 100;
    // sizes (2P + P), L_v (1 + P), ∇L_v, u and flags (2n + 1 + P), the loss (1 + P), the gradient
    const std::size_t want = 8 * (3 * P + (1 + P) + params + (2 * n + 1 + P) + (1 + P) + params);
    MESSAGE("bytes all-reduced per LeNet step: ", counted.bytes(), " in ", counted.calls(),
            " calls (parameters: ", params, ")");
    CHECK(on_every_rank(counted.bytes() == want));
    CHECK(on_every_rank(counted.calls() == 6));
}

TEST_CASE("dist: a rank whose part fails stops every rank, naming it; nothing changes") {
    const auto& c = world();
    auto m = make_model(Arch::lenet, 11);
    SGD opt({.lr = 0.1, .momentum = 0.9});
    meta::OnlineReweighter<Model> rw(*m, {}, meta::default_loss<double, Cpu>, &c);
    const auto tr = make_batch(Arch::lenet, 100, 3), va = make_batch(Arch::lenet, 20, 4);
    rw.step(own(tr), own(va), opt);  // momentum state, so that "nothing changes" means something
    const auto before = parameters(*m);

    auto fails_naming_rank_1 = [&](const Batch& t, const Batch& v, const char* what) {
        bool named = false;
        try {
            rw.step(t, v, opt);
        } catch (const DistributedError& e) {
            const std::string msg = e.what();
            named = e.failed_rank() == 1 && msg.find("rank 1 of 2 failed") != std::string::npos &&
                    msg.find(what) != std::string::npos;
            if (!named) MESSAGE(msg);
        }
        return on_every_rank(named);
    };
    // A NaN input in rank 1's part.
    auto bad = own(tr);
    if (c.rank() == 1) bad.x.data()[17] = std::numeric_limits<double>::quiet_NaN();
    CHECK(fails_naming_rank_1(bad, own(va), "is not finite"));
    CHECK(on_every_rank(parameters(*m) == before));
    CHECK(on_every_rank(opt.step_count() == 1));
    // A bad batch on rank 1 only: labels that do not match its inputs.
    auto short_labels = own(tr);
    if (c.rank() == 1) short_labels.y = testing::random_labels<Cpu>(short_labels.size() - 1, 3, 9);
    CHECK(fails_naming_rank_1(short_labels, own(va), "ShapeError"));
    // An infinity in rank 1's validation part (relu hides it from L_v, not from ∇L_v).
    auto bad_val = own(va);
    if (c.rank() == 1) bad_val.x.data()[3] = std::numeric_limits<double>::infinity();
    CHECK(fails_naming_rank_1(own(tr), bad_val, "validation batch has a non-finite input"));
    CHECK(on_every_rank(parameters(*m) == before));
    // And the ranks go on together afterwards.
    rw.step(own(tr), own(va), opt);
    CHECK(same_on_every_rank(parameters(*m)));

    // A model with no ReLU to hide it: a NaN input makes that example's u NaN on rank 1.
    auto linear = nn::mlp<double, Cpu>({6, 3}, 2);
    SGD lopt({.lr = 0.1});
    meta::OnlineReweighter<Model> lrw(*linear, {}, meta::default_loss<double, Cpu>, &c);
    auto nan_u = own(make_batch(Arch::mlp, 100, 5));
    if (c.rank() == 1) nan_u.x.data()[6 * 7 + 2] = std::numeric_limits<double>::quiet_NaN();
    bool named = false;
    try {
        lrw.step(nan_u, own(make_batch(Arch::mlp, 20, 6)), lopt);
    } catch (const DistributedError& e) {
        const std::string msg = e.what();
        named = e.failed_rank() == 1 &&
                msg.find("(rank 1): the meta-gradient (raw weight) of example 57") !=
                    std::string::npos &&
                msg.find("has a non-finite input") != std::string::npos;
        if (!named) MESSAGE(msg);
    }
    CHECK(on_every_rank(named));
}

namespace {

/// n images 1×12×12 as a dataset, labels in [0, 3).
data::Dataset images(index_t n, std::uint64_t seed) {
    const auto b = make_batch(Arch::lenet, n, seed);
    data::Dataset ds;
    ds.n = n;
    ds.c = 1;
    ds.h = ds.w = 12;
    ds.classes = 3;
    for (double v : b.x.to_host()) ds.images.push_back(static_cast<float>(v));
    ds.labels = b.y.to_host();
    for (index_t i = 0; i < n; ++i) ds.origin.push_back(i);
    return ds;
}

}  // namespace

TEST_CASE("dist: meta::train on 2 ranks trains as 1 process (l2rw and the baselines)") {
    const auto& c = world();
    const auto train_set = images(240, 21), clean = images(30, 22), test_set = images(50, 23);
    for (const char* name : {"l2rw", "uniform", "hard_mining", "random", "resample"}) {
        const std::string label = name;
        CAPTURE(label);
        auto one = make_model(Arch::lenet, 4), many = make_model(Arch::lenet, 4);
        SGD opt_one({.lr = 0.05, .momentum = 0.9}), opt_many({.lr = 0.05, .momentum = 0.9});
        auto p_one = meta::make_policy<Model>(name, {.seed = 5});
        auto p_many = meta::make_policy<Model>(name, {.seed = 5});
        meta::TrainOptions o{.steps = 10, .batch_size = 60, .validation_batch_size = 20, .seed = 8};
        meta::train(*one, opt_one, *p_one, train_set, clean, o);
        o.comm = &c;
        meta::train(*many, opt_many, *p_many, train_set, clean, o);
        const double worst = relative_difference(parameters(*one), parameters(*many));
        MESSAGE(std::string(name), ": parameters after 10 steps differ by ", worst);
        CHECK(on_every_rank(worst < 1e-12));
        CHECK(same_on_every_rank(parameters(*many)));
        const auto e1 = meta::evaluate(*one, test_set),
                   e2 = meta::evaluate(*many, test_set, 100, &c);
        CHECK(on_every_rank(e1.count == e2.count && std::abs(e1.accuracy - e2.accuracy) < 1e-12 &&
                            std::abs(e1.loss - e2.loss) < 1e-10));
    }
}

TEST_CASE("dist: meta::train stops every rank when one rank's part has a NaN, naming it") {
    const auto& c = world();
    auto train_set = images(120, 31);
    const auto clean = images(20, 32);
    // Each batch is 60 rows of a fixed shuffle; poison a row that rank 1 takes at step 0.
    const auto rows =
        data::Batcher(train_set.n, 60,
                      meta::detail::stream_seed(2, meta::detail::stream_train_order, 0), true)
            .next();
    const auto part = data::shard_of(60, 1, c.size());
    const index_t victim = rows[static_cast<std::size_t>(part.begin + 4)];
    train_set.images[static_cast<std::size_t>(victim * 144 + 7)] =
        std::numeric_limits<float>::quiet_NaN();
    auto m = make_model(Arch::lenet, 4);
    SGD opt({.lr = 0.05});
    auto policy = meta::make_policy<Model>("l2rw");
    meta::TrainOptions o{.steps = 3, .batch_size = 60, .seed = 2, .comm = &c};
    bool named = false;
    try {
        meta::train(*m, opt, *policy, train_set, clean, o);
    } catch (const DistributedError& e) {
        const std::string msg = e.what();
        named = e.failed_rank() == 1 && msg.find("step 0") != std::string::npos;
        if (!named) MESSAGE(msg);
    }
    CHECK(on_every_rank(named));
}
