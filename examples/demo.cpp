// examples/demo.cpp — l2rw in one screen: a 10-class problem whose training labels are 40%
// wrong, a clean validation set of 10 examples per class, and the same MLP trained twice —
// once on every example alike (uniform), once with the example weights of
// OnlineReweighter (Algorithm 1 of Ren et al., 2018). Prints test accuracy for both and the
// share of weight the reweighter gave to the examples whose labels were flipped. The
// training set is small (2,000) and the MLP large, so plain training memorises the noise.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <l2rw/l2rw.hpp>
#include <l2rw/meta.hpp>
#include <l2rw/optim.hpp>
#include <vector>

#include "flags.hpp"

using namespace l2rw;
using T = float;
using B = Cpu;
using Model = nn::Sequential<T, B>;

struct Data {
    std::vector<T> x;
    std::vector<index_t> y, clean;
    std::vector<bool> noisy;
    index_t n = 0;
};

constexpr index_t dims = 20, classes = 10;

/// Gaussian clusters: class c is centred on a seeded random point; noise flips a label to
/// another class, uniformly.
Data make(index_t n, double noise, std::uint64_t seed, const std::vector<double>& centres) {
    Rng rng(seed);
    Data d;
    d.n = n;
    for (index_t i = 0; i < n; ++i) {
        const auto c = static_cast<index_t>(rng.below(classes));
        for (index_t k = 0; k < dims; ++k)
            d.x.push_back(static_cast<T>(centres[static_cast<std::size_t>(c * dims + k)] +
                                         1.0 * rng.normal()));
        const bool flip = rng.uniform() < noise;
        index_t y = c;
        if (flip) y = (c + 1 + static_cast<index_t>(rng.below(classes - 1))) % classes;
        d.y.push_back(y);
        d.clean.push_back(c);
        d.noisy.push_back(flip);
    }
    return d;
}

meta::Batch<T, B> batch(const Data& d, index_t from, index_t n) {
    std::vector<T> x(d.x.begin() + from * dims, d.x.begin() + (from + n) * dims);
    std::vector<index_t> y(d.y.begin() + from, d.y.begin() + from + n);
    std::vector<bool> fl(d.noisy.begin() + from, d.noisy.begin() + from + n);
    return {Tensor<T, B>::from_host({n, dims}, x), IndexTensor<B>::from_host({n}, y), fl};
}

double accuracy(Model& m, const Data& test) {
    NoGradGuard ng;
    auto b = batch(test, 0, test.n);
    auto logits =
        m.forward(Var<T, B>(b.x), nn::Context<T, B>{nn::Mode::eval, nullptr, nullptr}).to_host();
    index_t right = 0;
    for (index_t i = 0; i < test.n; ++i) {
        index_t best = 0;
        for (index_t c = 1; c < classes; ++c)
            if (logits[static_cast<std::size_t>(i * classes + c)] >
                logits[static_cast<std::size_t>(i * classes + best)])
                best = c;
        right += best == test.clean[static_cast<std::size_t>(i)];
    }
    return static_cast<double>(right) / static_cast<double>(test.n);
}

int main(int argc, char** argv) {
    examples::line_buffered_stdout();
    CLI::App app{"l2rw demo: training on 40%-noisy labels, uniform vs learned example weights"};
    index_t steps = 3000, batch_size = 100;
    double noise = 0.4, lr = 0.03;
    std::uint64_t seed = 1;
    app.add_option("--steps", steps, "training steps per method")
        ->check(examples::at_least(1))
        ->capture_default_str();
    app.add_option("--noise", noise, "share of training labels flipped to another class")
        ->check(examples::between(0, 0.9))
        ->capture_default_str();
    app.add_option("--lr", lr, "SGD learning rate (momentum 0.9)")
        ->check(examples::greater_than(0))
        ->capture_default_str();
    app.add_option("--seed", seed, "seed of data and model")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    Rng crng(seed);
    std::vector<double> centres(static_cast<std::size_t>(classes * dims));
    for (auto& c : centres) c = crng.normal();
    const Data train = make(2000, noise, seed + 1, centres);
    const Data val = make(classes * 10, 0.0, seed + 2, centres);  // the small clean set
    const Data test = make(5000, 0.0, seed + 3, centres);
    std::printf(
        "10 classes, %ld training examples (%.0f%% labels flipped), %ld clean validation, %ld "
        "test\n",
        static_cast<long>(train.n), 100 * noise, static_cast<long>(val.n),
        static_cast<long>(test.n));

    for (const char* method : {"uniform", "l2rw"}) {
        std::printf("%-8s training %ld steps...\n", method, static_cast<long>(steps));
        auto model = nn::mlp<T, B>({dims, 256, 256, classes}, seed + 10);
        optim::SGD<T, B> opt({.lr = lr, .momentum = 0.9});
        meta::OnlineReweighter<Model> rw(*model);
        const auto vb = batch(val, 0, val.n);
        const auto t0 = std::chrono::steady_clock::now();
        double noisy_mass = 0, last_line = 0;
        index_t reported = 0;
        for (index_t s = 0; s < steps; ++s) {
            const double now =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (now - last_line >= 5) {  // a sign of life every 5 s
                std::printf("%-8s step %ld/%ld, %.0f s\n", method, static_cast<long>(s),
                            static_cast<long>(steps), now);
                last_line = now;
            }
            const index_t from = (s * batch_size) % (train.n - batch_size + 1);
            const auto tb = batch(train, from, batch_size);
            std::vector<T> w(static_cast<std::size_t>(batch_size),
                             T(1) / static_cast<T>(batch_size));
            if (std::string(method) == "l2rw") {
                const auto r = rw.weights(tb, vb);
                if (r.skipped) continue;
                w = r.weights;
                noisy_mass += r.noisy_mass.value_or(0.0);
                ++reported;
            }
            opt.step(nn::named_parameters(*model), rw.weighted_gradient(tb, w));
        }
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%-8s test accuracy %.2f%%   (%ld steps in %.1f s", method,
                    100 * accuracy(*model, test), static_cast<long>(steps), secs);
        if (reported)
            std::printf("; weight on flipped labels %.1f%%",
                        100 * noisy_mass / static_cast<double>(reported));
        std::printf(")\n");
    }
    return 0;
}
